"""transformers backend: batched generation with left padding and KV cache; the CPU default."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from .base import Completion, PromptLike, SamplingParams
from .chat import render_prompt, stop_strings

log = logging.getLogger(__name__)


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return device


def pick_dtype(dtype: str, device: str):
    """``auto`` is bf16 on both CPU (fast with AVX512-BF16/AMX, half the memory) and GPU."""
    import torch

    if dtype == "auto":
        return torch.bfloat16
    try:
        value = getattr(torch, dtype)
    except AttributeError:
        value = None
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise ValueError(f"dtype must be 'auto' or a torch float dtype name like 'bfloat16', got {dtype!r}")
    return value


def truncate_at_stop(text: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    """Cut ``text`` before the earliest stop string; return (text, whether one was found)."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class HFBackend:
    name = "hf"

    def __init__(
        self,
        model_id: str | Path,
        dtype: str = "auto",
        device: str = "auto",
        batch_size: int = 8,
        chat_format: str = "auto",
        model: Any = None,
        tokenizer: Any = None,
    ) -> None:
        """``model_id`` is a resolved hub id or folder (see ``provision.resolve_model``). ``model``
        and ``tokenizer`` may be passed in ready-made (e.g. a peft-wrapped policy during training)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model_id = str(model_id)
        self.batch_size = batch_size
        self.chat_format = chat_format
        self.device = pick_device(device)
        t0 = time.perf_counter()
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(self.model_id)
        self.tokenizer.padding_side = "left"  # decoder-only batches must be padded on the left
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if model is None:
            model = AutoModelForCausalLM.from_pretrained(self.model_id, dtype=pick_dtype(dtype, self.device))
            model.to(self.device)
        self.model = model.eval()
        self.load_seconds = time.perf_counter() - t0
        eos = self.model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos] if eos is not None else []
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in eos:
            eos.append(self.tokenizer.eos_token_id)
        self.eos_ids = set(eos)
        self._torch = torch
        log.info(
            "hf backend: %s on %s (%s), loaded in %.1f s",
            self.model_id,
            self.device,
            self.model.dtype,
            self.load_seconds,
        )

    def _encode(self, prompt: PromptLike, text: str) -> list[int]:
        # Chat templates already contain any BOS; raw prompts get the tokenizer's usual specials.
        return self.tokenizer(text, add_special_tokens=isinstance(prompt, str))["input_ids"]

    def _gen_config(self, params: SamplingParams, stops: tuple[str, ...]):
        from transformers import GenerationConfig

        greedy = params.temperature == 0
        return GenerationConfig(
            max_new_tokens=params.max_new_tokens,
            do_sample=not greedy,
            temperature=None if greedy else params.temperature,
            top_p=None if greedy else params.top_p,
            top_k=None
            if greedy
            else 0,  # only top-p, the same semantics on every backend (HF's default is top_k=50)
            repetition_penalty=1.0,
            eos_token_id=sorted(self.eos_ids) or None,
            pad_token_id=self.tokenizer.pad_token_id,
            stop_strings=list(stops) or None,
        )

    def generate(self, prompts: list[PromptLike], params: SamplingParams) -> list[list[Completion]]:
        from tqdm.auto import tqdm

        torch = self._torch
        texts = [render_prompt(p, self.tokenizer, self.chat_format) for p in prompts]
        ids = [self._encode(p, t) for p, t in zip(prompts, texts, strict=True)]
        stops = [stop_strings(p, self.tokenizer, self.chat_format, params.stop) for p in prompts]
        # One row per (prompt, sample); longest first so each batch holds similar lengths (less padding).
        rows = sorted(
            ((i, k) for i in range(len(prompts)) for k in range(params.n)),
            key=lambda r: (-len(ids[r[0]]), r[0], r[1]),
        )
        out: list[list[Completion | None]] = [[None] * params.n for _ in prompts]
        batches = [rows[s : s + self.batch_size] for s in range(0, len(rows), self.batch_size)]
        new_tokens, t0 = 0, time.perf_counter()
        bar = tqdm(batches, desc=f"generate ({self.name})", unit="batch", disable=len(batches) < 2)
        for b, batch in enumerate(bar):
            batch_stops = tuple(dict.fromkeys(s for i, _ in batch for s in stops[i]))
            enc = self.tokenizer.pad({"input_ids": [ids[i] for i, _ in batch]}, return_tensors="pt")
            enc = {k: v.to(self.device) for k, v in enc.items()}
            # Seeded per batch: the same call (prompts, params, batch_size) gives the same samples.
            torch.manual_seed(params.seed * 1_000_003 + b)
            with torch.inference_mode():
                seqs = self.model.generate(
                    **enc, generation_config=self._gen_config(params, batch_stops), tokenizer=self.tokenizer
                )
            gen = seqs[:, enc["input_ids"].shape[1] :].tolist()
            for (i, k), toks in zip(batch, gen, strict=True):
                c = self._completion(toks, len(ids[i]), stops[i], params.max_new_tokens)
                new_tokens += c.completion_tokens
                out[i][k] = c
            rate = new_tokens / max(time.perf_counter() - t0, 1e-9)
            bar.set_postfix(tok_s=f"{rate:.1f}")
        elapsed = time.perf_counter() - t0
        log.info(
            "hf: %d completions, %d new tokens in %.1f s (%.1f tok/s)",
            len(rows),
            new_tokens,
            elapsed,
            new_tokens / max(elapsed, 1e-9),
        )
        return out  # type: ignore[return-value]

    def _completion(
        self, toks: list[int], prompt_len: int, stops: tuple[str, ...], max_new: int
    ) -> Completion:
        pad = self.tokenizer.pad_token_id
        n = next((j for j, t in enumerate(toks) if t in self.eos_ids), None)
        hit_eos = n is not None
        if n is None:
            # A row that stopped on a stop string early is filled with pad tokens after it.
            n = len(toks)
            while n > 0 and toks[n - 1] == pad and pad not in self.eos_ids:
                n -= 1
        text = self.tokenizer.decode(toks[:n], skip_special_tokens=False)
        text, hit_stop = truncate_at_stop(text, stops)
        # The EOS token counts as generated, unless the row ended on a stop string: then the "EOS" found
        # is padding (Qwen pads with <|endoftext|>, one of its EOS ids).
        used = n + 1 if hit_eos and not hit_stop else n
        finish = "stop" if hit_eos or hit_stop or used < max_new else "length"
        return Completion(text=text, prompt_tokens=prompt_len, completion_tokens=used, finish_reason=finish)

    def close(self) -> None:
        self.model = None
        self.tokenizer = None
