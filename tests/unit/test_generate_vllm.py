"""The vLLM backend against a fake ``vllm`` module: parameter mapping, prompt rendering, results."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field

import pytest

from selfdebug.generate.base import SamplingParams
from selfdebug.generate.chat import render_starchat
from selfdebug.generate.tiny import CHAT_TEMPLATE


class FakeTokenizer:
    """Characters are tokens; ``chat_template`` switches between template and StarChat rendering."""

    def __init__(self, chat_template):
        self.chat_template = chat_template
        self.name_or_path = "fake"

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": ([0] if add_special_tokens else []) + [ord(c) for c in text]}

    def apply_chat_template(self, chat, tokenize=False, add_generation_prompt=True):
        body = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in chat)
        return body + ("<|im_start|>assistant\n" if add_generation_prompt else "")


@dataclass
class FakeLogprob:
    logprob: float


@dataclass
class FakeOutput:
    text: str
    token_ids: list
    finish_reason: str
    logprobs: list | None = None


@dataclass
class FakeResult:
    prompt_token_ids: list
    outputs: list = field(default_factory=list)


def make_fake_vllm(chat_template):
    mod = types.ModuleType("vllm")
    mod.calls = {}

    class SamplingParams:
        def __init__(self, **kw):
            self.kw = kw

    class LLM:
        def __init__(self, **kw):
            mod.calls["llm"] = kw
            self.tok = FakeTokenizer(chat_template)

        def get_tokenizer(self):
            return self.tok

        def generate(self, prompts, sampling_params, use_tqdm=True):
            """Like vLLM: one result per request, its outputs a function of (prompt, seed) only."""
            mod.calls["generate"] = (prompts, sampling_params)
            out = []
            for p, sp in zip(prompts, sampling_params, strict=True):
                seed = sp.kw["seed"]
                toks = [7] * (seed % 3 + 1)
                out.append(FakeResult(p["prompt_token_ids"], [
                    FakeOutput(f"out{len(p['prompt_token_ids'])}-{seed}-{k}", toks, "length" if seed % 2 else "stop",
                               [{7: FakeLogprob(-0.5), 8: FakeLogprob(-1.0)}] * len(toks))
                    for k in range(sp.kw["n"])]))
            return out

    mod.LLM, mod.SamplingParams = LLM, SamplingParams
    return mod


CHAT = [{"role": "user", "content": "Write add."}]


def test_maps_sampling_params_and_results(monkeypatch):
    fake = make_fake_vllm(CHAT_TEMPLATE)
    monkeypatch.setitem(sys.modules, "vllm", fake)
    from selfdebug.generate.vllm import VLLMBackend

    b = VLLMBackend("/models/x", dtype="bfloat16", max_model_len=4096)
    assert fake.calls["llm"]["model"] == "/models/x" and fake.calls["llm"]["dtype"] == "bfloat16"
    assert fake.calls["llm"]["max_model_len"] == 4096
    params = SamplingParams(n=3, temperature=0.7, top_p=0.9, max_new_tokens=100, stop=("\nassert",), seed=5)
    seeds = [[10, 11, 12], [20, 21, 22]]
    out = b.generate([CHAT, "def f():"], params, seeds=seeds)
    prompts, sps = fake.calls["generate"]
    # one request per sample, n=1, each with its own seed and the sampled token's logprob asked for
    assert [sp.kw["seed"] for sp in sps] == [10, 11, 12, 20, 21, 22]
    assert sps[0].kw == dict(
        n=1, temperature=0.7, top_p=0.9, top_k=-1, max_tokens=100, stop=["\nassert"], seed=10, logprobs=0
    )
    rendered = "<|im_start|>user\nWrite add.<|im_end|>\n<|im_start|>assistant\n"
    assert prompts[0]["prompt_token_ids"] == [ord(c) for c in rendered]  # template, no extra BOS
    assert prompts[3]["prompt_token_ids"] == [0] + [ord(c) for c in "def f():"]  # raw: tokenizer specials
    assert [len(cs) for cs in out] == [3, 3]
    c = out[1][1]
    assert (c.text, c.prompt_tokens, c.completion_tokens, c.finish_reason) == ("out9-21-0", 9, 1, "length")
    assert c.prompt_token_ids == prompts[3]["prompt_token_ids"] and c.token_ids == [7] and c.logprobs == [-0.5]
    assert out[1][0].finish_reason == "stop"


def test_a_sample_does_not_depend_on_its_call(monkeypatch):
    """Sample j of a prompt is its own request: asked alone or with others, under n=1 or n=3, the same."""
    monkeypatch.setitem(sys.modules, "vllm", make_fake_vllm(CHAT_TEMPLATE))
    from selfdebug.generate.vllm import VLLMBackend

    b = VLLMBackend("m")
    together = b.generate([CHAT, "x"], SamplingParams(n=3), seeds=[[4, 5, 6], [7, 8, 9]])
    alone = b.generate(["x"], SamplingParams(n=1), seeds=[[8]])
    assert alone[0][0].text == together[1][1].text
    assert len({c.text for c in together[0]}) == 3


def test_greedy_disables_top_p(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", make_fake_vllm(CHAT_TEMPLATE))
    from selfdebug.generate.vllm import VLLMBackend

    b = VLLMBackend("m")
    kw = b.sampling_params(SamplingParams(temperature=0, top_p=0.5), ()).kw
    assert kw["temperature"] == 0 and kw["top_p"] == 1.0 and kw["stop"] is None


def test_base_model_gets_starchat_and_end_stop(monkeypatch):
    fake = make_fake_vllm(None)
    monkeypatch.setitem(sys.modules, "vllm", fake)
    from selfdebug.generate.vllm import VLLMBackend

    VLLMBackend("m").generate([CHAT], SamplingParams(stop=("\nassert",)))
    prompts, sps = fake.calls["generate"]
    assert prompts[0]["prompt_token_ids"] == [ord(c) for c in render_starchat(CHAT)]
    assert sps[0].kw["stop"] == ["\nassert", "<|end|>"]


def test_missing_vllm_names_the_gpu_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    from selfdebug.generate.vllm import VLLMBackend

    with pytest.raises(ImportError, match="gpu"):
        VLLMBackend("m")


def test_factory_builds_vllm_for_a_hub_id(monkeypatch):
    fake = make_fake_vllm(CHAT_TEMPLATE)
    monkeypatch.setitem(sys.modules, "vllm", fake)
    from selfdebug.generate import make_backend
    from selfdebug.generate.vllm import VLLMBackend

    b = make_backend({"id": "Qwen/Qwen2.5-Coder-7B-Instruct", "backend": "vllm", "max_model_len": 2048})
    assert isinstance(b, VLLMBackend)
    assert fake.calls["llm"]["model"] == "Qwen/Qwen2.5-Coder-7B-Instruct"
    assert fake.calls["llm"]["max_model_len"] == 2048


def test_cache_tag_fingerprints_a_local_folder(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "vllm", make_fake_vllm(CHAT_TEMPLATE))
    monkeypatch.setenv("SELFDEBUG_FINGERPRINT_CACHE", str(tmp_path / "fp.json"))
    from selfdebug.generate.vllm import VLLMBackend

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.safetensors").write_bytes(b"a" * 100)
    tag = VLLMBackend(str(tmp_path / "m")).cache_tag
    assert tag.startswith("vllm|weights=") and "chat=template:" in tag
    (tmp_path / "m" / "model.safetensors").write_bytes(b"b" * 100)
    assert VLLMBackend(str(tmp_path / "m")).cache_tag != tag
