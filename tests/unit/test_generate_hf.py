"""The transformers backend on the tiny random model: shapes, token counts, stops, determinism, padding."""

from __future__ import annotations

import pytest

from selfdebug.generate import make_backend
from selfdebug.generate.base import SamplingParams
from selfdebug.generate.hf import HFBackend, truncate_at_stop
from selfdebug.generate.tiny import build_tiny_model

CHAT = [{"role": "user", "content": "Write a Python function to check whether a number is even."}]
PROMPTS = [
    CHAT,
    "def fib(n):",
    [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "def f(x): return x"},
        {"role": "user", "content": "Traceback (most recent call last): AssertionError"},
    ],
]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="module")
def backend(tiny_dir):
    return HFBackend(tiny_dir, dtype="float32", device="cpu", batch_size=4)


def test_n_completions_per_prompt_with_token_counts(backend):
    out = backend.generate(PROMPTS, SamplingParams(n=3, temperature=1.0, max_new_tokens=12, seed=0))
    assert [len(cs) for cs in out] == [3, 3, 3]
    for prompt, cs in zip(PROMPTS, out, strict=True):
        text = (
            prompt
            if isinstance(prompt, str)
            else backend.tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        )
        expected_prompt_tokens = len(
            backend.tokenizer(text, add_special_tokens=isinstance(prompt, str))["input_ids"]
        )
        for c in cs:
            assert c.prompt_tokens == expected_prompt_tokens
            assert 1 <= c.completion_tokens <= 12
            assert c.finish_reason in ("stop", "length")
            if c.finish_reason == "length":
                assert c.completion_tokens == 12


def test_greedy_is_deterministic_and_ignores_seed(backend):
    a = backend.generate(PROMPTS, SamplingParams(temperature=0, max_new_tokens=16, seed=1))
    b = backend.generate(PROMPTS, SamplingParams(temperature=0, max_new_tokens=16, seed=2))
    assert [c[0].text for c in a] == [c[0].text for c in b]


def test_sampling_is_deterministic_per_seed(backend):
    p = SamplingParams(n=3, temperature=1.0, top_p=0.95, max_new_tokens=8, seed=7)
    a = backend.generate(PROMPTS, p)
    b = backend.generate(PROMPTS, p)
    assert [[c.text for c in cs] for cs in a] == [[c.text for c in cs] for cs in b]
    c = backend.generate(PROMPTS, SamplingParams(n=3, temperature=1.0, top_p=0.95, max_new_tokens=8, seed=8))
    assert [[x.text for x in cs] for cs in a] != [[x.text for x in cs] for cs in c]
    # samples of one prompt differ from each other
    assert len({x.text for x in a[0]}) > 1


def test_left_padding_batched_greedy_equals_alone(tiny_dir, backend):
    params = SamplingParams(temperature=0, max_new_tokens=16)
    batched = backend.generate(PROMPTS, params)
    alone_backend = HFBackend(tiny_dir, dtype="float32", device="cpu", batch_size=1)
    alone = [alone_backend.generate([p], params)[0] for p in PROMPTS]
    assert [c[0].text for c in batched] == [c[0].text for c in alone]
    assert [c[0].completion_tokens for c in batched] == [c[0].completion_tokens for c in alone]


def test_stop_strings_truncate_and_report_stop(backend):
    full = backend.generate([CHAT], SamplingParams(temperature=0, max_new_tokens=24))[0][0]
    assert full.finish_reason == "length" and len(full.text) > 12
    stop = full.text[8:11]
    expected = full.text[: full.text.find(stop)]
    cut = backend.generate([CHAT], SamplingParams(temperature=0, max_new_tokens=24, stop=(stop,)))[0][0]
    assert cut.text == expected
    assert cut.finish_reason == "stop"
    assert cut.completion_tokens < full.completion_tokens  # generation stopped early, not just the text


def test_truncate_at_stop_picks_earliest():
    assert truncate_at_stop("abc<|end|>def\nassert", ("\nassert", "<|end|>")) == ("abc", True)
    assert truncate_at_stop("abc", ("x",)) == ("abc", False)
    assert truncate_at_stop("abc", ("",)) == ("abc", False)


def test_factory_builds_hf_and_validates(tiny_dir):
    b = make_backend({"id": str(tiny_dir), "backend": "auto", "dtype": "float32", "batch_size": 2})
    assert isinstance(b, HFBackend) and b.batch_size == 2
    with pytest.raises(ValueError, match="unknown keys"):
        make_backend({"id": str(tiny_dir), "backend": "hf", "batchsize": 2})
    with pytest.raises(ValueError, match="backend must be one of"):
        make_backend({"id": str(tiny_dir), "backend": "tgi"})
    with pytest.raises(ValueError, match="'id' is required"):
        make_backend({"backend": "hf"})
    with pytest.raises(ValueError, match="needs a GGUF"):
        make_backend({"id": str(tiny_dir), "backend": "llamacpp"})


def test_base_model_uses_starchat_and_stops_at_end_marker(tmp_path):
    base = build_tiny_model(tmp_path / "base", seed=1, chat_template=False)
    b = HFBackend(base, dtype="float32", device="cpu")
    out = b.generate([CHAT], SamplingParams(temperature=0, max_new_tokens=4))[0][0]
    expected = len(
        b.tokenizer("<|user|>\n" + CHAT[0]["content"] + "<|end|>\n<|assistant|>\n", add_special_tokens=False)[
            "input_ids"
        ]
    )
    assert out.prompt_tokens == expected


# --- per-sample seeds, token ids, log-probabilities ----------------------------------------------------------


def test_a_sample_depends_on_its_seed_not_on_its_batch_mates(tiny_dir, backend):
    """Row (i, j) samples with its own generator: alone, or padded into a batch beside other prompts and in
    another row position, it is the same completion (fp32 tiny model: exact)."""
    params = SamplingParams(n=2, temperature=1.0, top_p=0.95, max_new_tokens=10)
    seeds = [[11, 12], [21, 22], [31, 32]]
    batched = backend.generate(PROMPTS, params, seeds=seeds)
    alone_backend = HFBackend(tiny_dir, dtype="float32", device="cpu", batch_size=1)
    for i, prompt in enumerate(PROMPTS):
        for j in range(2):
            one = alone_backend.generate([prompt], SamplingParams(n=1, temperature=1.0, top_p=0.95,
                                                                  max_new_tokens=10), seeds=[[seeds[i][j]]])[0][0]
            assert (one.text, one.token_ids) == (batched[i][j].text, batched[i][j].token_ids)
    # the seed decides: equal seeds give equal samples, other seeds other ones
    same = backend.generate([CHAT, CHAT], SamplingParams(n=1, temperature=1.0, max_new_tokens=10), seeds=[[5], [5]])
    assert same[0][0].text == same[1][0].text
    other = backend.generate([CHAT] * 4, SamplingParams(n=1, temperature=1.0, max_new_tokens=10),
                             seeds=[[1], [2], [3], [4]])
    assert len({o[0].text for o in other}) > 1


def test_seeds_must_match_prompts_and_n(backend):
    with pytest.raises(ValueError, match="seeds has 1 rows for 2 prompts"):
        backend.generate([CHAT, CHAT], SamplingParams(n=1), seeds=[[1]])
    with pytest.raises(ValueError, match=r"seeds\[0\] has 1 seeds, expected n=2"):
        backend.generate([CHAT], SamplingParams(n=2), seeds=[[1]])


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_token_ids_and_raw_logprobs_match_a_forward_pass(backend, temperature):
    """Completion.token_ids are the ids sampled (decoding to the text) and logprobs are log-softmax of the raw
    logits at temperature 1, as a plain forward pass over prompt + completion gives them."""
    import torch

    out = backend.generate(PROMPTS[:2], SamplingParams(n=2, temperature=temperature, max_new_tokens=10))
    for row in out:
        for c in row:
            assert c.prompt_token_ids and len(c.token_ids) == len(c.logprobs) == c.completion_tokens
            assert backend.tokenizer.decode(c.token_ids).startswith(c.text)
            ids = torch.tensor([c.prompt_token_ids + c.token_ids])
            with torch.no_grad():
                logits = backend.model(ids).logits[0].float()
            lp = torch.log_softmax(logits, -1)
            n = len(c.prompt_token_ids)
            ref = [float(lp[n - 1 + k, t]) for k, t in enumerate(c.token_ids)]
            assert c.logprobs == pytest.approx(ref, abs=1e-4)
            assert all(x <= 0 for x in c.logprobs)


def test_cache_tag_names_engine_weights_dtype_and_chat_format(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SELFDEBUG_FINGERPRINT_CACHE", str(tmp_path / "fp.json"))
    a = HFBackend(tiny_dir, dtype="float32", device="cpu")
    assert a.cache_tag == HFBackend(tiny_dir, dtype="float32", device="cpu").cache_tag
    assert a.cache_tag.startswith("hf|weights=") and "dtype=float32" in a.cache_tag and "chat=template:" in a.cache_tag
    assert HFBackend(tiny_dir, dtype="bfloat16", device="cpu").cache_tag != a.cache_tag
    assert HFBackend(tiny_dir, dtype="float32", device="cpu", chat_format="starchat").cache_tag != a.cache_tag
    other = build_tiny_model(tmp_path / "other", seed=5)
    assert HFBackend(other, dtype="float32", device="cpu").cache_tag != a.cache_tag
    # a ready-made model is fingerprinted by its parameters, as they are now
    given = HFBackend("policy", model=a.model, tokenizer=a.tokenizer, device="cpu")
    tag = given.cache_tag
    import torch

    with torch.no_grad():
        next(given.model.parameters()).add_(1e-3)
    assert given.cache_tag != tag
