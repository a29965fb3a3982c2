"""Optional frame captioning: a local transformers VLM or an OpenAI-compatible endpoint (off by default)."""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from typing import Protocol

from PIL import Image

from schemas.config import VisualConfig
from schemas.media import Clip

PROMPT = "Describe this picture in one short sentence."
MAX_CAPTION_CHARS = 300
ENDPOINT_TIMEOUT_S = 60.0
API_KEY_VARIABLE = "OMNICURATE_API_KEY"


class CaptionError(RuntimeError):
    """The captioner could not caption a clip (endpoint down, bad reply): the clip goes on without a caption."""


class Captioner(Protocol):
    model_id: str

    def caption(self, clip: Clip) -> str:
        """One short sentence about the clip's middle frame."""


def middle_frame(clip: Clip) -> str:
    if not clip.frame_paths:
        raise ValueError(f"clip {clip.clip_id} has no frames to caption")
    return clip.frame_paths[len(clip.frame_paths) // 2]


def tidy_caption(text: str) -> str:
    return " ".join(text.split())[:MAX_CAPTION_CHARS]


class EndpointCaptioner:
    """Chat completions with the frame as a data URL, on any OpenAI-compatible server (vLLM, SGLang, ...)."""

    def __init__(self, base_url: str, model: str, timeout_s: float = ENDPOINT_TIMEOUT_S):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.model_id = f"endpoint:{model}"
        self.timeout_s = timeout_s

    def caption(self, clip: Clip) -> str:
        with open(middle_frame(clip), "rb") as fh:
            image_url = "data:image/jpeg;base64," + base64.b64encode(fh.read()).decode()
        body = {"model": self.model, "max_tokens": 64, "temperature": 0.0, "messages": [{"role": "user", "content": [
            {"type": "text", "text": PROMPT}, {"type": "image_url", "image_url": {"url": image_url}}]}]}
        headers = {"Content-Type": "application/json"}
        if os.environ.get(API_KEY_VARIABLE):
            headers["Authorization"] = f"Bearer {os.environ[API_KEY_VARIABLE]}"
        request = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                reply = json.loads(response.read())
            return tidy_caption(reply["choices"][0]["message"]["content"])
        except (urllib.error.URLError, TimeoutError, json.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            raise CaptionError(f"{self.url}: {exc}") from None


class LocalVlmCaptioner:
    """A transformers image-text-to-text model from a local directory, loaded once."""

    def __init__(self, model_path: str, device: str = "cpu"):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.processor = AutoProcessor.from_pretrained(model_path, local_files_only=True)
        self.model = AutoModelForImageTextToText.from_pretrained(model_path, local_files_only=True).to(device).eval()
        self.model_id = f"local:{os.path.basename(model_path.rstrip('/'))}"
        self.device = device

    def caption(self, clip: Clip) -> str:
        import torch

        with Image.open(middle_frame(clip)) as image:
            image = image.convert("RGB")
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
        prompt = self.processor.apply_chat_template(messages, add_generation_prompt=True)
        inputs = self.processor(images=[image], text=prompt, return_tensors="pt").to(self.device)
        with torch.no_grad():
            output = self.model.generate(**inputs, max_new_tokens=48, do_sample=False)
        new_tokens = output[0, inputs["input_ids"].shape[1]:]
        return tidy_caption(self.processor.decode(new_tokens, skip_special_tokens=True))


def make_captioner(cfg: VisualConfig) -> Captioner | None:
    """The configured captioner, or None when captioning is off."""
    if cfg.captioner == "none":
        return None
    if cfg.captioner == "endpoint":
        if not cfg.captioner_url:
            raise ValueError("visual.captioner_url is needed for the endpoint captioner")
        return EndpointCaptioner(cfg.captioner_url, cfg.captioner_model)
    return LocalVlmCaptioner(cfg.captioner_model)
