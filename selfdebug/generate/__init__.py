"""Generation backends behind one interface (see base.py) and the factory that picks one from config.

``model_cfg`` keys: ``id`` (hub id, local folder, or a provisioned model: ``"embedded"``, ``"embedded-teacher"``), ``backend``
(``hf``|``vllm``|``openai``|``llamacpp``|``auto``), ``dtype``, ``batch_size``, ``chat_format``,
``device``, for openai ``base_url``/``api_key_env``/``logprobs``, and for llamacpp ``n_ctx``, ``n_threads``, ``n_batch``,
``flash_attn``, ``prefix_cache`` and ``gguf_type`` (``original`` or a wider re-encoding such as ``q8_0``,
see gguf_requant.py). Backends are imported lazily so that torch,
vllm or llama.cpp load only when used."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from .base import Backend, Chat, Completion, Message, PromptLike, SamplingParams

__all__ = [
    "Backend",
    "Chat",
    "Completion",
    "Message",
    "PromptLike",
    "SamplingParams",
    "BACKENDS",
    "make_backend",
    "choose_auto_backend",
]

log = logging.getLogger(__name__)

BACKENDS = ("hf", "vllm", "openai", "llamacpp", "auto")
_KNOWN_KEYS = {
    "id",
    "lora_serving",
    "backend",
    "dtype",
    "batch_size",
    "chat_format",
    "device",
    "base_url",
    "api_key_env",
    "api_key",
    "concurrency",
    "gpu_memory_utilization",
    "max_model_len",
    "gguf",
    "n_ctx",
    "n_threads",
    "n_batch",
    "gguf_type",
    "flash_attn",
    "prefix_cache",
    "logprobs",
    "probe",
}


def choose_auto_backend(model_cfg: dict) -> str:
    """``auto``: llama.cpp when it can run exactly these weights (the embedded GGUF, no adapter), else hf."""
    from .engine_select import choose_backend

    return choose_backend(model_cfg)


def _gguf_path(cfg: dict) -> Path:
    """The GGUF llama.cpp runs; engine_select decides what counts as one (explicit ``gguf``, a provisionable
    model's id such as ``embedded`` or ``embedded-teacher``, a ``.gguf`` id, or a bf16 folder converted from one)."""
    from .engine_select import gguf_for
    from .model_specs import MODELS
    from .provision import gguf_path

    gguf, why = gguf_for(cfg)
    if gguf is None:
        raise ValueError(f"model config: backend 'llamacpp' needs a GGUF file ({why}); set 'gguf' or use backend 'hf'")
    return gguf_path(gguf) if gguf in MODELS else Path(gguf)


LORA_SERVING = ("merged", "adapter")
"""How llama.cpp serves a LoRA adapter folder (model key ``lora_serving``): ``merged`` (default) writes the
adapter merged into the base weights as one GGUF (then re-encoded like the base, ``gguf_type``), which runs at
the base model's speed; ``adapter`` applies llama.cpp's GGUF adapter at run time, no merge needed, but on 2 CPU
cores it generated at about a third of the base's speed (the cpu-sft evaluation, 15 vs ~50 tokens/s)."""


def _derived_from_adapter(folder: Path, name: str, write: Any) -> Path:
    """``folder/name``, made by ``write(folder, path)`` once and again whenever the adapter's weights change
    (a marker beside it holds the weights' fingerprint)."""
    from .fingerprint import weights_fingerprint

    out, marker = folder / name, folder / f"{name}.json"
    source = weights_fingerprint(folder / "adapter_model.safetensors")
    try:
        fresh = out.exists() and json.loads(marker.read_text()).get("source") == source
    except (OSError, ValueError):
        fresh = False
    if not fresh:
        write(folder, out)
        marker.write_text(json.dumps({"source": source}) + "\n")
    return out


def _merged_gguf(cfg: dict) -> Path | None:
    """For a PEFT LoRA adapter folder as the model: the base with the adapter merged in, as an f16 GGUF
    (``merged.f16.gguf`` inside the folder), written once and again whenever the adapter's weights change.
    The base weights are read from its transformers folder, or from its GGUF (dequantized by transformers)."""
    from .engine_select import lora_base

    folder = Path(str(cfg["id"])).expanduser()
    base = lora_base(folder)
    if base is None:
        return None
    return _derived_from_adapter(folder, "merged.f16.gguf", lambda f, out: _write_merged(f, str(base), out))


def _merged_hf(cfg: dict) -> Path | None:
    """For a PEFT LoRA adapter folder as the model of the hf or vllm backend: the base with the adapter merged in,
    as a transformers folder (``merged-hf`` inside the adapter folder), written once and again whenever the
    adapter's weights change; None when the model is not an adapter folder."""
    from .engine_select import lora_base

    folder = Path(str(cfg["id"])).expanduser()
    base = lora_base(folder)
    if base is None:
        return None
    return _derived_from_adapter(folder, "merged-hf", lambda f, out: _write_merged_hf(f, str(base), out))


def _write_merged_hf(folder: Path, base: str, out: Path) -> None:
    """The adapter of ``folder`` merged into ``base`` (a transformers folder, hub id or GGUF file), saved as a
    transformers folder at ``out`` (written beside it, then moved into place: a kill leaves no half folder)."""
    import shutil

    import torch
    from peft import PeftModel
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_path = Path(base)
    where = ({"pretrained_model_name_or_path": base_path.parent, "gguf_file": base_path.name}
             if base_path.suffix == ".gguf" else {"pretrained_model_name_or_path": base})
    log.info("merging the LoRA adapter %s into %s and writing %s (once per adapter)", folder, base, out.name)
    model = AutoModelForCausalLM.from_pretrained(**where, dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, folder).merge_and_unload()
    work = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(work, ignore_errors=True)
    # the state dict and config, not save_pretrained: transformers refuses to save a model it read from a GGUF
    work.mkdir(parents=True)
    state = {k: v.detach().contiguous() for k, v in merged.state_dict().items()}
    if merged.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)  # the embedding matrix itself
    save_file(state, str(work / "model.safetensors"))
    merged.config.save_pretrained(work)
    AutoTokenizer.from_pretrained(**where).save_pretrained(work)
    shutil.rmtree(out, ignore_errors=True)
    work.replace(out)


def _write_merged(folder: Path, base: str, out: Path) -> None:
    import shutil

    from .gguf_export import export_model

    work = folder / ".merged-hf"
    _write_merged_hf(folder, base, work)
    tmp = out.with_name(f".{out.name}.tmp")
    export_model(work, tmp, dtype="f16")
    tmp.replace(out)
    shutil.rmtree(work, ignore_errors=True)


def _lora_gguf(cfg: dict) -> Path | None:
    """For a PEFT LoRA adapter folder as the model: its GGUF adapter (``adapter.gguf`` inside the folder),
    written once and again whenever the adapter's weights change."""
    from .engine_select import lora_base

    folder = Path(str(cfg["id"])).expanduser()
    if lora_base(folder) is None:
        return None
    from .gguf_export import export_lora_adapter

    return _derived_from_adapter(folder, "adapter.gguf", export_lora_adapter)


def _repo_relative(model_cfg: dict) -> dict:
    """A relative model path that is not one from the working directory but is one from the repository root
    (``runs/cpu/sft/model`` in a profile, read by a notebook that papermill runs elsewhere) is that one."""
    from .model_specs import MODELS

    mid = str(model_cfg["id"])
    path = Path(mid).expanduser()
    repo = Path(__file__).resolve().parents[2]
    if mid in MODELS or path.is_absolute() or path.exists() or not (repo / path).exists():
        return model_cfg
    return {**model_cfg, "id": str(repo / path)}


def make_backend(model_cfg: dict) -> Backend:
    """Build the backend named by ``model_cfg['backend']`` (default ``auto``) for ``model_cfg['id']``."""
    if not isinstance(model_cfg, dict):
        raise ValueError(f"model config must be a mapping, got {type(model_cfg).__name__}")
    unknown = set(model_cfg) - _KNOWN_KEYS
    if unknown:
        raise ValueError(f"model config: unknown keys {sorted(unknown)}; known: {sorted(_KNOWN_KEYS)}")
    if not model_cfg.get("id"):
        raise ValueError("model config: 'id' is required (hub id, local folder or 'embedded')")
    model_cfg = _repo_relative(model_cfg)
    backend = model_cfg.get("backend", "auto")
    if backend not in BACKENDS:
        raise ValueError(f"model config: backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        backend = choose_auto_backend(model_cfg)
    cfg: dict[str, Any] = model_cfg
    chat_format = cfg.get("chat_format", "auto")

    if backend == "openai":
        from .openai import OpenAIBackend

        kwargs = {k: cfg[k] for k in ("base_url", "api_key", "concurrency", "logprobs") if k in cfg}
        return OpenAIBackend(cfg["id"], api_key_env=cfg.get("api_key_env", "OPENAI_API_KEY"), **kwargs)

    from .provision import resolve_model

    if backend == "llamacpp":
        from .gguf_requant import requantized_gguf
        from .llamacpp import LlamaCppBackend  # imported lazily: llama-cpp-python is optional

        kwargs = {k: cfg[k] for k in ("n_ctx", "n_threads", "n_batch", "flash_attn", "prefix_cache") if k in cfg}
        if "batch_size" in cfg:
            kwargs["n_parallel"] = int(cfg["batch_size"])  # sequences decoded together
        gguf_type = cfg.get("gguf_type", "original")
        serving = cfg.get("lora_serving", "merged")
        if serving not in LORA_SERVING:
            raise ValueError(f"model config: lora_serving must be one of {LORA_SERVING}, got {serving!r}")
        merged = _merged_gguf(cfg) if serving == "merged" else None
        path = requantized_gguf(merged or _gguf_path(cfg), gguf_type, cfg.get("n_threads"))
        settings = {"gguf_path": str(path), "chat_format": chat_format, "weights_tag": gguf_type, **kwargs}
        adapter = _lora_gguf(cfg) if serving == "adapter" else None
        if adapter is not None:
            settings["lora_path"] = str(adapter)
        attempts: list[dict] = []
        if cfg.get("probe", True):
            from .probe import choose_llamacpp_settings

            chosen, attempts = choose_llamacpp_settings(settings)
            if chosen is None:
                what = "; ".join(f"{a['settings']}: {a['how']}" for a in attempts)
                if model_cfg.get("backend", "auto") != "auto":
                    raise RuntimeError(f"backend 'llamacpp' cannot run {path} on this machine ({what}); "
                                       "use backend 'hf' or 'auto'")
                log.warning("llama.cpp cannot run on this machine (%s): falling back to the hf backend", what)
                backend = "hf"
            else:
                settings = chosen
        if backend == "llamacpp":
            engine = LlamaCppBackend(**settings)
            engine.probe_report = attempts
            return engine
    model_path = _merged_hf(cfg) or resolve_model(cfg["id"])
    if backend == "vllm":
        from .vllm import VLLMBackend

        kwargs = {k: cfg[k] for k in ("gpu_memory_utilization", "max_model_len") if k in cfg}
        return VLLMBackend(model_path, dtype=cfg.get("dtype", "auto"), chat_format=chat_format, **kwargs)
    from .hf import HFBackend

    return HFBackend(
        model_path,
        dtype=cfg.get("dtype", "auto"),
        device=cfg.get("device", "auto"),
        batch_size=int(cfg.get("batch_size", 8)),
        chat_format=chat_format,
    )
