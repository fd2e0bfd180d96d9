"""Backend for any OpenAI-compatible endpoint (OpenAI, vLLM serve, llama.cpp server, ...), using only
the standard library: chats go to ``/chat/completions``, raw prompts to ``/completions``.

Base URL and key: constructor arguments, else env ``OPENAI_BASE_URL`` and the env var named by
``api_key_env`` (default ``OPENAI_API_KEY``). The key is optional (local servers need none)."""

from __future__ import annotations

import json
import logging
import os
import random
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from .base import Completion, PromptLike, SamplingParams
from .chat import validate_chat
from .hf import truncate_at_stop

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
MAX_API_STOPS = 4  # OpenAI accepts at most 4 stop strings; the rest are applied locally


class OpenAIError(RuntimeError):
    pass


class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        model_id: str,
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        max_retries: int = 6,
        backoff_s: float = 1.0,
        timeout_s: float = 600.0,
        concurrency: int = 4,
    ) -> None:
        self.model_id = str(model_id)
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get(api_key_env)
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.concurrency = max(1, concurrency)

    def _post(self, path: str, body: dict) -> dict:
        url = self.base_url + path
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode()
        for attempt in range(self.max_retries + 1):
            req = urllib.request.Request(url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    return json.loads(resp.read().decode())
            except urllib.error.HTTPError as e:
                detail = e.read().decode(errors="replace")[:500]
                if e.code not in RETRY_STATUS or attempt == self.max_retries:
                    raise OpenAIError(f"POST {url} failed with HTTP {e.code}: {detail}") from e
                retry_after = e.headers.get("Retry-After") if e.headers else None
                delay = (
                    float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else None
                )
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                if attempt == self.max_retries:
                    raise OpenAIError(f"POST {url} failed after {attempt + 1} tries: {e}") from e
                delay = None
            # Exponential backoff with jitter, unless the server said how long to wait.
            delay = delay if delay is not None else self.backoff_s * 2**attempt * (0.5 + random.random())
            log.warning("POST %s: retry %d/%d in %.1f s", url, attempt + 1, self.max_retries, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _one(self, prompt: PromptLike, params: SamplingParams, index: int) -> list[Completion]:
        body: dict = {
            "model": self.model_id,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_new_tokens,
            "seed": params.seed + index,
        }
        if params.stop:
            body["stop"] = list(params.stop[:MAX_API_STOPS])
        if isinstance(prompt, str):
            path, body["prompt"] = "/completions", prompt
        else:
            path, body["messages"] = "/chat/completions", validate_chat(prompt, f"prompts[{index}]")
        got: list[Completion] = []
        while len(got) < params.n:
            # Some servers ignore n > 1: ask again for what is missing.
            body["n"] = params.n - len(got)
            resp = self._post(path, body)
            choices = resp.get("choices") or []
            if not choices:
                raise OpenAIError(f"{self.base_url}{path}: response has no choices: {str(resp)[:300]}")
            usage = resp.get("usage") or {}
            texts = [(c.get("message") or {}).get("content") or c.get("text") or "" for c in choices]
            total = usage.get("completion_tokens")
            lengths = [max(len(t), 1) for t in texts]
            for c, text, length in zip(choices, texts, lengths, strict=True):
                # usage.completion_tokens covers all choices: share it out by text length when n > 1.
                tokens = total if len(choices) == 1 else round((total or 0) * length / sum(lengths))
                text, cut = truncate_at_stop(text, params.stop)
                got.append(
                    Completion(
                        text=text,
                        prompt_tokens=int(usage.get("prompt_tokens") or 0),
                        completion_tokens=int(tokens or 0),
                        finish_reason="length" if c.get("finish_reason") == "length" and not cut else "stop",
                        meta={"completion_tokens_shared": len(choices) > 1, "usage_missing": total is None},
                    )
                )
            body["seed"] += 7919  # a different seed for the retry round
        return got[: params.n]

    def generate(self, prompts: list[PromptLike], params: SamplingParams) -> list[list[Completion]]:
        from tqdm.auto import tqdm

        with ThreadPoolExecutor(self.concurrency) as pool:
            futures = [pool.submit(self._one, p, params, i) for i, p in enumerate(prompts)]
            return [f.result() for f in tqdm(futures, desc="generate (openai)", disable=len(prompts) < 2)]

    def close(self) -> None:
        pass
