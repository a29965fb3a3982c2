"""The shared chat client against the real test server: usage from the replies, image parts, the cache."""

import base64
import io

from PIL import Image

from curators.writers.chat_client import ChatClient, json_schema_format
from openai_server import RecordingProxy, openai_server  # noqa: F401 (the fixture)


def _data_url(colour: str) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_client_counts_usage_sends_parts_and_caches(openai_server, tmp_path):  # noqa: F811
    fmt = json_schema_format("answer", {"type": "object", "properties": {"a": {"type": "string"}},
                                        "required": ["a"], "additionalProperties": False})
    chats = [[{"role": "user", "content": [{"type": "text", "text": f"Describe picture {i}."},
                                           {"type": "image_url", "image_url": {"url": _data_url(c)}}]}]
             for i, c in enumerate(("red", "blue", "green"))]
    with RecordingProxy(openai_server.base_url) as proxy:
        client = ChatClient(proxy.base_url, openai_server.vlm, stage="captioner", cache_dir=tmp_path, concurrency=2,
                            max_tokens=5)
        replies = client.complete(chats, response_format=fmt)
        again = ChatClient(proxy.base_url, openai_server.vlm, stage="captioner", cache_dir=tmp_path, concurrency=2,
                           max_tokens=5)
        cached = again.complete(chats, response_format=fmt)
    assert all(isinstance(r, str) for r in replies) and cached == replies
    assert len(proxy.requests) == 3  # the re-run sent nothing
    assert sorted(r["messages"][0]["content"][0]["text"] for r in proxy.requests) == [
        f"Describe picture {i}." for i in range(3)]
    assert all(r["response_format"] == fmt and r["messages"] == c for r, c in
               zip(sorted(proxy.requests, key=lambda r: r["messages"][0]["content"][0]["text"]), chats))
    usage = client.usage()
    assert (usage.stage, usage.requests, usage.completion_tokens, usage.cache_hits, usage.failures) == (
        "captioner", 3, 15, 0, 0)
    assert usage.prompt_tokens > 3 * 4  # each prompt holds its image's 4 tokens and the text
    assert (again.usage().requests, again.usage().cache_hits, again.usage().prompt_tokens) == (0, 3, 0)


def test_a_dead_server_is_a_failure_row_not_a_crash(tmp_path):
    from ports import free_port

    client = ChatClient(f"http://127.0.0.1:{free_port()}/v1", "m", max_retries=1, backoff_s=0.01, timeout_s=1)
    assert client.request([{"role": "user", "content": "hi"}]) is None
    assert (client.usage().requests, client.usage().failures) == (2, 1)
