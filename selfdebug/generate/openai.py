"""Backend for any OpenAI-compatible endpoint (OpenAI, vLLM serve, llama.cpp server, ...), using only
the standard library: chats go to ``/chat/completions``, raw prompts to ``/completions``.

Base URL and key: constructor arguments, else env ``OPENAI_BASE_URL`` and the env var named by
``api_key_env`` (default ``OPENAI_API_KEY``). The key is optional (local servers need none).

Seeds: every sample is its own request (``n=1``) carrying its own seed (``seeds[i][j]`` reduced to 31 bits,
which every server accepts), so a sample does not depend on what else was asked; servers that honour
seeds (vLLM serve, llama.cpp server) then reproduce it. The price: a paid API bills the prompt once per
sample instead of once per ``n``. ``logprobs=True`` asks for the sampled tokens' log-probabilities (not
every server supports it); token ids are not part of the API, so ``token_ids`` stay None."""

from __future__ import annotations

import json
import logging
import os
import random
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from .base import Completion, PromptLike, SamplingParams, Seeds, resolve_seeds
from .chat import has_prefix, validate_chat
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
        logprobs: bool = False,
    ) -> None:
        self.model_id = str(model_id)
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get(api_key_env)
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.concurrency = max(1, concurrency)
        self.logprobs = logprobs

    @property
    def cache_tag(self) -> str:
        """The endpoint and model name: remote weights cannot be fingerprinted (see ``base.Backend``)."""
        return f"{self.name}|{self.base_url}|model={self.model_id}"

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

    def _one(self, prompt: PromptLike, params: SamplingParams, seed: int, index: int) -> Completion:
        """One sample of prompt ``index``: one request with ``n=1`` and this sample's seed."""
        body: dict = {
            "model": self.model_id,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_new_tokens,
            "seed": seed & 0x7FFFFFFF,
            "n": 1,
        }
        if params.stop:
            body["stop"] = list(params.stop[:MAX_API_STOPS])
        if isinstance(prompt, str):
            path, body["prompt"] = "/completions", prompt
            if self.logprobs:
                body["logprobs"] = 0
        else:
            path, body["messages"] = "/chat/completions", validate_chat(prompt, f"prompts[{index}]")
            if has_prefix(prompt):
                # a reply prefix: Mistral and DeepSeek read the message's "prefix" flag, vLLM these two fields;
                # a server that supports none of them says so in its error
                body.update(continue_final_message=True, add_generation_prompt=False)
            if self.logprobs:
                body["logprobs"] = True
        resp = self._post(path, body)
        choices = resp.get("choices") or []
        if not choices:
            raise OpenAIError(f"{self.base_url}{path}: response has no choices: {str(resp)[:300]}")
        c, usage = choices[0], resp.get("usage") or {}
        text = (c.get("message") or {}).get("content") or c.get("text") or ""
        total = usage.get("completion_tokens")
        text, cut = truncate_at_stop(text, params.stop)
        return Completion(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(total or 0),
            finish_reason="length" if c.get("finish_reason") == "length" and not cut else "stop",
            meta={"usage_missing": total is None},
            logprobs=_choice_logprobs(c),
        )

    def generate(
        self, prompts: list[PromptLike], params: SamplingParams, seeds: Seeds | None = None
    ) -> list[list[Completion]]:
        """Completions for each prompt; sample j of prompt i is one request seeded ``seeds[i][j]``."""
        from tqdm.auto import tqdm

        seeds = resolve_seeds(seeds, params, len(prompts), f"{self.name}.generate")
        with ThreadPoolExecutor(self.concurrency) as pool:
            futures = [[pool.submit(self._one, p, params, s, i) for s in seeds[i]] for i, p in enumerate(prompts)]
            bar = tqdm(total=len(prompts) * params.n, desc="generate (openai)", disable=len(prompts) * params.n < 2)
            out = []
            for row in futures:
                out.append([f.result() for f in row])
                bar.update(len(row))
            bar.close()
            return out

    def close(self) -> None:
        pass


def _choice_logprobs(choice: dict) -> list[float] | None:
    """Sampled tokens' log-probabilities from a choice, in either API's shape (chat: ``logprobs.content``,
    a list of ``{"token", "logprob"}``; completions: ``logprobs.token_logprobs``); None when absent."""
    lp = choice.get("logprobs")
    if not isinstance(lp, dict):
        return None
    if isinstance(lp.get("content"), list):
        return [float(t["logprob"]) for t in lp["content"]]
    if isinstance(lp.get("token_logprobs"), list):
        return [float(x) for x in lp["token_logprobs"]]
    return None
