"""Trained weights in llama.cpp's own formats, so that SFT and RL models decode as fast as the base model.

- :func:`export_lora_adapter`: a PEFT LoRA adapter as a GGUF adapter (``general.type = adapter``,
  ``adapter.type = lora``, ``adapter.lora.alpha``; for every adapted matrix ``blk.N.<name>.weight.lora_a`` of
  shape (r, in) and ``.lora_b`` of shape (out, r), beside the base GGUF's tensor names). llama.cpp loads it over
  the base GGUF (``llama_adapter_lora_init``) and scales it by alpha / r, PEFT's own scaling.
- :func:`export_model`: a whole Qwen2-architecture transformers folder (the tiny test model; a fully fine-tuned
  model) as an f32 or f16 GGUF with its tokenizer and chat template.

Only the Qwen2 architecture (the embedded model, its 1.5B teacher and the tiny test model) is mapped; another
one is refused by name rather than written wrong. Files are written under a temporary name and renamed.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ARCH = "qwen2"
_LAYER = re.compile(r"^(?:base_model\.model\.)?model\.layers\.(\d+)\.(.+?)(?:\.default)?$")
_SUBLAYERS = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
}
_GLOBAL = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output"}


class ExportError(ValueError):
    """Weights that cannot be written in llama.cpp's format; names the file and the tensor or setting."""


def gguf_name(hf_module: str) -> str:
    """``model.layers.3.self_attn.q_proj`` -> ``blk.3.attn_q`` (the GGUF name of its weight, without ``.weight``)."""
    if hf_module in _GLOBAL:
        return _GLOBAL[hf_module]
    m = _LAYER.match(hf_module)
    if not m or m.group(2) not in _SUBLAYERS:
        raise ExportError(f"no llama.cpp name for module {hf_module!r} (Qwen2 architecture only)")
    return f"blk.{m.group(1)}.{_SUBLAYERS[m.group(2)]}"


def _write(path: Path, fill: Any) -> Path:
    import gguf

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    writer = gguf.GGUFWriter(str(tmp), ARCH)
    try:
        fill(writer)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    os.replace(tmp, path)
    return path


def export_lora_adapter(adapter_dir: str | Path, out_path: str | Path) -> Path:
    """Write the PEFT adapter in ``adapter_dir`` as a llama.cpp GGUF adapter at ``out_path``."""
    import gguf
    from safetensors.torch import load_file

    adapter_dir = Path(adapter_dir)
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    where = f"{adapter_dir}/adapter_config.json"
    if cfg.get("peft_type") != "LORA":
        raise ExportError(f"{where}: peft_type {cfg.get('peft_type')!r}, only LORA adapters can be served by llama.cpp")
    for key in ("use_rslora", "use_dora"):
        if cfg.get(key):
            raise ExportError(f"{where}: {key} is on; llama.cpp applies plain LoRA (alpha / r) only")
    if cfg.get("rank_pattern") or cfg.get("alpha_pattern"):
        raise ExportError(f"{where}: per-module ranks or alphas (rank_pattern / alpha_pattern) are not supported")
    r, alpha = int(cfg["r"]), float(cfg["lora_alpha"])
    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
    pairs: dict[str, dict[str, Any]] = {}
    for name, t in tensors.items():
        m = re.match(r"^(.*)\.lora_([AB])(?:\.default)?\.weight$", name)
        if not m:
            raise ExportError(f"{adapter_dir}: tensor {name!r} is not a LoRA A/B matrix (modules_to_save, "
                              "embeddings or biases cannot go into a llama.cpp adapter)")
        pairs.setdefault(m.group(1), {})[m.group(2)] = t
    if not pairs:
        raise ExportError(f"{adapter_dir}: no LoRA tensors")

    def fill(w: Any) -> None:
        w.add_string(gguf.Keys.General.TYPE, gguf.GGUFType.ADAPTER)
        w.add_string(gguf.Keys.Adapter.TYPE, "lora")
        w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
        for module, ab in sorted(pairs.items()):
            if set(ab) != {"A", "B"}:
                raise ExportError(f"{adapter_dir}: module {module!r} has lora_{''.join(ab)} only")
            a, b = ab["A"].float().numpy(), ab["B"].float().numpy()
            if a.shape[0] != r or b.shape[1] != r:
                raise ExportError(f"{adapter_dir}: module {module!r} has rank {a.shape[0]}/{b.shape[1]}, not r={r}")
            base = gguf_name(module.removeprefix("base_model.model."))
            w.add_tensor(f"{base}.weight.lora_a", a)  # (r, in): llama.cpp's ne = [in, r]
            w.add_tensor(f"{base}.weight.lora_b", b)  # (out, r): ne = [r, out]

    out = _write(Path(out_path), fill)
    log.info("gguf_export: LoRA adapter %s (r=%d, alpha=%g, %d matrices) -> %s", adapter_dir, r, alpha, len(pairs), out)
    return out


def _pre_tokenizer(tok_json: dict[str, Any]) -> str:
    """llama.cpp's name for the tokenizer's pre-tokenization (``tokenizer.ggml.pre``): Qwen2's own regex, or
    GPT-2's byte-level one."""
    pre = json.dumps(tok_json.get("pre_tokenizer"))
    if r"\\p{N}" in pre and "Split" in pre and "(?i:'s|'t|'re|'ve|'m|'ll|'d)" in pre:
        return "qwen2"
    if "ByteLevel" in pre:
        return "gpt-2"
    raise ExportError(f"pre-tokenizer {pre[:200]} has no llama.cpp equivalent here (qwen2, or gpt-2 byte-level)")


def export_model(model_dir: str | Path, out_path: str | Path, dtype: str = "f32") -> Path:
    """Write the Qwen2 transformers folder ``model_dir`` (weights, tokenizer, chat template) as a GGUF."""
    import gguf
    import numpy as np
    from safetensors.torch import load_file

    model_dir = Path(model_dir)
    cfg = json.loads((model_dir / "config.json").read_text())
    if cfg.get("model_type") != "qwen2":
        raise ExportError(f"{model_dir}/config.json: model_type {cfg.get('model_type')!r}; only qwen2 is mapped")
    if dtype not in ("f32", "f16"):
        raise ExportError(f"dtype must be f32 or f16, got {dtype!r}")
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ExportError(f"{model_dir}: no safetensors weights")
    tensors: dict[str, Any] = {}
    for f in files:
        tensors.update(load_file(str(f)))
    tok_json = json.loads((model_dir / "tokenizer.json").read_text())
    tok_cfg = json.loads((model_dir / "tokenizer_config.json").read_text())
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    vocab = tok.get_vocab()
    n_vocab = int(cfg["vocab_size"])
    by_id = {i: t for t, i in vocab.items()}
    special = set(tok.all_special_ids) | {i for i, t in by_id.items() if t in tok.get_added_vocab()}
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(n_vocab)]
    types = [gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL if i in by_id
             else gguf.TokenType.UNUSED for i in range(n_vocab)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok_json["model"].get("merges", [])]
    ftype = np.float32 if dtype == "f32" else np.float16

    def fill(w: Any) -> None:
        w.add_name(model_dir.name)
        w.add_context_length(int(cfg.get("max_position_embeddings", 4096)))
        w.add_embedding_length(int(cfg["hidden_size"]))
        w.add_block_count(int(cfg["num_hidden_layers"]))
        w.add_feed_forward_length(int(cfg["intermediate_size"]))
        w.add_head_count(int(cfg["num_attention_heads"]))
        w.add_head_count_kv(int(cfg.get("num_key_value_heads", cfg["num_attention_heads"])))
        w.add_rope_freq_base(float(cfg.get("rope_theta") or (cfg.get("rope_parameters") or {}).get("rope_theta", 10000.0)))
        w.add_layer_norm_rms_eps(float(cfg.get("rms_norm_eps", 1e-6)))
        w.add_file_type(gguf.LlamaFileType.ALL_F32 if dtype == "f32" else gguf.LlamaFileType.MOSTLY_F16)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(_pre_tokenizer(tok_json))
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges(merges)
        if tok.eos_token_id is not None:
            w.add_eos_token_id(tok.eos_token_id)
        if tok.pad_token_id is not None:
            w.add_pad_token_id(tok.pad_token_id)
        w.add_add_bos_token(False)
        template = tok_cfg.get("chat_template") or getattr(tok, "chat_template", None)
        if template:
            w.add_chat_template(template)
        tied = bool(cfg.get("tie_word_embeddings")) and "lm_head.weight" not in tensors
        for name, t in tensors.items():
            module, _, kind = name.rpartition(".")
            arr = t.float().numpy()
            w.add_tensor(f"{gguf_name(module)}.{kind}", arr if arr.ndim == 1 else arr.astype(ftype))
        if tied:
            w.add_tensor("output.weight", tensors["model.embed_tokens.weight"].float().numpy().astype(ftype))

    out = _write(Path(out_path), fill)
    log.info("gguf_export: %s (%s, %d tensors) -> %s", model_dir, dtype, len(tensors), out)
    return out
