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
class FakeOutput:
    text: str
    token_ids: list
    finish_reason: str


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
            mod.calls["generate"] = (prompts, sampling_params)
            return [
                FakeResult(
                    p["prompt_token_ids"],
                    [
                        FakeOutput(f"out{i}-{k}", [1] * (k + 2), "length" if k == 0 else "stop")
                        for k in range(sp.kw["n"])
                    ],
                )
                for i, (p, sp) in enumerate(zip(prompts, sampling_params, strict=True))
            ]

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
    out = b.generate([CHAT, "def f():"], params)
    prompts, sps = fake.calls["generate"]
    assert sps[0].kw == dict(
        n=3, temperature=0.7, top_p=0.9, top_k=-1, max_tokens=100, stop=["\nassert"], seed=5
    )
    rendered = "<|im_start|>user\nWrite add.<|im_end|>\n<|im_start|>assistant\n"
    assert prompts[0]["prompt_token_ids"] == [ord(c) for c in rendered]  # template, no extra BOS
    assert prompts[1]["prompt_token_ids"] == [0] + [ord(c) for c in "def f():"]  # raw: tokenizer specials
    assert [len(cs) for cs in out] == [3, 3]
    c = out[1][1]
    assert (c.text, c.prompt_tokens, c.completion_tokens, c.finish_reason) == ("out1-1", 9, 3, "stop")
    assert out[0][0].finish_reason == "length"


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
