"""The test server: ``transformers serve`` over the tiny random models answers text and image requests."""

import base64
import io
import json
import urllib.request

from PIL import Image

from openai_server import RecordingProxy, openai_server  # noqa: F401 (the fixture)


def _jpeg_data_url(colour: str) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buf, "JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def test_the_server_reads_images_and_reports_usage(openai_server):  # noqa: F811
    text = [{"type": "text", "text": "What colour is this?"}]
    with RecordingProxy(openai_server.base_url) as proxy:
        plain = openai_server.chat({"model": openai_server.vlm, "max_tokens": 4,
                                    "messages": [{"role": "user", "content": text}]})
        body = {"model": openai_server.vlm, "max_tokens": 4, "messages": [{"role": "user", "content": [
            *text, {"type": "image_url", "image_url": {"url": _jpeg_data_url("red")}}]}]}
        request = urllib.request.Request(proxy.base_url + "/chat/completions", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=120) as response:
            with_image = json.loads(response.read())
    assert proxy.requests == [body]
    # The image became tokens the model read (4 patches of the 28-pixel image), so the server decoded it.
    assert with_image["usage"]["prompt_tokens"] == plain["usage"]["prompt_tokens"] + 4
    assert with_image["usage"]["completion_tokens"] == 4


def test_the_text_model_answers(openai_server):  # noqa: F811
    reply = openai_server.chat({"model": openai_server.text_lm, "max_tokens": 3,
                                "messages": [{"role": "user", "content": "Hello"}]})
    assert reply["usage"]["completion_tokens"] == 3
    assert isinstance(reply["choices"][0]["message"]["content"], str)
