"""Endpoint writer: an OpenAI-compatible chat-completions server rephrases the grounded draft.

The API key is read from OMNICURATE_API_KEY at request time and never stored: not in the config, the
cache, the lineage or any log line. Finished requests are cached on disk under a hash of the request,
so a resumed run never pays twice.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from curators.dialogue_plan import DialoguePlan
from curators.dialogue_write import WrittenDialogue
from curators.writers.rewrite import ChatMessages, cache_key, rewrite_dialogues, rewrite_prompt_hash
from schemas.config import DialogueConfig
from schemas.media import AnnotatedClip

log = logging.getLogger(__name__)

API_KEY_ENV = "OMNICURATE_API_KEY"
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
FATAL_STATUS = frozenset({401, 403, 404})
"""Wrong key, no access or wrong URL/model: every request would fail the same way, so the run stops."""
MAX_BACKOFF_S = 30.0
MAX_TOKENS = 160


class EndpointError(RuntimeError):
    """The endpoint refuses every request (authentication, URL or model); not a per-turn failure."""


class EndpointWriter:
    name = "endpoint"

    def __init__(self, base_url: str, model: str, *, cache_dir: str | Path | None = None, timeout_s: float = 60.0,
                 max_retries: int = 4, concurrency: int = 4, backoff_s: float = 0.5, batch_size: int = 16):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.model_id = model
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.concurrency = concurrency
        self.backoff_s = backoff_s
        self.batch_size = batch_size
        self.requests_sent = 0
        """HTTP requests made by this writer (cache hits excluded)."""

    @classmethod
    def from_config(cls, cfg: DialogueConfig, cache_dir: str | Path | None = None) -> EndpointWriter:
        return cls(cfg.endpoint_url, cfg.writer_model, cache_dir=cfg.writer_cache_dir or cache_dir,
                   timeout_s=cfg.writer_timeout_s, max_retries=cfg.writer_max_retries,
                   concurrency=cfg.writer_concurrency, batch_size=max(cfg.writer_batch_size, cfg.writer_concurrency))

    def prompt_hash(self) -> str:
        return rewrite_prompt_hash()

    # --- one request -------------------------------------------------------------------------------

    def _payload(self, messages: ChatMessages, attempt: int) -> dict:
        return {"model": self.model, "messages": messages, "temperature": 0.0 if attempt == 0 else 0.8,
                "max_tokens": MAX_TOKENS, "seed": attempt}

    def _cache_path(self, payload: dict) -> Path | None:
        if self.cache_dir is None:
            return None
        key = cache_key({"url": self.url, **payload})
        return self.cache_dir / key[:2] / f"{key}.json"

    def _post(self, payload: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(API_KEY_ENV)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(self.url, data=json.dumps(payload).encode(), headers=headers, method="POST")
        self.requests_sent += 1
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            return json.loads(response.read())

    def _wait(self, retry: int, retry_after: str | None) -> None:
        delay = self.backoff_s * (2 ** retry)
        if retry_after:
            try:
                delay = max(delay, float(retry_after))
            except ValueError:
                pass
        time.sleep(min(delay, MAX_BACKOFF_S))

    def request(self, messages: ChatMessages, attempt: int = 0) -> str | None:
        """The reply text, from the cache when this exact request finished before; None after failed retries."""
        payload = self._payload(messages, attempt)
        cached = self._cache_path(payload)
        if cached is not None and cached.exists():
            return json.loads(cached.read_text())["content"]
        problem = ""
        for retry in range(self.max_retries + 1):
            try:
                body = self._post(payload)
                content = body["choices"][0]["message"]["content"]
                break
            except urllib.error.HTTPError as exc:
                if exc.code in FATAL_STATUS:
                    raise EndpointError(f"{self.url} answered {exc.code}: check the URL, model and "
                                        f"{API_KEY_ENV}") from None
                problem = f"HTTP {exc.code}"
                if exc.code not in RETRYABLE_STATUS:
                    return None
                retry_after = exc.headers.get("Retry-After") if exc.headers else None
            except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
                problem, retry_after = f"{type(exc).__name__}: {exc}", None
            except (KeyError, IndexError, TypeError, json.JSONDecodeError):
                problem, retry_after = "malformed response", None
            if retry < self.max_retries:
                self._wait(retry, retry_after)
        else:
            log.warning("endpoint request failed after %d tries: %s", self.max_retries + 1, problem)
            return None
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps({"content": content}))
            tmp.replace(cached)
        return content

    # --- the writer --------------------------------------------------------------------------------

    def complete(self, requests: list[ChatMessages], attempt: int) -> list[str | None]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda r: self.request(r, attempt), requests))

    def write_batch(self, plans: list[DialoguePlan], clips: dict[str, AnnotatedClip]) -> list[WrittenDialogue]:
        written = rewrite_dialogues(plans, clips, self.complete, self.batch_size)
        return [WrittenDialogue(plan=p, dialogue=d, writer=self.name, model_id=self.model_id,
                                prompt_hash=self.prompt_hash(), verdicts=[v]) for p, (d, v) in zip(plans, written)]
