"""The endpoint captioner against a local OpenAI-compatible HTTP server; captions become facts."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from media_fixtures import card_image

from curators.captioner import CaptionError, EndpointCaptioner, make_captioner
from curators.facts import annotate_clip
from schemas.config import VisualConfig
from schemas.media import Clip


class ChatCompletions(BaseHTTPRequestHandler):
    seen: ClassVar[list] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        ChatCompletions.seen.append((self.path, self.headers.get("Authorization"), body))
        parts = body["messages"][0]["content"]
        has_image = any(p["type"] == "image_url" and p["image_url"]["url"].startswith("data:image/jpeg;base64,")
                        for p in parts)
        reply = {"choices": [{"message": {"role": "assistant",
                                          "content": "  A red circle\non blue. " if has_image else "no image"}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = HTTPServer(("127.0.0.1", 0), ChatCompletions)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/v1"
    httpd.shutdown()
    httpd.server_close()


def test_endpoint_captioner_sends_the_frame_and_tidies_the_reply(server, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("OMNICURATE_API_KEY", "k123")
    frame = card_image(tmp_path / "f.jpg")
    clip = Clip(clip_id="c", media_id="m", source_uri="x", kind="image", start_s=0, end_s=0, media_path=str(frame),
                frame_paths=[str(frame)], frame_times_s=[0.0])
    captioner = make_captioner(VisualConfig(captioner="endpoint", captioner_model="vlm", captioner_url=server))
    assert captioner.caption(clip) == "A red circle on blue."
    path, auth, body = ChatCompletions.seen[-1]
    assert (path, auth, body["model"]) == ("/v1/chat/completions", "Bearer k123", "vlm")
    facts = annotate_clip(clip, None, None, caption="A red circle on blue.").facts
    assert [(f.kind, f.value, f.source) for f in facts if f.kind == "caption"] == [
        ("caption", "A red circle on blue.", "caption")]
    with pytest.raises(CaptionError):
        EndpointCaptioner("http://127.0.0.1:9/v1", "vlm", timeout_s=2).caption(clip)


def test_captioning_is_off_by_default():
    assert make_captioner(VisualConfig()) is None
