"""A transformers image-text-to-text model from a local folder, answering OpenAI-style chat messages."""

from __future__ import annotations

import os

from curators.chat_media import decode_image_url


def local_messages(messages: list[dict]) -> tuple[list[dict], list]:
    """The messages in the processor's chat-template form and the pictures their ``image`` parts stand for.

    ``input_audio`` parts are left out: a local VLM hears no sound (the transcript goes as text)."""
    out, images = [], []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        parts = []
        for part in content:
            if part["type"] == "text":
                parts.append({"type": "text", "text": part["text"]})
            elif part["type"] == "image_url":
                images.append(decode_image_url(part["image_url"]["url"]))
                parts.append({"type": "image"})
        out.append({"role": message["role"], "content": parts})
    return out, images


class LocalVlmChat:
    """Loaded once; greedy replies, so the same messages give the same reply."""

    def __init__(self, model_path: str, device: str | None = None):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.processor = AutoProcessor.from_pretrained(model_path, local_files_only=True)
        self.model = AutoModelForImageTextToText.from_pretrained(model_path, local_files_only=True)
        self.model = self.model.to(self.device).eval()
        self.model_id = f"local:{os.path.basename(model_path.rstrip('/'))}"

    def reply(self, messages: list[dict], max_new_tokens: int) -> str:
        import torch

        chat, images = local_messages(messages)
        prompt = self.processor.apply_chat_template(chat, add_generation_prompt=True)
        inputs = self.processor(images=images or None, text=prompt, return_tensors="pt").to(self.device)
        with torch.no_grad():
            output = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        return self.processor.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
