"""The endpoint writer against an OpenAI-compatible server started on 127.0.0.1: faults, validation, cache."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dialogue_fixtures import clip_pool

from curators.dialogue_plan import plan_dialogues
from curators.dialogue_write import make_writer
from curators.writers.endpoint import EndpointError, EndpointWriter
from curators.writers.phrasebook import GENERAL_KNOWLEDGE
from schemas.config import DialogueConfig

TIMEOUT_S = 0.4
GENERAL_ANSWERS = {a for _, _, a in GENERAL_KNOWLEDGE}


class FakeChatServer(ThreadingHTTPServer):
    """Fails the first three requests (429, 500, too slow), then rephrases by echoing with a friendly prefix.

    Memory questions get a wrong answer at temperature 0 (the writer must retry them); general-knowledge
    turns never get a usable reply (the writer must keep the template turn).
    """

    def __init__(self):
        super().__init__(("127.0.0.1", 0), ChatHandler)
        self.lock = threading.Lock()
        self.calls = 0
        self.faults = []
        self.served = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.auth = set()


class ChatHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _reply(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        server = self.server
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with server.lock:
            server.calls += 1
            call = server.calls
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
            server.auth.add(self.headers.get("Authorization"))
        try:
            if call == 1:
                server.faults.append(429)
                return self._reply(429, {"error": "slow down"}, [("Retry-After", "0")])
            if call == 2:
                server.faults.append(500)
                return self._reply(500, {"error": "boom"})
            if call == 3:
                server.faults.append("timeout")
                with server.lock:
                    server.in_flight -= 1  # the client gives up on this one; it no longer counts against the limit
                time.sleep(TIMEOUT_S * 2)
                with server.lock:
                    server.in_flight += 1
                return None  # the client has hung up; nothing to send
            assert self.path == "/v1/chat/completions" and payload["model"] == "fake-model"
            user = payload["messages"][-1]["content"]
            question = user.split("\n")[0].removeprefix("Question: ")
            answer = user.split("\n")[1].removeprefix("Answer: ")
            if answer in GENERAL_ANSWERS:
                content = "I would rather not say."
            elif "must keep the words" in user and payload["temperature"] == 0:
                content = f"Question: {question}\nAnswer: I forgot."
            else:
                content = f"Question: Hey, {question[0].lower()}{question[1:]}\nAnswer: Sure! {answer}"
            with server.lock:
                server.served += 1
            return self._reply(200, {"choices": [{"message": {"role": "assistant", "content": content}}]})
        finally:
            with server.lock:
                server.in_flight -= 1


@pytest.fixture
def server():
    srv = FakeChatServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def write(server, cache_dir, clips):
    cfg = DialogueConfig(writer="endpoint", writer_model="fake-model", writer_concurrency=2, writer_timeout_s=TIMEOUT_S,
                         writer_max_retries=3, endpoint_url=f"http://127.0.0.1:{server.server_port}/v1",
                         dialogues=2, min_turns=6, max_turns=6)
    writer = make_writer(cfg, str(cache_dir))
    writer.client.backoff_s = 0.01
    by_id = {c.clip.clip_id: c for c in clips}
    return writer, writer.write_batch(plan_dialogues(clips, cfg, 3), by_id)


def test_endpoint_writer_retries_validates_and_caches(server, tmp_path, monkeypatch):
    monkeypatch.setenv("OMNICURATE_API_KEY", "sk-test-secret")
    clips = clip_pool(12)
    writer, first = write(server, tmp_path / "cache", clips)
    assert server.faults == [429, 500, "timeout"]
    assert writer.requests_sent == server.calls  # every fault was retried, nothing else was sent twice
    usage = writer.usage()
    assert (usage.stage, usage.model, usage.requests, usage.cache_hits) == ("writer", "fake-model", server.calls, 0)
    assert server.max_in_flight <= 2 and server.auth == {"Bearer sk-test-secret"}
    for w in first:
        (verdict,) = w.verdicts
        assert verdict.filter == "writer_validation" and verdict.passed
        for turn in w.dialogue.turns:
            general = turn.question_type == "no_context"
            assert turn.assistant.text.startswith("Sure! ") != general  # refused turns keep the template
        kept = [t.index for t in w.dialogue.turns if t.question_type == "no_context"]
        assert verdict.score == pytest.approx(1 - len(kept) / len(w.dialogue.turns), abs=1e-4)
        assert all(f"{i} (unparseable reply)" in verdict.detail for i in kept)
    memory = [t for w in first for t in w.dialogue.turns if t.question_type.startswith("memory")]
    assert memory and all(t.assistant.text.startswith("Sure! ") for t in memory)  # fixed on the sampled retry

    cached_files = list((tmp_path / "cache").rglob("*.json"))
    assert cached_files and not any("sk-test-secret" in p.read_text() for p in cached_files)
    calls = server.calls
    again_writer, again = write(server, tmp_path / "cache", clips)
    assert [w.dialogue for w in again] == [w.dialogue for w in first]
    assert again_writer.requests_sent == 0 and server.calls == calls  # a resumed run never pays twice
    assert again_writer.usage().cache_hits == server.served


def test_endpoint_writer_stops_on_a_rejected_key(tmp_path):
    class Refusing(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.send_response(401)
            self.end_headers()

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        writer = EndpointWriter(f"http://127.0.0.1:{srv.server_port}/v1", "m", max_retries=2, backoff_s=0.01)
        with pytest.raises(EndpointError, match="401"):
            writer.request([{"role": "user", "content": "hi"}])
        assert writer.requests_sent == 1
    finally:
        srv.shutdown()
        srv.server_close()
