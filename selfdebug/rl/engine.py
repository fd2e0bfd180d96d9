"""PPO rollouts from llama.cpp serving the live policy, with the engine/trainer mismatch corrected by truncated
importance sampling (``ppo.truncated_is_weights``); ``rl.rollout_engine: llamacpp``.

Why: sampling is most of a PPO step on CPU, and llama.cpp decodes the 0.5B model several times faster than
transformers ``generate`` (``benchmarks/bench_rl_rollout.py`` measures both on the same prompts).

How the live policy gets into llama.cpp:

- the base of the RL adapter, the merged SFT model (``sft_merged/``, the KL reference), is written once as an f16
  GGUF (``gguf_export.export_model``);
- after every PPO update the RL adapter is saved (PEFT's files) and written as a GGUF LoRA adapter
  (``gguf_export.export_lora_adapter``), and the backend swaps it in (``LlamaCppBackend.swap_lora``: the new
  adapter loaded and set on the context, then the old one freed, then the KV and prefix caches cleared).

The engine samples from the token ids the trainer tokenised (so both see the same prompt), one seed per rollout,
and reports each token's log-prob under the distribution it was drawn from (``logits / temperature``, the
distribution the trainer scores). The trainer recomputes the log-probs itself; PPO's ratio is against its own,
and the engine's log-probs only give the importance weights (``Rollout.behaviour_logprobs``).

Where llama.cpp cannot serve (not installed, an architecture ``gguf_export`` does not map, a probe child that
dies on this CPU), ``make_rollout_engine`` logs why and returns None, and the trainer samples with transformers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from selfdebug.rl.step import PPOSettings, Rollout

log = logging.getLogger(__name__)

BASE_GGUF = "sft_merged.f16.gguf"


def pack_rollout(prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]],
                 behaviour: Sequence[Sequence[float]] | None, pad_id: int, device: Any = "cpu") -> Rollout:
    """A ``Rollout`` on ``device`` (the policy's) from token lists: prompts left-padded, responses right-padded, the
    response mask 1 on each response's own tokens (its end-of-generation token included when it was sampled: the
    engine ends a response at any of llama.cpp's end-of-generation tokens), the behaviour log-probs aligned with the
    response tokens (0 on padding)."""
    if len(prompts) != len(responses) or (behaviour is not None and len(behaviour) != len(responses)):
        raise ValueError(f"pack_rollout: {len(prompts)} prompts, {len(responses)} responses"
                         + ("" if behaviour is None else f", {len(behaviour)} log-prob rows"))
    width = max(len(p) for p in prompts)
    n = max(1, max(len(r) for r in responses))
    rows, masks, resp_masks, lps = [], [], [], []
    for i, (p, r) in enumerate(zip(prompts, responses, strict=True)):
        if behaviour is not None and len(behaviour[i]) != len(r):
            raise ValueError(f"pack_rollout: response {i} has {len(r)} tokens but {len(behaviour[i])} log-probs")
        rows.append([pad_id] * (width - len(p)) + list(p) + list(r) + [pad_id] * (n - len(r)))
        resp = [1] * len(r) + [0] * (n - len(r))
        masks.append([0] * (width - len(p)) + [1] * len(p) + resp)
        resp_masks.append(resp)
        if behaviour is not None:
            lps.append(list(behaviour[i]) + [0.0] * (n - len(r)))
    return Rollout(torch.tensor(rows, device=device), torch.tensor(masks, device=device), width,
                   torch.tensor(resp_masks, device=device),
                   torch.tensor(lps, dtype=torch.float32, device=device) if behaviour is not None else None)


class LlamaCppRollouts:
    """A llama.cpp backend over the GGUF of the RL adapter's base, serving the policy's current adapter."""

    def __init__(self, backend: Any, work_dir: str | Path, pad_id: int):
        self.backend = backend
        self.work_dir = Path(work_dir)
        self.pad_id = pad_id
        self.syncs = 0
        self.sync_seconds = 0.0

    def sync(self, policy: Any) -> float:
        """Write the policy's RL adapter as a GGUF adapter and swap it in; the seconds it took."""
        from selfdebug.generate.gguf_export import export_lora_adapter

        t0 = time.perf_counter()
        peft_dir = self.work_dir / "adapter"
        policy.model.save_pretrained(peft_dir)
        # two files in turn: the one being replaced is never rewritten while llama.cpp may still read it
        gguf = export_lora_adapter(peft_dir, self.work_dir / f"rl-adapter.{self.syncs % 2}.gguf")
        self.backend.swap_lora(gguf)
        self.syncs += 1
        seconds = time.perf_counter() - t0
        self.sync_seconds += seconds
        return seconds

    def rollout(self, prompts: Sequence[Sequence[int]], settings: PPOSettings, seeds: Sequence[int],
                device: Any = "cpu") -> Rollout:
        """One response per prompt (``seeds[i]`` draws response ``i``), with the engine's log-probs, as tensors on
        ``device`` (the policy's: a GPU trainer gets its rollouts where it computes)."""
        from selfdebug.generate.base import SamplingParams

        params = SamplingParams(n=1, temperature=settings.temperature, top_p=settings.top_p,
                                max_new_tokens=settings.max_new_tokens)
        done = self.backend.generate_tokens([list(p) for p in prompts], params, [[int(s)] for s in seeds])
        responses = [c[0].token_ids or [] for c in done]
        behaviour = [c[0].logprobs or [] for c in done]
        return pack_rollout(prompts, responses, behaviour, self.pad_id, device)

    def close(self) -> None:
        self.backend.close()


def base_gguf_path(work_dir: str | Path, gguf_type: str = "f16") -> Path:
    """Where ``base_gguf`` puts the GGUF of ``gguf_type`` (what every rank loads once rank 0 has written it)."""
    from selfdebug.generate.gguf_requant import derived_path

    f16 = Path(work_dir) / BASE_GGUF
    return f16 if gguf_type == "f16" else derived_path(f16, gguf_type)


def base_gguf(merged_dir: str | Path, work_dir: str | Path, gguf_type: str = "f16") -> Path:
    """The GGUF of the merged SFT model, written once into ``work_dir`` (atomically): f16 as exported, or re-encoded
    from it as ``gguf_type`` (``q8_0``; ``generate.gguf_requant``), at ``base_gguf_path``."""
    from selfdebug.generate.gguf_export import export_model
    from selfdebug.generate.gguf_requant import requantized_gguf

    out = base_gguf_path(work_dir)
    if not out.is_file():
        log.info("rl: writing the merged SFT model %s as %s for llama.cpp rollouts (once per run)", merged_dir, out)
        export_model(merged_dir, out, "f16")
    return out if gguf_type == "f16" else requantized_gguf(out, gguf_type)


def make_rollout_engine(gguf: str | Path, work_dir: str | Path, *, n_parallel: int, n_ctx: int, pad_id: int,
                        n_threads: int | None = None, probe: bool = True) -> LlamaCppRollouts | None:
    """llama.cpp rollouts over ``gguf`` (``base_gguf``), or None (with a warning naming why) where llama.cpp cannot
    serve here: not importable, or every probed setting died in its child process (``generate.probe``)."""
    from selfdebug.generate.engine_select import llama_cpp_available
    from selfdebug.generate.llamacpp import LlamaCppBackend

    ok, why = llama_cpp_available()
    if not ok:
        log.warning("rl: llama.cpp rollouts unavailable (%s): sampling with transformers", why)
        return None
    settings: dict[str, Any] = {"gguf_path": str(gguf), "n_ctx": n_ctx, "n_parallel": n_parallel}
    if n_threads:
        settings["n_threads"] = n_threads
    if probe:
        from selfdebug.generate.probe import choose_llamacpp_settings

        chosen, attempts = choose_llamacpp_settings(settings)
        if chosen is None:
            log.warning("rl: llama.cpp cannot run %s on this machine (%s): sampling with transformers", gguf,
                        "; ".join(f"{a['settings']}: {a['how']}" for a in attempts))
            return None
        settings = chosen
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    backend = LlamaCppBackend(**settings, sampling_logprobs=True)
    log.info("rl: rollouts from llama.cpp (%s, %d slots of %d tokens)", gguf, n_parallel, n_ctx)
    return LlamaCppRollouts(backend, work_dir, pad_id)
