"""vLLM backend (GPU). ``vllm`` is imported inside the constructor so the package stays optional
(the ``gpu`` extra)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .base import Completion, PromptLike, SamplingParams
from .chat import render_prompt, stop_strings

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
        log.info("vllm backend: %s", self.model_id)

    def sampling_params(self, params: SamplingParams, stops: tuple[str, ...]) -> Any:
        return self._vllm.SamplingParams(
            n=params.n,
            temperature=params.temperature,  # vLLM treats 0 as greedy
            top_p=1.0 if params.temperature == 0 else params.top_p,
            top_k=-1,  # disabled (-1 is accepted by every vLLM version; 0 only by newer ones)
            max_tokens=params.max_new_tokens,
            stop=list(stops) or None,
            seed=params.seed,
        )

    def generate(self, prompts: list[PromptLike], params: SamplingParams) -> list[list[Completion]]:
        texts = [render_prompt(p, self.tokenizer, self.chat_format) for p in prompts]
        stops = [stop_strings(p, self.tokenizer, self.chat_format, params.stop) for p in prompts]
        # vLLM takes one SamplingParams per prompt, so StarChat chats and raw prompts can mix.
        sps = [self.sampling_params(params, s) for s in stops]
        token_prompts = [
            {"prompt_token_ids": self.tokenizer(t, add_special_tokens=isinstance(p, str))["input_ids"]}
            for p, t in zip(prompts, texts, strict=True)
        ]
        results = self.llm.generate(token_prompts, sps, use_tqdm=True)
        out = []
        for res in results:
            n_prompt = len(res.prompt_token_ids or [])
            out.append(
                [
                    Completion(
                        text=o.text,
                        prompt_tokens=n_prompt,
                        completion_tokens=len(o.token_ids),
                        finish_reason="length" if o.finish_reason == "length" else "stop",
                    )
                    for o in res.outputs
                ]
            )
        return out

    def close(self) -> None:
        self.llm = None
