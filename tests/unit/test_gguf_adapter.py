"""A PEFT LoRA adapter served by llama.cpp, merged into one GGUF (the default) or as a GGUF adapter over the base
GGUF: the same greedy continuation and close log-probabilities as PEFT on transformers, chosen by ``auto``, and
a changed adapter is another model in the cache key. On the tiny model (f32 GGUF written by ``gguf_export.export_model``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfdebug.generate import engine_select
from selfdebug.generate.base import SamplingParams

CHATS = [[{"role": "user", "content": "def add(a, b):"}],
         [{"role": "user", "content": "Fix: return a - b\n"}, {"role": "assistant", "content": "```python\nx\n```"},
          {"role": "user", "content": "Why?"}]]


def make_adapter(base: Path, out: Path, seed: int) -> Path:
    """A LoRA adapter with random, non-zero A and B on every linear layer (a trained adapter's shape)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0,
                                            init_lora_weights=False, task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_" in name:
                p.mul_(3.0)  # large enough to change the greedy continuation of the base
    peft.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    pytest.importorskip("llama_cpp")
    from selfdebug.generate.gguf_export import export_model
    from selfdebug.generate.tiny import build_tiny_model

    d = tmp_path_factory.mktemp("lora")
    hf = build_tiny_model(d / "hf", seed=0)
    gguf = export_model(hf, d / "tiny-f32.gguf")
    adapter = make_adapter(hf, d / "adapter", seed=1)
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(gguf)  # the base as llama.cpp runs it; hf resolves the HF twin below
    (adapter / "adapter_config.json").write_text(json.dumps(cfg))
    return hf, gguf, adapter


def _peft_backend(hf: Path, adapter: Path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selfdebug.generate.hf import HFBackend

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(hf, dtype=torch.float32), adapter)
    return HFBackend(hf, device="cpu", batch_size=2, model=model.merge_and_unload(),
                     tokenizer=AutoTokenizer.from_pretrained(hf), weights_id="peft")


def test_llamacpp_with_the_gguf_adapter_matches_peft(models):
    from selfdebug.generate import make_backend

    hf, gguf, adapter = models
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=12)
    served = make_backend({"id": str(adapter), "backend": "auto", "n_ctx": 256, "batch_size": 2, "probe": False,
                           "lora_serving": "adapter"})
    base = make_backend({"id": str(gguf), "backend": "llamacpp", "n_ctx": 256, "batch_size": 2, "probe": False})
    try:
        assert served.name == "llamacpp" and (adapter / "adapter.gguf").is_file()
        ours = served.generate(CHATS, params)
        plain = base.generate(CHATS, params)
        ref = _peft_backend(hf, adapter).generate(CHATS, params)
        for a, b in zip(ours, ref, strict=True):
            assert a[0].token_ids == b[0].token_ids, (a[0].text, b[0].text)
            # float32 in both, summed in another order: the tiny model's large logits differ by ~1e-3 relative
            assert a[0].logprobs == pytest.approx(b[0].logprobs, rel=5e-3, abs=5e-3)
        assert [c[0].token_ids for c in ours] != [c[0].token_ids for c in plain]  # the adapter does something
        assert "+lora=" in served.cache_tag and served.cache_tag != base.cache_tag
    finally:
        served.close()
        base.close()


def test_the_adapter_merged_into_one_gguf_matches_peft_and_follows_the_adapter(models, tmp_path):
    """The default serving: the adapter merged into the base weights, written as an f16 GGUF once per adapter:
    the same greedy tokens as PEFT, and a retrained adapter is merged anew (another cache key)."""
    import shutil

    from selfdebug.generate import make_backend

    hf, gguf, adapter = models
    copy = tmp_path / "adapter"
    shutil.copytree(adapter, copy)
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=12)
    cfg = {"id": str(copy), "backend": "llamacpp", "n_ctx": 256, "batch_size": 2, "probe": False}
    served = make_backend(cfg)
    try:
        assert (copy / "merged.f16.gguf").is_file() and "+lora=" not in served.cache_tag  # no run-time adapter
        ours = served.generate(CHATS, params)
        ref = _peft_backend(hf, adapter).generate(CHATS, params)
        for a, b in zip(ours, ref, strict=True):
            assert a[0].token_ids == b[0].token_ids, (a[0].text, b[0].text)
            assert a[0].logprobs == pytest.approx(b[0].logprobs, rel=2e-2, abs=2e-2)  # f16 weights
        tag = served.cache_tag
    finally:
        served.close()
    retrained = make_adapter(hf, tmp_path / "retrained", seed=2)
    shutil.copy(retrained / "adapter_model.safetensors", copy / "adapter_model.safetensors")
    again = make_backend(cfg)
    try:
        assert again.cache_tag != tag
    finally:
        again.close()
    with pytest.raises(ValueError, match="lora_serving must be one of"):
        make_backend({**cfg, "lora_serving": "fused"})


def test_a_changed_adapter_is_rewritten_and_changes_the_cache_key(models, tmp_path):
    import shutil

    from selfdebug.generate import make_backend

    hf, gguf, adapter = models
    copy = tmp_path / "adapter"
    shutil.copytree(adapter, copy)
    first = make_backend({"id": str(copy), "backend": "llamacpp", "n_ctx": 128, "batch_size": 1, "probe": False,
                          "lora_serving": "adapter"})
    tag = first.cache_tag
    first.close()
    retrained = make_adapter(hf, tmp_path / "retrained", seed=2)
    shutil.copy(retrained / "adapter_model.safetensors", copy / "adapter_model.safetensors")
    second = make_backend({"id": str(copy), "backend": "llamacpp", "n_ctx": 128, "batch_size": 1, "probe": False,
                           "lora_serving": "adapter"})
    try:
        assert second.cache_tag != tag
    finally:
        second.close()


def test_auto_picks_llamacpp_for_a_lora_over_a_gguf_and_hf_otherwise(monkeypatch, tmp_path):
    monkeypatch.setattr(engine_select, "llama_cpp_available", lambda: (True, ""))
    (tmp_path / "g.gguf").write_bytes(b"GGUF")
    lora = tmp_path / "lora"
    lora.mkdir()
    (lora / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA",
                                                          "base_model_name_or_path": str(tmp_path / "g.gguf")}))
    backend, why = engine_select.choose_backend_with_reason({"id": str(lora)})
    assert backend == "llamacpp" and "LoRA adapter" in why
    (lora / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA",
                                                          "base_model_name_or_path": "Qwen/Qwen2.5-7B"}))
    backend, why = engine_select.choose_backend_with_reason({"id": str(lora)})
    assert backend == "hf" and "not a GGUF" in why


def test_unsupported_adapters_are_refused_by_name(tmp_path):
    from selfdebug.generate.gguf_export import ExportError, export_lora_adapter

    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4, "lora_alpha": 8,
                                                              "use_dora": True}))
    with pytest.raises(ExportError, match="use_dora"):
        export_lora_adapter(tmp_path, tmp_path / "a.gguf")
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "IA3"}))
    with pytest.raises(ExportError, match="only LORA"):
        export_lora_adapter(tmp_path, tmp_path / "a.gguf")


def test_hf_backend_serves_an_adapter_folder_merged_and_follows_the_adapter(tmp_path):
    """A LoRA adapter folder as the model of the hf backend (the smoke and gpu profiles' trained models): merged
    into a transformers folder once per adapter, the same greedy tokens as PEFT, and a retrained adapter is merged
    anew (other weights, another cache key)."""
    import shutil

    from selfdebug.generate import make_backend
    from selfdebug.generate.tiny import build_tiny_model

    hf = build_tiny_model(tmp_path / "hf", seed=0)
    adapter = make_adapter(hf, tmp_path / "adapter", seed=1)
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=12)
    cfg = {"id": str(adapter), "backend": "hf", "dtype": "float32", "device": "cpu", "batch_size": 2}
    served = make_backend(cfg)
    assert (adapter / "merged-hf" / "config.json").is_file()
    ours = served.generate(CHATS, params)
    ref = _peft_backend(hf, adapter).generate(CHATS, params)
    plain = make_backend({**cfg, "id": str(hf)}).generate(CHATS, params)
    assert [c[0].token_ids for c in ours] == [c[0].token_ids for c in ref]
    assert [c[0].token_ids for c in ours] != [c[0].token_ids for c in plain]  # the adapter does something
    retrained = make_adapter(hf, tmp_path / "retrained", seed=2)
    shutil.copy(retrained / "adapter_model.safetensors", adapter / "adapter_model.safetensors")
    again = make_backend(cfg)
    assert again.cache_tag != served.cache_tag
    assert [c[0].token_ids for c in again.generate(CHATS, params)] == \
        [c[0].token_ids for c in _peft_backend(hf, adapter).generate(CHATS, params)]
