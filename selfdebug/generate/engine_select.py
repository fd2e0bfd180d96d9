"""Pick the generation engine for ``backend: auto``: llama.cpp when it can run exactly this model, else hf.

llama.cpp runs a GGUF file. It is used when the configured model *is* a GGUF (the embedded model or the
teacher of model_specs.py, a ``.gguf`` path, or an explicit ``gguf:`` next to the model), and when it is a PEFT
LoRA adapter folder (what SFT and RL write) over such a model: the adapter is written once as a GGUF adapter
(``gguf_export``) and applied over the base GGUF, so a trained model decodes as fast as the base. Other trained
weights (a fully fine-tuned HF folder, an adapter over a hub model) run on hf.

The model config is a mapping (YAML) or an object with attributes; the keys read are:
``backend`` (auto|hf|llamacpp), ``id`` (or ``name``/``path``: "embedded", a folder, a hub id or a .gguf file),
``gguf`` (optional explicit GGUF path), and any of ``adapter``, ``adapter_path``, ``peft``, ``lora``,
``checkpoint``, ``weights`` (trained weights: forces hf).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

BACKENDS = ("auto", "hf", "llamacpp")
ADAPTER_KEYS = ("adapter", "adapter_path", "peft", "lora", "checkpoint", "weights")
_MODEL_KEYS = ("id", "name", "path", "model")


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    if cfg is None:
        return default
    if isinstance(cfg, dict):
        return cfg.get(key, default)
    return getattr(cfg, key, default)


def _model_id(cfg: Any) -> str | None:
    for k in _MODEL_KEYS:
        v = _get(cfg, k)
        if isinstance(v, (str, Path)) and str(v).strip():
            return str(v)
    return None


def llama_cpp_available() -> tuple[bool, str]:
    """Whether llama-cpp-python imports here (it is compiled from source, so it may be missing)."""
    try:
        import llama_cpp  # noqa: F401
    except Exception as e:  # ImportError, or OSError when the shared library fails to load
        return False, f"llama_cpp does not import ({type(e).__name__}: {e})"
    return True, ""


def gguf_for(model_cfg: Any) -> tuple[str | None, str]:
    """The GGUF that holds exactly the configured model (a provisionable model's id, ``"embedded"`` or
    ``"embedded-teacher"``, to be resolved by provision.gguf_path), or None, with the reason."""
    from .model_specs import MODELS

    explicit = _get(model_cfg, "gguf")
    if explicit:
        if not Path(explicit).expanduser().is_file():
            return None, f"gguf {explicit!r} does not exist"
        return str(Path(explicit).expanduser()), "explicit gguf"
    mid = _model_id(model_cfg)
    if mid is None:
        return None, "no model id in the config"
    if mid in MODELS:
        return mid, f"{mid} model ({MODELS[mid].upstream}, Q4_K_M GGUF)"
    p = Path(mid).expanduser()
    base = lora_base(p)
    if base is not None:
        gguf, why = gguf_for({"id": base})
        if gguf is None and _get(model_cfg, "lora_serving", "merged") == "merged" and _exportable(Path(base)):
            # an adapter over a transformers folder (the RL adapter over the merged SFT model): merged into
            # the folder's weights and written as one GGUF (generate._merged_gguf), so it needs no base GGUF
            return str(p / "merged.f16.gguf"), (f"{p} is a LoRA adapter over the transformers folder {base}, "
                                                "served by llama.cpp merged into one GGUF")
        if gguf is None:
            return None, f"{p} is a LoRA adapter over {base}, which is not a GGUF ({why})"
        return gguf, (f"{p} is a LoRA adapter over {base} ({why}), served by llama.cpp (model key lora_serving: "
                      "merged into one GGUF, the default, or as a GGUF adapter)")
    if p.suffix == ".gguf":
        return (str(p), "model is a GGUF file") if p.is_file() else (None, f"GGUF {p} does not exist")
    if p.is_dir():  # a bf16 folder provision.py converted: its marker names the GGUF's hash
        from .provision import model_for_marker

        converted = model_for_marker(p)
        if converted:
            return converted, f"{p} is the bf16 conversion of the {converted} GGUF"
    return None, f"model {mid!r} is not a GGUF (HF folder or hub id: trained weights need hf)"


def _exportable(folder: Path) -> bool:
    """A local transformers folder whose architecture ``gguf_export`` writes (Qwen2)."""
    import json

    from .gguf_export import ARCH

    try:
        return json.loads((folder / "config.json").read_text()).get("model_type") == ARCH
    except (OSError, ValueError):
        return False


def lora_base(folder: Path) -> str | None:
    """The base model of a PEFT LoRA adapter folder (``adapter_config.json``: ``peft_type`` LORA), else None."""
    import json

    cfg_path = folder / "adapter_config.json"
    if not cfg_path.is_file():
        return None
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if cfg.get("peft_type") != "LORA" or not cfg.get("base_model_name_or_path"):
        return None
    return str(cfg["base_model_name_or_path"])


def choose_backend_with_reason(model_cfg: Any) -> tuple[str, str]:
    """``(backend, why)``: the configured backend unless it is ``auto``; for ``auto`` llamacpp when possible."""
    backend = _get(model_cfg, "backend", "auto") or "auto"
    if backend not in BACKENDS:
        raise ValueError(f"model.backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend, "configured explicitly"
    adapters = [k for k in ADAPTER_KEYS if _get(model_cfg, k)]
    if adapters:
        return "hf", (
            f"model config sets {adapters}: trained weights/adapters run on hf "
            "(llama.cpp cannot load PEFT adapter or HF folders; no GGUF conversion is done)"
        )
    gguf, why = gguf_for(model_cfg)
    if gguf is None:
        return "hf", why
    ok, err = llama_cpp_available()
    if not ok:
        return "hf", err
    return "llamacpp", why


def choose_backend(model_cfg: Any) -> str:
    """Backend name for the model config (``auto`` resolved); logs why."""
    backend, why = choose_backend_with_reason(model_cfg)
    log.info("generation backend: %s (%s)", backend, why)
    return backend
