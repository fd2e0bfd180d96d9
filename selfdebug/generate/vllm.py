"""vLLM backend (GPU). ``vllm`` is imported inside the constructor so the package stays optional
(the ``gpu`` extra).

Every sample is its own vLLM request (``n=1``) with its own seed, so sample j of a prompt is the same
whatever else was asked with it (vLLM seeds sample j of an ``n>1`` request as ``seed + j``, so two requests
with one seed replay each other). vLLM's prefix cache shares the prompt's KV among a prompt's samples.
Each request asks ``logprobs=0``: the sampled token's log-probability (vLLM's default logprobs mode:
raw, before temperature and top-p)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .base import Completion, PromptLike, SamplingParams, Seeds, resolve_seeds
from .chat import render_prompt, resolve_chat_format, stop_strings
from .fingerprint import local_model_dir, text_fingerprint, weights_fingerprint

log = logging.getLogger(__name__)


class VLLMBackend:
    name = "vllm"

    def __init__(
        self,
        model_id: str | Path,
        dtype: str = "auto",
        chat_format: str = "auto",
        gpu_memory_utilization: float = 0.85,
        max_model_len: int | None = None,
        seed: int = 0,
        **engine_kwargs: Any,
    ) -> None:
        try:
            import vllm
        except ImportError as e:
            raise ImportError(
                "backend 'vllm' needs the vllm package: install the gpu extra (pip install -e '.[gpu]') "
                "or use backend 'hf' on CPU"
            ) from e
        self._vllm = vllm
        self.model_id = str(model_id)
        self.chat_format = chat_format
        kwargs = dict(
            model=self.model_id,
            dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization,
            seed=seed,
            **engine_kwargs,
        )
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        self.llm = vllm.LLM(**kwargs)
        # Render prompts ourselves with the same tokenizer and chat.py rules as the hf backend, so a
        # chat becomes the identical prompt string on every backend (llm.chat would always use the
        # template and could not fall back to StarChat for base models).
        self.tokenizer = self.llm.get_tokenizer()
        self.dtype = dtype
        local = local_model_dir(self.model_id)
        self.weights_id = weights_fingerprint(local) if local is not None else f"hub:{self.model_id}"
        if local is None:
            log.warning("vllm backend: %s is not a local folder; its cache tag names the id only", self.model_id)
        log.info("vllm backend: %s", self.model_id)

    @property
    def cache_tag(self) -> str:
        """Engine, weights, dtype and chat format (see ``base.Backend.cache_tag``)."""
        fmt = resolve_chat_format(self.tokenizer, self.chat_format)
        tmpl = getattr(self.tokenizer, "chat_template", None)
        chat = f"template:{text_fingerprint(tmpl)}" if fmt == "template" else fmt
        return f"{self.name}|weights={self.weights_id}|dtype={self.dtype}|chat={chat}"

    def sampling_params(self, params: SamplingParams, stops: tuple[str, ...], seed: int | None = None) -> Any:
        """One sample's vLLM parameters (``n=1``; ``seed`` defaults to ``params.seed``)."""
        return self._vllm.SamplingParams(
            n=1,
            temperature=params.temperature,  # vLLM treats 0 as greedy
            top_p=1.0 if params.temperature == 0 else params.top_p,
            top_k=-1,  # disabled (-1 is accepted by every vLLM version; 0 only by newer ones)
            max_tokens=params.max_new_tokens,
            stop=list(stops) or None,
            seed=params.seed if seed is None else seed,
            logprobs=0,
        )

    def generate(
        self, prompts: list[PromptLike], params: SamplingParams, seeds: Seeds | None = None
    ) -> list[list[Completion]]:
        """Completions for each prompt; sample j of prompt i is a request of its own seeded ``seeds[i][j]``."""
        seeds = resolve_seeds(seeds, params, len(prompts), f"{self.name}.generate")
        texts = [render_prompt(p, self.tokenizer, self.chat_format) for p in prompts]
        stops = [stop_strings(p, self.tokenizer, self.chat_format, params.stop) for p in prompts]
        ids = [self.tokenizer(t, add_special_tokens=isinstance(p, str))["input_ids"]
               for p, t in zip(prompts, texts, strict=True)]
        # One request per sample, each with its own SamplingParams (StarChat chats and raw prompts can mix).
        jobs = [(i, j) for i in range(len(prompts)) for j in range(params.n)]
        sps = [self.sampling_params(params, stops[i], seeds[i][j]) for i, j in jobs]
        results = self.llm.generate([{"prompt_token_ids": ids[i]} for i, _ in jobs], sps, use_tqdm=True)
        if len(results) != len(jobs):
            raise RuntimeError(f"vllm returned {len(results)} results for {len(jobs)} requests")
        out: list[list[Completion]] = [[] for _ in prompts]
        for (i, _), res in zip(jobs, results, strict=True):
            o = res.outputs[0]
            prompt_ids = list(res.prompt_token_ids or ids[i])
            token_ids = list(o.token_ids)
            out[i].append(Completion(
                text=o.text,
                prompt_tokens=len(prompt_ids),
                completion_tokens=len(token_ids),
                finish_reason="length" if o.finish_reason == "length" else "stop",
                prompt_token_ids=prompt_ids,
                token_ids=token_ids,
                logprobs=_sampled_logprobs(o, token_ids),
            ))
        return out

    def close(self) -> None:
        self.llm = None


def _sampled_logprobs(output: Any, token_ids: list[int]) -> list[float] | None:
    """The sampled tokens' log-probabilities from a vLLM output (``logprobs``: per position, a dict from
    token id to an object with ``.logprob``, or a float); None when vLLM returned none."""
    steps = getattr(output, "logprobs", None)
    if not steps or len(steps) != len(token_ids):
        return None
    out = []
    for tok, step in zip(token_ids, steps, strict=True):
        entry = step.get(tok) if hasattr(step, "get") else None
        if entry is None:
            return None
        out.append(float(getattr(entry, "logprob", entry)))
    return out
