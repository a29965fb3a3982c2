"""One client for OpenAI-compatible chat-completions servers: cache, retries, bounded concurrency and usage.

The writers, the captioner and the answerer all send their requests through it. Content may be a string or
a list of content parts (``text``, ``image_url`` with a data URL, ``input_audio``); ``response_format`` asks
the server for JSON under a schema (vLLM and SGLang enforce it; a server that ignores it just answers).

The API key is read from OMNICURATE_API_KEY at request time and never stored: not in the config, the
cache, the lineage or any log line. Finished requests are cached on disk under a hash of the request, so
a resumed run never pays twice; a cache hit sends nothing and counts as a hit, not as tokens.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from curators.writers.rewrite import cache_key
from schemas.usage import StageUsage

log = logging.getLogger(__name__)

API_KEY_ENV = "OMNICURATE_API_KEY"
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
FATAL_STATUS = frozenset({401, 403, 404})
"""Wrong key, no access or wrong URL/model: every request would fail the same way, so the run stops."""
MAX_BACKOFF_S = 30.0
DEFAULT_MAX_TOKENS = 160

ChatContent = str | list[dict]
ChatRequest = list[dict]
"""A chat's messages: ``{"role": ..., "content": str | [content parts]}``."""


class EndpointError(RuntimeError):
    """The endpoint refuses every request (authentication, URL or model); not a per-request failure."""


class UsageCounter:
    """Thread-safe running totals of one client's requests, tokens, cache hits and failures."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests = self.prompt_tokens = self.completion_tokens = self.cache_hits = self.failures = 0

    def add(self, *, requests: int = 0, prompt_tokens: int = 0, completion_tokens: int = 0, cache_hits: int = 0,
            failures: int = 0) -> None:
        with self._lock:
            self.requests += requests
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens
            self.cache_hits += cache_hits
            self.failures += failures

    def snapshot(self, stage: str, model: str) -> StageUsage:
        with self._lock:
            return StageUsage(stage=stage, model=model, requests=self.requests, prompt_tokens=self.prompt_tokens,
                              completion_tokens=self.completion_tokens, cache_hits=self.cache_hits,
                              failures=self.failures)


def json_schema_format(name: str, schema: dict) -> dict:
    """The ``response_format`` that asks for a reply under ``schema`` (OpenAI's strict JSON-schema mode)."""
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


class ChatClient:
    """Chat completions against ``base_url`` (``.../v1``) for ``model``; ``stage`` names the usage rows."""

    def __init__(self, base_url: str, model: str, *, stage: str = "writer", cache_dir: str | Path | None = None,
                 timeout_s: float = 60.0, max_retries: int = 4, concurrency: int = 4, backoff_s: float = 0.5,
                 max_tokens: int = DEFAULT_MAX_TOKENS):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.stage = stage
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.concurrency = concurrency
        self.backoff_s = backoff_s
        self.max_tokens = max_tokens
        self.counter = UsageCounter()

    @property
    def requests_sent(self) -> int:
        """HTTP requests made (retries included, cache hits excluded)."""
        return self.counter.requests

    def usage(self) -> StageUsage:
        return self.counter.snapshot(self.stage, self.model)

    def payload(self, messages: ChatRequest, attempt: int = 0, *, response_format: dict | None = None,
                max_tokens: int | None = None) -> dict:
        """The request body; attempt 0 is greedy, later attempts sample with their own seed."""
        body = {"model": self.model, "messages": messages, "temperature": 0.0 if attempt == 0 else 0.8,
                "max_tokens": max_tokens or self.max_tokens, "seed": attempt}
        if response_format is not None:
            body["response_format"] = response_format
        return body

    def cache_path(self, payload: dict) -> Path | None:
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
        self.counter.add(requests=1)
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

    def send(self, payload: dict) -> str | None:
        """The reply text for one request body: from the cache when it finished before; None after failed retries."""
        cached = self.cache_path(payload)
        if cached is not None and cached.exists():
            self.counter.add(cache_hits=1)
            return json.loads(cached.read_text())["content"]
        problem = ""
        for retry in range(self.max_retries + 1):
            try:
                body = self._post(payload)
                content = body["choices"][0]["message"]["content"]
                if not isinstance(content, str):
                    raise TypeError("content is not text")
                break
            except urllib.error.HTTPError as exc:
                if exc.code in FATAL_STATUS:
                    raise EndpointError(f"{self.url} answered {exc.code}: check the URL, model and "
                                        f"{API_KEY_ENV}") from None
                problem = f"HTTP {exc.code}"
                if exc.code not in RETRYABLE_STATUS:
                    self.counter.add(failures=1)
                    return None
                retry_after = exc.headers.get("Retry-After") if exc.headers else None
            except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
                problem, retry_after = f"{type(exc).__name__}: {exc}", None
            except (KeyError, IndexError, TypeError, json.JSONDecodeError):
                problem, retry_after = "malformed response", None
            if retry < self.max_retries:
                self._wait(retry, retry_after)
        else:
            log.warning("%s request failed after %d tries: %s", self.stage, self.max_retries + 1, problem)
            self.counter.add(failures=1)
            return None
        usage = body.get("usage") or {}
        self.counter.add(prompt_tokens=int(usage.get("prompt_tokens") or 0),
                         completion_tokens=int(usage.get("completion_tokens") or 0))
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".tmp{os.getpid()}.{threading.get_ident()}")
            tmp.write_text(json.dumps({"content": content, "usage": usage}))
            tmp.replace(cached)
        return content

    def request(self, messages: ChatRequest, attempt: int = 0, *, response_format: dict | None = None,
                max_tokens: int | None = None) -> str | None:
        return self.send(self.payload(messages, attempt, response_format=response_format, max_tokens=max_tokens))

    def complete(self, requests: list[ChatRequest], attempt: int = 0, *, response_format: dict | None = None,
                 max_tokens: int | None = None) -> list[str | None]:
        """Replies in request order, at most ``concurrency`` requests in flight."""
        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            return list(pool.map(lambda r: self.request(r, attempt, response_format=response_format,
                                                        max_tokens=max_tokens), requests))
