"""transformers backend: batched generation with left padding and KV cache; the CPU default.

Sampling is done per row (``_RowSampler``): each (prompt, sample) row draws its tokens from its own
``torch.Generator`` seeded by the caller, so which other rows share its batch does not change its draws.
What can still differ is the logits: a batch pads rows on the left, and padded matrix products may round
differently in the last bits (bf16 more than fp32), which can flip a token sitting on a sampling boundary.
The tests check exact equality alone vs batched on the tiny fp32 model.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from .base import Completion, PromptLike, SamplingParams, Seeds, resolve_seeds
from .chat import render_prompt, resolve_chat_format, stop_strings
from .fingerprint import local_model_dir, module_fingerprint, text_fingerprint, weights_fingerprint

log = logging.getLogger(__name__)


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return device


def pick_dtype(dtype: str, device: str):
    """``auto`` is bf16 on a GPU and on a CPU with native bf16 arithmetic (AVX512-BF16 or AMX), else fp32:
    without them torch emulates bf16 through fp32, which is slower than fp32 itself (see cpu.py)."""
    import torch

    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16
        from .cpu import auto_cpu_dtype

        return getattr(torch, auto_cpu_dtype())
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


class _RowSampler:
    """A transformers logits processor that picks every row's next token itself and hands ``generate``
    a one-hot score row (greedy decoding then takes exactly that token).

    Why: ``generate`` samples a whole batch from one global RNG, so a row's draws depend on its batch mates.
    Here row r draws one uniform per step from ``gens[r]``, and the token by inverse CDF over its own
    temperature + top-p distribution (the same nucleus rule as llama.cpp's sampler and transformers'
    ``TopPLogitsWarper``). It also records each sampled token's raw log-probability (log-softmax of the
    float32 logits at temperature 1)."""

    def __init__(self, gens: list[Any], temperature: float, top_p: float) -> None:
        self.gens, self.temperature, self.top_p = gens, temperature, top_p
        self.steps: list[Any] = []  # per step, a (rows,) tensor of the sampled tokens' logprobs

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        scores = scores.float()
        lse = torch.logsumexp(scores, dim=-1, keepdim=True)
        if self.temperature == 0:
            tok = scores.argmax(dim=-1, keepdim=True)
        else:
            probs = torch.softmax(scores / self.temperature, dim=-1)
            u = torch.cat([torch.rand(1, generator=g, device=scores.device) for g in self.gens]).unsqueeze(-1)
            if self.top_p < 1.0:
                sp, idx = probs.sort(dim=-1, descending=True)
                sp = sp.masked_fill(sp.cumsum(dim=-1) - sp >= self.top_p, 0.0)  # keep the crossing token
                cum = sp.cumsum(dim=-1)
                j = torch.searchsorted(cum, u * cum[:, -1:], right=True)
                last = (sp > 0).sum(dim=-1, keepdim=True) - 1  # rounding must not pick a dropped token
                tok = idx.gather(-1, torch.minimum(j, last))
            else:
                cum = probs.cumsum(dim=-1)
                j = torch.searchsorted(cum, u * cum[:, -1:], right=True)
                tok = torch.where(j >= probs.shape[-1], probs.argmax(dim=-1, keepdim=True), j)
        self.steps.append((scores.gather(-1, tok) - lse).squeeze(-1))
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(-1, tok, 0.0)

    def logprobs(self, row: int, n: int) -> list[float]:
        return [float(step[row]) for step in self.steps[:n]]


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
        weights_id: str | None = None,
    ) -> None:
        """``model_id`` is a resolved hub id or folder (see ``provision.resolve_model``). ``model``
        and ``tokenizer`` may be passed in ready-made (e.g. a peft-wrapped policy during training).
        ``weights_id`` names the weights in the cache tag instead of a fingerprint (e.g. a checkpoint's
        hash a trainer already knows); by default a folder's files are fingerprinted as loaded and a
        ready-made model's parameters whenever the tag is asked for (they may change in place)."""
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
        self._weights_id = weights_id
        if model is None:
            local = local_model_dir(self.model_id)
            if weights_id is None and local is not None:
                self._weights_id = weights_fingerprint(local)  # before loading: what is loaded is this
            model = AutoModelForCausalLM.from_pretrained(self.model_id, dtype=pick_dtype(dtype, self.device))
            model.to(self.device)
            if self._weights_id is None:  # a hub download: its commit names the weights exactly
                commit = getattr(model.config, "_commit_hash", None)
                self._weights_id = f"hub:{self.model_id}@{commit}" if commit else None
                if commit is None:
                    log.warning("hf backend: cannot fingerprint %s; hashing its parameters", self.model_id)
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

    @property
    def cache_tag(self) -> str:
        """Engine, weights, dtype and chat format (see ``base.Backend.cache_tag``)."""
        weights = self._weights_id if self._weights_id is not None else module_fingerprint(self.model)
        fmt = resolve_chat_format(self.tokenizer, self.chat_format)
        chat = f"template:{text_fingerprint(self.tokenizer.chat_template)}" if fmt == "template" else fmt
        dtype = str(self.model.dtype).removeprefix("torch.")
        return f"{self.name}|weights={weights}|dtype={dtype}|chat={chat}"

    def _encode(self, prompt: PromptLike, text: str) -> list[int]:
        # Chat templates already contain any BOS; raw prompts get the tokenizer's usual specials.
        return self.tokenizer(text, add_special_tokens=isinstance(prompt, str))["input_ids"]

    def _gen_config(self, params: SamplingParams, stops: tuple[str, ...]):
        from transformers import GenerationConfig

        # Greedy on the one-hot scores of _RowSampler, which does temperature and top-p itself. Explicit
        # neutral values: transformers fills unset (None) ones from the model's generation_config.
        return GenerationConfig(
            max_new_tokens=params.max_new_tokens,
            do_sample=False,
            temperature=1.0,
            top_p=1.0,
            top_k=0,
            repetition_penalty=1.0,
            eos_token_id=sorted(self.eos_ids) or None,
            pad_token_id=self.tokenizer.pad_token_id,
            stop_strings=list(stops) or None,
        )

    def generate(
        self, prompts: list[PromptLike], params: SamplingParams, seeds: Seeds | None = None
    ) -> list[list[Completion]]:
        """Completions for each prompt; row (i, j) samples with a ``torch.Generator`` seeded ``seeds[i][j]``."""
        from tqdm.auto import tqdm
        from transformers import LogitsProcessorList

        torch = self._torch
        seeds = resolve_seeds(seeds, params, len(prompts), f"{self.name}.generate")
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
        for batch in bar:
            batch_stops = tuple(dict.fromkeys(s for i, _ in batch for s in stops[i]))
            enc = self.tokenizer.pad({"input_ids": [ids[i] for i, _ in batch]}, return_tensors="pt")
            enc = {k: v.to(self.device) for k, v in enc.items()}
            gens = [torch.Generator(device=self.device).manual_seed(seeds[i][k]) for i, k in batch]
            sampler = _RowSampler(gens, params.temperature, params.top_p)
            with torch.inference_mode():
                seqs = self.model.generate(
                    **enc, generation_config=self._gen_config(params, batch_stops), tokenizer=self.tokenizer,
                    logits_processor=LogitsProcessorList([sampler]),
                )
            gen = seqs[:, enc["input_ids"].shape[1] :].tolist()
            for r, ((i, k), toks) in enumerate(zip(batch, gen, strict=True)):
                c = self._completion(toks, len(ids[i]), stops[i], params.max_new_tokens)
                c.prompt_token_ids = list(ids[i])
                c.token_ids = toks[: c.completion_tokens]
                c.logprobs = sampler.logprobs(r, c.completion_tokens)
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
