"""llama.cpp backend: runs a GGUF directly, with continuous batching of many sequences in one context.

Why the low-level API: ``Llama.create_completion`` decodes one sequence at a time, which on CPU is bound by
memory bandwidth (every token streams all weights once). Decoding k sequences per ``llama_decode`` call
streams the weights once for k tokens, so aggregate throughput grows with k until compute saturates.

How: one ``llama_context`` with ``n_parallel`` sequence slots. Jobs (prompt, sample index) fill free slots;
the n samples of one prompt share a single prompt evaluation (its KV cache is copied to sibling slots with
``llama_memory_seq_cp``); every step decodes one token for each live slot; finished sequences leave the batch
at once and free their slot for the next job. Sampling (temperature, top-p) is done here in numpy with one RNG
per sample, seeded by the caller (``seeds[i][j]``), so a completion does not depend on which other sequences
shared its batch. Each sampled token's raw log-probability (log-softmax at temperature 1) is kept.

Prefix cache: a slot keeps its prompt's KV after its sequence finishes, across ``generate`` calls. A new
prompt starts from the slot (live or free) holding its longest common token prefix: in place when that is
the free slot it gets, else by copying that slot's KV stream and trimming it; only the rest of the prompt
is evaluated.
The evaluation's prompts share a lot (every refinement of a problem repeats the problem; "Refine" and
"Expl.+Refine" of one wrong sample differ only in the last sentence; Resample repeats the initial prompt),
and prompts are admitted in token order so that those sharing a prefix follow each other. A refinement
prompt is two to three times longer than its reply, so prompt evaluation is a large share of that stage.

Packed slots: see ``_compact``.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .base import Chat, Completion, PromptLike, SamplingParams, Seeds, resolve_seeds
from .chat import render_prompt, resolve_chat_format, stop_strings
from .fingerprint import text_fingerprint, weights_fingerprint

log = logging.getLogger(__name__)

_backend_initialised = False
_log_callback = None  # module-global: llama.cpp keeps the pointer for the life of the process


def _import_llama_cpp():
    # llama.cpp's OpenMP threads busy-wait between graph runs by default; when the cores are shared (other
    # processes, the sandbox) that spinning starved decoding 5x in our measurements. Passive waiting costs
    # ~nothing per decode step. Read once when libgomp loads, so set before the first import.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import llama_cpp
    except ImportError as e:  # pragma: no cover - depends on the machine
        raise ImportError(
            "the llamacpp backend needs llama-cpp-python (pip install llama-cpp-python==0.3.36; it compiles "
            "llama.cpp from source) - or use backend 'hf'"
        ) from e
    return llama_cpp


def sample_token(logits: np.ndarray, temperature: float, top_p: float, rng: np.random.Generator) -> int:
    """One token from a logits row: greedy at temperature 0, else temperature + nucleus (top-p) sampling.

    Top-p keeps the smallest set of most likely tokens whose mass reaches ``top_p`` (the token that crosses
    the threshold is kept), the same rule as transformers' ``TopPLogitsWarper``.
    """
    return sample_token_logprob(logits, temperature, top_p, rng)[0]


def sample_token_logprob(
    logits: np.ndarray, temperature: float, top_p: float, rng: np.random.Generator, buf: np.ndarray | None = None,
    sampling: bool = False,
) -> tuple[int, float]:
    """``sample_token`` and the sampled token's log-probability under the raw distribution: log-softmax of
    the logits at temperature 1, before temperature and top-p (what an RL objective compares policies
    on). At temperature 1 it comes free from the sampler's own sum; otherwise one extra exp over the
    vocabulary in float32 (about 0.1 ms for 152k logits; ``buf``, a float32 array of the logits' size,
    saves its allocation).

    ``sampling``: the log-probability under the distribution the token was drawn from instead (temperature and
    top-p applied, renormalised over the nucleus; 0 when greedy), free from the sampler's own sums: the
    behaviour policy of an importance-sampling correction (``selfdebug.rl.engine``)."""
    m = logits.max()
    if temperature == 0:
        tok = int(np.argmax(logits))
        return tok, 0.0 if sampling else _raw_logprob(logits, m, tok, buf)
    # float32 throughout (float64 made this 3 ms per token on 152k logits, a sizeable share of a decode step)
    if temperature == 1:
        p = logits - m
    else:
        p = logits * np.float32(1.0 / temperature)
        p -= p.max()
    np.exp(p, out=p)  # unnormalised probabilities, the top one is 1
    total = float(p.sum(dtype=np.float64))
    if top_p < 1.0:
        # The nucleus is a prefix of the tokens sorted by probability. Sorting 152k entries per token is slow,
        # so first take the tokens above a small threshold; if they hold top_p of the mass the nucleus is in
        # them (every other token is less likely than all of them); otherwise lower the threshold.
        for thresh in (1e-4, 1e-6, 1e-8, 0.0):
            cand = np.flatnonzero(p >= np.float32(thresh)) if thresh else np.arange(p.size)
            if float(p[cand].sum(dtype=np.float64)) >= top_p * total:
                break
        cand = cand[np.argsort(-p[cand], kind="stable")]
        cum = np.cumsum(p[cand], dtype=np.float64)
        keep = int(np.searchsorted(cum, top_p * total, side="left")) + 1
        cand, cum = cand[:keep], cum[:keep]
    else:
        cand, cum = None, np.cumsum(p, dtype=np.float64)
    i = min(int(np.searchsorted(cum, rng.random() * cum[-1], side="right")), cum.size - 1)
    tok = int(cand[i]) if cand is not None else i
    if sampling:  # p[tok] > 0: a token of zero weight is never drawn
        return tok, math.log(max(float(p[tok]), 1e-45)) - math.log(float(cum[-1]))
    if temperature == 1:
        return tok, float(logits[tok] - m) - math.log(total)
    return tok, _raw_logprob(logits, m, tok, buf)


def _raw_logprob(logits: np.ndarray, m: np.floating, tok: int, buf: np.ndarray | None) -> float:
    """log softmax(logits)[tok], given m = logits.max(): a float32 logsumexp (pairwise sum, exact enough)."""
    e = np.subtract(logits, m, out=buf)
    np.exp(e, out=e)
    return float(logits[tok] - m) - math.log(float(e.sum()))


MIN_COPY_REUSE = 8
"""Shortest shared prefix worth copying another slot's KV stream for (a free slot's own is reused from 1)."""


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    if n == 0 or a[0] != b[0]:
        return 0
    if a[:n] == b[:n]:
        return n
    lo, hi = 1, n  # a[:lo] == b[:lo], a[:hi] != b[:hi]: bisect (list slices compare in C)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


class _TemplateTokenizer:
    """The two things chat.py needs from a tokenizer, backed by the chat template stored in the GGUF."""

    def __init__(self, chat_template: str | None, name_or_path: str) -> None:
        self.chat_template = chat_template
        self.name_or_path = name_or_path

    def apply_chat_template(self, chat: Chat, tokenize: bool = False, add_generation_prompt: bool = True) -> str:
        from transformers.utils.chat_template_utils import render_jinja_template

        rendered = render_jinja_template(
            conversations=[chat], chat_template=self.chat_template, add_generation_prompt=add_generation_prompt
        )
        # transformers 5 returns (rendered texts, generation indices)
        if isinstance(rendered, tuple):
            rendered = rendered[0]
        return rendered[0] if isinstance(rendered, list) else rendered


@dataclass
class _Seq:
    """One sequence being generated in a slot."""

    prompt_idx: int
    sample_idx: int
    n_prompt: int
    rng: np.random.Generator
    pos: int = 0
    tokens: list[int] = field(default_factory=list)  # sampled tokens, the end-of-generation token excluded
    sampled: list[int] = field(default_factory=list)  # every sampled token, the end-of-generation one included
    logprobs: list[float] = field(default_factory=list)  # raw log-probability of each token in ``sampled``
    n_generated: int = 0  # tokens sampled, the end-of-generation token included (as transformers and vLLM count)
    text: bytes = b""
    finish: str | None = None
    stops: tuple[str, ...] = ()
    stop_at: int | None = None  # char index in the decoded text where a stop string begins


class LlamaCppBackend:
    """Backend over a GGUF file with llama.cpp. ``n_ctx`` is the context per sequence (prompt + completion)."""

    name = "llamacpp"
    streams_results = True
    """``generate`` takes ``on_result`` and calls it for each prompt as soon as it is done."""

    def __init__(
        self,
        gguf_path: str | Path,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_parallel: int = 16,
        n_batch: int = 512,
        chat_template: str | None = None,
        chat_format: str = "auto",
        kv_unified: bool = False,
        flash_attn: bool = False,
        prefix_cache: bool = True,
        weights_tag: str = "original",
        extra_buffer_types: bool = True,
        lora_path: str | Path | None = None,
        lora_scale: float = 1.0,
        sampling_logprobs: bool = False,
        verbose: bool = False,
    ) -> None:
        """``lora_path``: a GGUF LoRA adapter (``gguf_export.export_lora_adapter``) applied over the model at
        ``lora_scale`` (1.0: as trained). ``sampling_logprobs``: each completion's ``logprobs`` are under the
        distribution its tokens were drawn from (temperature and top-p applied) rather than the raw one."""
        global _backend_initialised, _log_callback
        lc = _import_llama_cpp()
        self._lc = lc
        self.gguf_path = Path(gguf_path)
        if not self.gguf_path.is_file():
            raise FileNotFoundError(f"LlamaCppBackend: GGUF file not found: {self.gguf_path}")
        if n_parallel < 1 or n_ctx < 16:
            raise ValueError(f"LlamaCppBackend: need n_parallel >= 1 and n_ctx >= 16, got {n_parallel}, {n_ctx}")
        self.n_ctx, self.n_parallel, self.n_batch = n_ctx, n_parallel, n_batch
        self.prefix_cache = prefix_cache
        self.sampling_logprobs = sampling_logprobs
        self.weights_tag = weights_tag
        """Which encoding of the weights runs (gguf_requant): part of the cache key of generated replies."""
        # Tokens whose KV each slot holds from position 0 (its last prompt); valid while the context lives.
        self._slot_tokens: list[list[int]] = [[] for _ in range(n_parallel)]
        self.stats = {"prompt_tokens": 0, "prefill_tokens": 0, "reused_tokens": 0, "prompts": 0}
        """Totals over the backend's life: prompt tokens asked for, evaluated, and taken from the prefix cache."""
        self.n_threads = n_threads or max(1, len(os.sched_getaffinity(0)))
        if not verbose and _log_callback is None:
            # llama.cpp logs every load to stderr; a no-op callback silences it. It must outlive every
            # backend (a freed callback that llama.cpp still calls crashes the process).
            _log_callback = lc.llama_log_callback(lambda level, text, data: None)
            lc.llama_log_set(_log_callback, ctypes.c_void_p())
        if not _backend_initialised:
            lc.llama_backend_init()
            _backend_initialised = True

        mparams = lc.llama_model_default_params()
        mparams.n_gpu_layers = 0
        # Extra buffer types hold AMX and repacked (interleaved) weights; off means the plain CPU kernels. The
        # probe (probe.py) turns them off when the configured engine crashes in a child process.
        mparams.use_extra_bufts = bool(extra_buffer_types)
        self._model = lc.llama_model_load_from_file(str(self.gguf_path).encode(), mparams)
        if not self._model:
            raise RuntimeError(f"LlamaCppBackend: llama.cpp could not load {self.gguf_path}")
        # fingerprinted as loaded: a file rewritten later is not what this backend runs
        self.weights_fingerprint = weights_fingerprint(self.gguf_path)
        self._vocab = lc.llama_model_get_vocab(self._model)
        self.n_vocab = lc.llama_vocab_n_tokens(self._vocab)
        self._lp_buf = np.empty(self.n_vocab, dtype=np.float32)  # scratch for the per-token log-softmax

        cparams = lc.llama_context_default_params()
        cparams.n_ctx = n_ctx * n_parallel
        cparams.n_batch = max(n_batch, n_parallel)
        cparams.n_ubatch = max(n_batch, n_parallel)
        cparams.n_seq_max = n_parallel
        cparams.n_threads = self.n_threads
        cparams.n_threads_batch = self.n_threads
        cparams.kv_unified = kv_unified
        cparams.flash_attn_type = (
            lc.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn else lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        cparams.no_perf = True
        self._ctx = lc.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            raise RuntimeError(f"LlamaCppBackend: could not create a context (n_ctx={cparams.n_ctx})")
        self._adapter = None
        self.lora_fingerprint: str | None = None
        if lora_path is not None:
            self._set_lora(Path(lora_path), lora_scale)
        self._mem = lc.llama_get_memory(self._ctx)
        self._batch_cap = max(n_batch, n_parallel)
        self._batch = lc.llama_batch_init(self._batch_cap, 0, 1)
        self.chat_template = chat_template or self._gguf_meta("tokenizer.chat_template")
        self.chat_format = chat_format
        self._template_tok = _TemplateTokenizer(self.chat_template, str(self.gguf_path))
        resolve_chat_format(self._template_tok, chat_format)  # fail early on a bad chat_format

    def _set_lora(self, path: Path, scale: float) -> None:
        lc = self._lc
        if not path.is_file():
            raise FileNotFoundError(f"LlamaCppBackend: LoRA adapter not found: {path}")
        adapter = lc.llama_adapter_lora_init(self._model, str(path).encode())
        if not adapter:
            raise RuntimeError(f"LlamaCppBackend: llama.cpp could not load the LoRA adapter {path} over {self.gguf_path} "
                               "(another architecture, or tensor shapes that do not match the model)")
        adapters = (lc.llama_adapter_lora_p_ctypes * 1)(adapter)
        scales = (ctypes.c_float * 1)(float(scale))
        if lc.llama_set_adapters_lora(self._ctx, adapters, 1, scales):
            lc.llama_adapter_lora_free(adapter)
            raise RuntimeError(f"LlamaCppBackend: could not apply the LoRA adapter {path}")
        self._adapter = adapter
        self.lora_fingerprint = f"{weights_fingerprint(path)}x{scale:g}"

    def swap_lora(self, path: str | Path, scale: float = 1.0) -> None:
        """Serve another LoRA adapter (RL rollouts after each update): the new adapter loaded and set on the
        context, then the old one freed, then the KV and prefix caches cleared, in that order, so that the
        context never refers to a freed adapter and no KV computed under the old weights is reused."""
        old = self._adapter
        self._set_lora(Path(path), scale)
        if old:
            self._lc.llama_adapter_lora_free(old)
        self.clear_prefix_cache()

    @property
    def cache_tag(self) -> str:
        """Engine, weights (a fingerprint of the GGUF that runs, so a re-encoding or a rewritten file is
        another model; and of the LoRA adapter over it) and chat format (with the template's hash): see
        ``base.Backend.cache_tag``."""
        fmt = resolve_chat_format(self._template_tok, self.chat_format)
        chat = f"template:{text_fingerprint(self.chat_template)}" if fmt == "template" else fmt
        lora = f"+lora={self.lora_fingerprint}" if self.lora_fingerprint else ""
        return f"{self.name}|weights={self.weights_fingerprint}:{self.weights_tag}{lora}|chat={chat}"

    # --- text <-> tokens -------------------------------------------------------------------------------------

    def _gguf_meta(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(1 << 16)
        n = self._lc.llama_model_meta_val_str(self._model, key.encode(), buf, len(buf))
        if n < 0:
            return None
        if n >= len(buf):
            buf = ctypes.create_string_buffer(n + 1)
            self._lc.llama_model_meta_val_str(self._model, key.encode(), buf, len(buf))
        return buf.value.decode("utf-8")

    def render(self, prompt: PromptLike) -> str:
        """The text the model sees: a string as is; a chat through chat.py with the GGUF's chat template
        (rendered by transformers' own jinja renderer, so it is the text the hf backend renders)."""
        return render_prompt(prompt, self._template_tok, self.chat_format)

    def tokenize(self, text: str, add_special: bool = False) -> list[int]:
        data = text.encode("utf-8")
        cap = len(data) + 16
        buf = (self._lc.llama_token * cap)()
        # As the hf backend: a rendered chat already holds its specials; a raw prompt gets the usual ones
        # (a BOS only where the GGUF asks for it; Qwen: none). parse_special=True turns "<|im_start|>" into
        # its special token, as the HF tokenizer does.
        n = self._lc.llama_tokenize(self._vocab, data, len(data), buf, cap, add_special, True)
        if n < 0:
            raise RuntimeError(f"LlamaCppBackend: tokenization failed ({n})")
        return list(buf[:n])

    def _piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = self._lc.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self._lc.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
        return buf.raw[:n]

    # --- decoding --------------------------------------------------------------------------------------------

    def _decode(self, tokens: list[int], positions: list[int], seq_ids: list[int], outputs: list[bool]) -> None:
        b = self._batch
        n = len(tokens)
        for i in range(n):
            b.token[i] = tokens[i]
            b.pos[i] = positions[i]
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq_ids[i]
            b.logits[i] = outputs[i]
        b.n_tokens = n
        rc = self._lc.llama_decode(self._ctx, b)
        if rc != 0:
            raise RuntimeError(f"LlamaCppBackend: llama_decode failed with code {rc} ({n} tokens)")

    def _logits(self, i: int) -> np.ndarray:
        ptr = self._lc.llama_get_logits_ith(self._ctx, i)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def _prefill(self, tokens: list[int], slot: int, offset: int = 0) -> np.ndarray:
        """Evaluate ``tokens`` into ``slot`` at positions ``offset``.. in chunks of n_batch; return the logits
        of the last token (a copy)."""
        chunk: list[int] = []
        for start in range(0, len(tokens), self._batch_cap):
            chunk = tokens[start : start + self._batch_cap]
            last = start + len(chunk) == len(tokens)
            outputs = [False] * len(chunk)
            outputs[-1] = last
            pos = offset + start
            self._decode(chunk, list(range(pos, pos + len(chunk))), [slot] * len(chunk), outputs)
        return self._logits(len(chunk) - 1).copy()

    @staticmethod
    def _take_slot(free: list[int]) -> int:
        """The lowest free slot: live sequences stay packed at the bottom (see ``_compact``)."""
        slot = min(free)
        free.remove(slot)
        return slot

    def _compact(self, live: dict[int, _Seq], last_tok: dict[int, int], free: list[int]) -> None:
        """Keep the live sequences in slots 0..k-1 by moving the highest one into the lowest hole.

        Why: llama.cpp splits a decode batch into one forward pass per run of *consecutive* sequence ids
        (each sequence has its own KV stream, and a pass reads a contiguous range of streams). Live slots
        {0, 5, 9} would cost three passes, each streaming all the weights, where {0, 1, 2} costs one. A move
        is one KV-stream copy (a memcpy of a few tens of MB), far cheaper than an extra pass; the KV is copied
        exactly, so results do not change."""
        while live and free:
            hole, top = min(free), max(live)
            if hole > top:
                return
            self._lc.llama_memory_seq_cp(self._mem, top, hole, -1, -1)
            live[hole], last_tok[hole] = live.pop(top), last_tok.pop(top)
            self._slot_tokens[hole] = self._slot_tokens[top]  # `top` keeps its copy: still a valid cache
            if not self.prefix_cache:
                self._lc.llama_memory_seq_rm(self._mem, top, -1, -1)
                self._slot_tokens[top] = []
            free.remove(hole)
            free.append(top)

    def _load_prompt(self, tokens: list[int], free: list[int]) -> tuple[int, np.ndarray]:
        """Put a prompt's KV into a free slot, reusing the longest cached prefix; return (slot, last logits)."""
        mem, lc = self._mem, self._lc
        src, reuse = -1, 0
        if self.prefix_cache:
            for s in range(self.n_parallel):
                n = _common_prefix(self._slot_tokens[s], tokens)
                # ties go to the lowest free slot, which is reused in place without copying
                if n > reuse or (n == reuse > 0 and s == min(free)):
                    src, reuse = s, n
        reuse = min(reuse, len(tokens) - 1)  # evaluate at least the last token, for its logits
        slot = self._take_slot(free)
        if src == slot and reuse > 0:
            lc.llama_memory_seq_rm(mem, slot, reuse, -1)
        elif reuse >= MIN_COPY_REUSE:
            # Copying a KV stream is a memcpy of a few tens of MB: worth it from a handful of tokens on.
            lc.llama_memory_seq_cp(mem, src, slot, -1, -1)
            lc.llama_memory_seq_rm(mem, slot, reuse, -1)
        else:
            reuse = 0
            lc.llama_memory_seq_rm(mem, slot, -1, -1)
        logits = self._prefill(tokens[reuse:], slot, offset=reuse)
        self._slot_tokens[slot] = list(tokens)
        self.stats["prompts"] += 1
        self.stats["prompt_tokens"] += len(tokens)
        self.stats["prefill_tokens"] += len(tokens) - reuse
        self.stats["reused_tokens"] += reuse
        return slot, logits

    def _push(self, seq: _Seq, token: int, logprob: float, params: SamplingParams) -> None:
        """Append a sampled token and decide whether the sequence is finished."""
        seq.n_generated += 1
        seq.sampled.append(token)
        seq.logprobs.append(logprob)
        if self._lc.llama_vocab_is_eog(self._vocab, token):
            seq.finish = "stop"
            return
        seq.tokens.append(token)
        seq.text += self._piece(token)
        if seq.stops:
            # Only the tail can hold a new stop string; decode bytes leniently (a multi-byte char may be split).
            tail_len = max(len(s) for s in seq.stops) * 4 + 16
            text = seq.text.decode("utf-8", errors="ignore")
            hits = [text.find(s, max(0, len(text) - tail_len)) for s in seq.stops]
            hits = [h for h in hits if h >= 0]
            if hits:
                seq.finish, seq.stop_at = "stop", min(hits)
                return
        if seq.n_generated >= params.max_new_tokens:
            seq.finish = "length"
        elif seq.n_prompt + len(seq.tokens) >= self.n_ctx:
            log.warning("prompt %d sample %d hit the context limit %d", seq.prompt_idx, seq.sample_idx, self.n_ctx)
            seq.finish = "length"

    def generate(
        self,
        prompts: list[PromptLike],
        params: SamplingParams,
        seeds: Seeds | None = None,
        on_result: Callable[[int, list[Completion]], None] | None = None,
    ) -> list[list[Completion]]:
        """Completions for each prompt; ``on_result(i, completions)`` is called as soon as prompt ``i``'s
        n samples are all finished (callers log them there, so a kill loses only sequences in flight).
        Sample j of prompt i is drawn from ``np.random.default_rng(seeds[i][j])`` alone."""
        texts = [self.render(p) for p in prompts]
        stops = [stop_strings(p, self._template_tok, self.chat_format, params.stop) for p in prompts]
        toks = [self.tokenize(t, add_special=isinstance(p, str)) for p, t in zip(prompts, texts, strict=True)]
        return self.generate_tokens(toks, params, seeds, stops, on_result)

    def generate_tokens(
        self,
        toks: list[list[int]],
        params: SamplingParams,
        seeds: Seeds | None = None,
        stops: list[tuple[str, ...]] | None = None,
        on_result: Callable[[int, list[Completion]], None] | None = None,
    ) -> list[list[Completion]]:
        """``generate`` from prompts given as token ids (an RL trainer's own tokenisation), with ``stops[i]``
        the stop strings of prompt ``i`` (None: none beyond end-of-generation tokens)."""
        seeds = resolve_seeds(seeds, params, len(toks), f"{self.name}.generate")
        stops = stops if stops is not None else [tuple(params.stop)] * len(toks)
        for i, t in enumerate(toks):
            if not t:
                raise ValueError(f"LlamaCppBackend: prompt {i} is empty")
            if len(t) >= self.n_ctx:
                raise ValueError(
                    f"LlamaCppBackend: prompt {i} has {len(t)} tokens, more than the context n_ctx={self.n_ctx}"
                )
        out: list[list[Completion | None]] = [[None] * params.n for _ in toks]
        remaining = [params.n] * len(toks)
        # Pending jobs grouped by prompt, so siblings are admitted together and share one prefill; in token
        # order, so that prompts sharing a prefix follow each other (results do not depend on the order:
        # every sample has its own RNG).
        order = sorted(range(len(toks)), key=lambda i: toks[i]) if self.prefix_cache else range(len(toks))
        pending = deque((pi, list(range(params.n))) for pi in order)
        free = list(range(self.n_parallel))
        live: dict[int, _Seq] = {}
        last_tok: dict[int, int] = {}

        def finish(slot: int, seq: _Seq) -> None:
            text = seq.text.decode("utf-8", errors="replace")
            if seq.stop_at is not None:
                text = seq.text.decode("utf-8", errors="ignore")[: seq.stop_at]
            out[seq.prompt_idx][seq.sample_idx] = Completion(
                text=text,
                prompt_tokens=seq.n_prompt,
                completion_tokens=seq.n_generated,
                finish_reason=seq.finish or "length",
                meta={"backend": self.name},
                prompt_token_ids=list(toks[seq.prompt_idx]),
                token_ids=seq.sampled,
                logprobs=seq.logprobs,
            )
            if not self.prefix_cache:
                self._lc.llama_memory_seq_rm(self._mem, slot, -1, -1)
                self._slot_tokens[slot] = []
            else:
                # The slot's KV holds the prompt and every sampled token but the last (never decoded): a later
                # prompt that continues this reply (the code asked for after an explanation, a next turn) reuses it.
                self._slot_tokens[slot] = list(toks[seq.prompt_idx]) + seq.sampled[:-1]
            free.append(slot)
            remaining[seq.prompt_idx] -= 1
            if on_result is not None and remaining[seq.prompt_idx] == 0:
                on_result(seq.prompt_idx, list(out[seq.prompt_idx]))  # type: ignore[arg-type]

        from tqdm.auto import tqdm

        bar = tqdm(total=len(toks) * params.n, desc="llamacpp", unit="seq", disable=len(toks) * params.n < 8)
        while pending or live:
            # Admit: fill free slots with jobs, one prefill per prompt group.
            while pending and free:
                pi, samples = pending[0]
                take, rest = samples[: len(free)], samples[len(free) :]
                if rest:
                    pending[0] = (pi, rest)
                else:
                    pending.popleft()
                first, logits = self._load_prompt(toks[pi], free)
                slots = [first] + [self._take_slot(free) for _ in take[1:]]
                for s in slots[1:]:
                    self._lc.llama_memory_seq_cp(self._mem, first, s, -1, -1)
                    self._slot_tokens[s] = list(toks[pi])
                for si, slot in zip(take, slots, strict=True):
                    rng = np.random.default_rng(seeds[pi][si])
                    seq = _Seq(pi, si, len(toks[pi]), rng, pos=len(toks[pi]), stops=stops[pi])
                    tok, lp = sample_token_logprob(logits, params.temperature, params.top_p, rng, self._lp_buf,
                                                   self.sampling_logprobs)
                    self._push(seq, tok, lp, params)
                    if seq.finish:
                        finish(slot, seq)
                        bar.update()
                    else:
                        live[slot], last_tok[slot] = seq, tok
            self._compact(live, last_tok, free)
            if not live:
                continue
            # One decode step for every live sequence (slots 0..k-1: one forward pass).
            slots = sorted(live)
            self._decode(
                [last_tok[s] for s in slots], [live[s].pos for s in slots], slots, [True] * len(slots)
            )
            for i, slot in enumerate(slots):
                seq = live[slot]
                seq.pos += 1
                tok, lp = sample_token_logprob(self._logits(i), params.temperature, params.top_p, seq.rng,
                                               self._lp_buf, self.sampling_logprobs)
                self._push(seq, tok, lp, params)
                if seq.finish:
                    del live[slot], last_tok[slot]
                    finish(slot, seq)
                    bar.update()
                else:
                    last_tok[slot] = tok
            self._compact(live, last_tok, free)
        bar.close()
        return [list(row) for row in out]  # type: ignore[arg-type]

    def clear_prefix_cache(self) -> None:
        """Forget every cached prompt (benchmarks start each workload cold)."""
        for slot in range(self.n_parallel):
            self._lc.llama_memory_seq_rm(self._mem, slot, -1, -1)
            self._slot_tokens[slot] = []

    def close(self) -> None:
        lc = self._lc
        if getattr(self, "_batch", None) is not None:
            lc.llama_batch_free(self._batch)
            self._batch = None
        if getattr(self, "_ctx", None):
            lc.llama_free(self._ctx)
            self._ctx = None
        if getattr(self, "_adapter", None):
            lc.llama_adapter_lora_free(self._adapter)
            self._adapter = None
        if getattr(self, "_model", None):
            lc.llama_model_free(self._model)
            self._model = None

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        try:
            self.close()
        except Exception:
            pass
