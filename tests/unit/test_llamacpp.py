"""llama.cpp backend on a tiny GGUF written from the tiny HF model (same weights, f32), engine selection,
and the numpy sampler. The llama.cpp tests skip when llama-cpp-python is not installed."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from selfdebug.generate import engine_select
from selfdebug.generate.base import SamplingParams
from selfdebug.generate.llamacpp import sample_token

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED_GGUF = ROOT / "data" / "models" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
EMBEDDED_HF = ROOT / "data" / "models" / "qwen2.5-coder-0.5b-instruct-bf16"
CHATS = [
    [{"role": "user", "content": "def add(a, b):"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Fix: return a - b\n"},
     {"role": "assistant", "content": "```python\nreturn a + b\n```"}, {"role": "user", "content": "Why?"}],
]


def write_qwen2_gguf(hf_dir: Path, out: Path) -> Path:
    """The tiny HF model as an f32 GGUF, written by the package's own exporter (what serves trained models)."""
    from selfdebug.generate.gguf_export import export_model

    return export_model(hf_dir, out, dtype="f32")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("llama_cpp")
    from selfdebug.generate.tiny import build_tiny_model

    d = tmp_path_factory.mktemp("tiny")
    hf_dir = build_tiny_model(d / "hf", seed=0)
    gguf_path = write_qwen2_gguf(hf_dir, d / "tiny-f32.gguf")
    return hf_dir, gguf_path


@pytest.fixture(scope="module")
def backend(tiny):
    from selfdebug.generate.llamacpp import LlamaCppBackend

    b = LlamaCppBackend(tiny[1], n_ctx=256, n_threads=1, n_parallel=4)
    yield b
    b.close()


def test_render_and_tokens_match_hf(tiny, backend):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny[0])
    for chat in CHATS:
        text = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        assert backend.render(chat) == text
        assert backend.tokenize(text) == tok(text, add_special_tokens=False)["input_ids"]


def test_a_reply_prefix_is_continued_like_the_same_text_sent_raw(tiny, backend):
    """A chat ending with a reply prefix generates what the rendered chat plus the prefix generates as a raw
    prompt, and the completion is only what follows the prefix."""
    from selfdebug.generate.chat import with_prefix

    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=8)
    chat = with_prefix(CHATS[0], "def")
    got = backend.generate([chat], params)[0][0]
    raw = backend.generate([backend.render(CHATS[0]) + "def"], params)[0][0]
    assert got.text == raw.text and got.token_ids == raw.token_ids
    assert got.prompt_tokens == raw.prompt_tokens > backend.generate([CHATS[0]], params)[0][0].prompt_tokens


def test_greedy_matches_transformers(tiny, backend):
    """Same f32 weights: llama.cpp greedy continuation = transformers greedy continuation."""
    from selfdebug.generate.hf import HFBackend

    hf = HFBackend(tiny[0], dtype="float32", device="cpu", batch_size=2)
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=12)
    ours = backend.generate(CHATS, params)
    ref = hf.generate(CHATS, params)
    for a, b in zip(ours, ref, strict=True):
        assert a[0].text == b[0].text
        assert a[0].completion_tokens == b[0].completion_tokens


def test_samples_do_not_depend_on_batching(tiny, backend):
    """Per-(seed, prompt, sample) RNGs: the same completions whether 1 or 4 sequences share a decode."""
    from selfdebug.generate.llamacpp import LlamaCppBackend

    params = SamplingParams(n=3, temperature=0.8, top_p=0.95, max_new_tokens=10, seed=7)
    batched = backend.generate(CHATS, params)
    single = LlamaCppBackend(tiny[1], n_ctx=256, n_threads=1, n_parallel=1)
    try:
        alone = single.generate(CHATS, params)
    finally:
        single.close()
    assert [[c.text for c in row] for row in batched] == [[c.text for c in row] for row in alone]
    assert all(len(row) == 3 for row in batched)
    # different samples of one prompt differ somewhere (they are not copies of one RNG stream)
    assert len({c.text for row in batched for c in row}) > 1
    again = backend.generate(CHATS, params)
    assert [[c.text for c in row] for row in again] == [[c.text for c in row] for row in batched]


def test_stop_strings_and_lengths(backend):
    params = SamplingParams(n=2, temperature=1.0, top_p=1.0, max_new_tokens=7, seed=1)
    outs = backend.generate(["def add(a, b):"], params)
    for c in outs[0]:
        assert c.completion_tokens <= 7
        assert c.finish_reason in ("stop", "length")
        assert c.prompt_tokens == len(backend.tokenize("def add(a, b):", add_special=True))
    full = outs[0][0].text
    if len(full) > 2:
        stop = full[1:3]
        cut = backend.generate(["def add(a, b):"], SamplingParams(n=1, temperature=1.0, top_p=1.0,
                                                                   max_new_tokens=7, seed=1, stop=(stop,)))
        assert cut[0][0].text == full[: full.find(stop)]
        assert cut[0][0].finish_reason == "stop"


def test_long_prompt_is_a_clear_error(backend):
    with pytest.raises(ValueError, match="more than the context"):
        backend.generate(["x " * 400], SamplingParams(max_new_tokens=4))


def test_missing_file_is_a_clear_error(tmp_path):
    pytest.importorskip("llama_cpp")
    from selfdebug.generate.llamacpp import LlamaCppBackend

    with pytest.raises(FileNotFoundError, match="nope.gguf"):
        LlamaCppBackend(tmp_path / "nope.gguf")


# --- sampler ---------------------------------------------------------------------------------------------


def test_sample_token_greedy_and_top_p():
    logits = np.log(np.array([0.6, 0.3, 0.1], dtype=np.float32))
    rng = np.random.default_rng(0)
    assert sample_token(logits, 0.0, 0.95, rng) == 0
    # top_p=0.5: token 0 alone crosses 0.5 -> only it; top_p=0.7: tokens 0 and 1 (1 crosses the threshold)
    assert {sample_token(logits, 1.0, 0.5, rng) for _ in range(200)} == {0}
    counts = Counter(sample_token(logits, 1.0, 0.7, rng) for _ in range(3000))
    assert set(counts) == {0, 1}
    assert abs(counts[0] / 3000 - 2 / 3) < 0.04


def test_sample_token_full_distribution_on_large_vocab():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=50_000).astype(np.float32)  # flat: the nucleus needs the full-sort fallback
    toks = [sample_token(logits, 0.8, 0.95, rng) for _ in range(50)]
    assert len(set(toks)) > 40 and all(0 <= t < 50_000 for t in toks)


# --- engine selection (no llama_cpp needed) --------------------------------------------------------------


@pytest.fixture
def llama_ok(monkeypatch):
    monkeypatch.setattr(engine_select, "llama_cpp_available", lambda: (True, ""))


def test_auto_uses_llamacpp_for_embedded(llama_ok):
    assert engine_select.choose_backend({"id": "embedded", "backend": "auto"}) == "llamacpp"
    assert engine_select.choose_backend({"id": "embedded"}) == "llamacpp"


def test_auto_falls_back_to_hf_for_adapters_and_hf_folders(llama_ok, tmp_path):
    backend, why = engine_select.choose_backend_with_reason({"id": "embedded", "adapter": "runs/sft/adapter"})
    assert backend == "hf" and "adapter" in why
    (tmp_path / "config.json").write_text("{}")
    assert engine_select.choose_backend({"id": str(tmp_path)}) == "hf"
    assert engine_select.choose_backend({"id": "Qwen/Qwen2.5-Coder-7B-Instruct"}) == "hf"


def test_auto_falls_back_to_hf_without_llama_cpp(monkeypatch):
    monkeypatch.setattr(engine_select, "llama_cpp_available", lambda: (False, "llama_cpp does not import"))
    backend, why = engine_select.choose_backend_with_reason({"id": "embedded"})
    assert backend == "hf" and "does not import" in why


def test_gguf_paths_and_explicit_backends(llama_ok, tmp_path):
    g = tmp_path / "m.gguf"
    g.write_bytes(b"GGUF")
    assert engine_select.choose_backend({"id": str(g)}) == "llamacpp"
    assert engine_select.choose_backend({"id": str(tmp_path / "missing.gguf")}) == "hf"
    assert engine_select.choose_backend({"id": "embedded", "backend": "hf"}) == "hf"
    with pytest.raises(ValueError, match="model.backend"):
        engine_select.choose_backend({"id": "embedded", "backend": "vllm-cpu"})


def test_bf16_conversion_of_embedded_counts_as_embedded(llama_ok, tmp_path):
    from selfdebug.generate.provision import GGUF_SHA256, MARKER

    (tmp_path / MARKER).write_text(json.dumps({"gguf_sha256": GGUF_SHA256}))
    assert engine_select.gguf_for({"id": str(tmp_path)})[0] == "embedded"


# --- the real embedded model ------------------------------------------------------------------------------


@pytest.mark.slow
def test_embedded_render_and_tokens_match_hf():
    pytest.importorskip("llama_cpp")
    if not (EMBEDDED_GGUF.is_file() and EMBEDDED_HF.is_dir()):
        pytest.skip("embedded model not provisioned")
    from transformers import AutoTokenizer

    from selfdebug.generate.llamacpp import LlamaCppBackend

    tok = AutoTokenizer.from_pretrained(EMBEDDED_HF)
    b = LlamaCppBackend(EMBEDDED_GGUF, n_ctx=512, n_parallel=1)
    try:
        for chat in [*CHATS, [{"role": "user", "content": "Ünïcode ✓ 日本語\n\tdef f(x):\n        return x**2"}]]:
            text = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
            assert b.render(chat) == text
            assert b.tokenize(text) == tok(text, add_special_tokens=False)["input_ids"]
        out = b.generate(CHATS[:1], SamplingParams(n=2, max_new_tokens=16))
        assert all(c.completion_tokens > 0 for c in out[0])
    finally:
        b.close()


# --- prefix cache, streaming, re-encoded weights ----------------------------------------------------------

SHARED = "You are a careful Python programmer. " * 6
PREFIXED = [SHARED + "def add(a, b):", SHARED + "def sub(a, b):", SHARED + "def add(a, b):\n    return"]


def test_prefix_cache_gives_the_same_completions_and_skips_shared_prompt_tokens(tiny):
    """Prompts sharing a prefix: the cached-prefix engine evaluates fewer prompt tokens and returns what an
    engine without the cache returns (greedy and sampled), within a call and across calls."""
    from selfdebug.generate.llamacpp import LlamaCppBackend

    cached = LlamaCppBackend(tiny[1], n_ctx=256, n_threads=1, n_parallel=2, prefix_cache=True)
    plain = LlamaCppBackend(tiny[1], n_ctx=256, n_threads=1, n_parallel=2, prefix_cache=False)
    try:
        for params in (SamplingParams(n=1, temperature=0.0, max_new_tokens=8),
                       SamplingParams(n=3, temperature=0.9, top_p=0.95, max_new_tokens=8, seed=3)):
            ours = cached.generate(PREFIXED, params)
            ref = plain.generate(PREFIXED, params)
            assert [[c.text for c in r] for r in ours] == [[c.text for c in r] for r in ref]
            assert [[c.prompt_tokens for c in r] for r in ours] == [[c.prompt_tokens for c in r] for r in ref]
        asked = cached.stats["prompt_tokens"]
        assert cached.stats["reused_tokens"] > 0
        assert cached.stats["prefill_tokens"] + cached.stats["reused_tokens"] == asked
        assert plain.stats["reused_tokens"] == 0 and plain.stats["prefill_tokens"] == plain.stats["prompt_tokens"]
        # the second call found every prompt's tokens (but the last) already in a slot
        shared = len(cached.tokenize(SHARED))
        assert cached.stats["reused_tokens"] >= shared * 2 + 3 * shared
    finally:
        cached.close()
        plain.close()


def test_on_result_streams_each_prompt_once_before_return(backend):
    seen = []
    params = SamplingParams(n=2, temperature=0.8, max_new_tokens=6, seed=2)
    outs = backend.generate(PREFIXED, params, on_result=lambda i, comps: seen.append((i, [c.text for c in comps])))
    assert sorted(i for i, _ in seen) == [0, 1, 2]
    assert all(texts == [c.text for c in outs[i]] for i, texts in seen)


def test_reencoded_gguf_is_made_once_and_runs(tiny, tmp_path):
    import shutil

    from selfdebug.generate.gguf_requant import derived_path, requantized_gguf
    from selfdebug.generate.llamacpp import LlamaCppBackend

    src = Path(shutil.copy(tiny[1], tmp_path / "m.gguf"))
    assert requantized_gguf(src, "original") == src
    out = requantized_gguf(src, "q8_0", n_threads=1)
    assert out == derived_path(src, "q8_0") and out.is_file() and out.stat().st_size < src.stat().st_size
    stamp = out.stat().st_mtime_ns
    assert requantized_gguf(src, "q8_0") == out and out.stat().st_mtime_ns == stamp  # not rebuilt
    src.touch()  # a changed source is re-encoded
    requantized_gguf(src, "q8_0", n_threads=1)
    assert out.stat().st_mtime_ns != stamp
    b = LlamaCppBackend(out, n_ctx=128, n_threads=1, n_parallel=2, weights_tag="q8_0")
    try:
        got = b.generate(CHATS[:1], SamplingParams(n=1, temperature=0.0, max_new_tokens=4))
        assert got[0][0].completion_tokens >= 1
    finally:
        b.close()
    with pytest.raises(ValueError, match="gguf_type"):
        requantized_gguf(src, "q2_k")


def test_a_bf16_copy_is_half_the_bytes_and_serves(tiny, tmp_path):
    """bf16 (the benchmark's AVX512-BF16 candidate): half the bytes of the f32 source, made once, and it runs.
    (Its greedy tokens are not compared: a random tiny model's near-tied logits may flip at 8 bits of mantissa.)"""
    import shutil

    from selfdebug.generate.gguf_requant import requantized_gguf
    from selfdebug.generate.llamacpp import LlamaCppBackend

    src = Path(shutil.copy(tiny[1], tmp_path / "m.gguf"))
    out = requantized_gguf(src, "bf16", n_threads=1)
    assert out.name == "m.bf16.gguf" and out.stat().st_size < 0.6 * src.stat().st_size
    b = LlamaCppBackend(out, n_ctx=128, n_threads=1, n_parallel=1, weights_tag="bf16")
    try:
        got = b.generate(CHATS[:1], SamplingParams(n=1, temperature=0.0, max_new_tokens=6))[0][0]
        assert 1 <= got.completion_tokens <= 6 and got.text == b.generate(CHATS[:1], SamplingParams(n=1, temperature=0.0, max_new_tokens=6))[0][0].text
    finally:
        b.close()


def test_live_sequences_stay_in_consecutive_slots(tiny):
    """Every decode step covers slots 0..k-1 (llama.cpp runs one forward pass per run of consecutive slots),
    while sequences of different lengths finish and are replaced; results equal the one-slot engine's."""
    from selfdebug.generate.llamacpp import LlamaCppBackend

    b = LlamaCppBackend(tiny[1], n_ctx=256, n_threads=1, n_parallel=4)
    single = LlamaCppBackend(tiny[1], n_ctx=256, n_threads=1, n_parallel=1)
    steps, prefilling = [], []
    decode, prefill = b._decode, b._prefill

    def spy_decode(tokens, positions, seq_ids, outputs):
        if not prefilling:  # a decode step, not a prompt evaluation
            steps.append(list(seq_ids))
        return decode(tokens, positions, seq_ids, outputs)

    def spy_prefill(*args, **kwargs):
        prefilling.append(1)
        try:
            return prefill(*args, **kwargs)
        finally:
            prefilling.pop()

    b._decode, b._prefill = spy_decode, spy_prefill
    try:
        # stop strings end sequences at different steps (the random tiny model never says EOS)
        params = SamplingParams(n=3, temperature=1.0, top_p=1.0, max_new_tokens=12, seed=5, stop=("e", "a", "o"))
        ours = b.generate(PREFIXED + CHATS, params)
        ref = single.generate(PREFIXED + CHATS, params)
    finally:
        b.close()
        single.close()
    assert [[c.text for c in r] for r in ours] == [[c.text for c in r] for r in ref]
    lengths = {c.completion_tokens for r in ours for c in r}
    assert len(lengths) > 1  # sequences did finish at different steps, so holes were made and packed
    assert steps and all(ids == list(range(len(ids))) for ids in steps)


# --- per-sample seeds, token ids, log-probabilities, cache tag -------------------------------------------


@pytest.mark.parametrize("temperature,top_p", [(0.0, 1.0), (0.8, 0.95), (1.0, 0.9), (1.0, 1.0)])
def test_sampled_token_logprob_is_the_raw_log_softmax(temperature, top_p):
    from selfdebug.generate.llamacpp import sample_token_logprob

    rng = np.random.default_rng(1)
    logits = (rng.normal(size=20_000) * 4).astype(np.float32)
    buf = np.empty_like(logits)
    ref = logits.astype(np.float64) - np.log(np.exp(logits.astype(np.float64) - logits.max()).sum()) - logits.max()
    for seed in range(5):
        tok, lp = sample_token_logprob(logits, temperature, top_p, np.random.default_rng(seed), buf)
        assert tok == sample_token(logits, temperature, top_p, np.random.default_rng(seed))  # same draw
        assert lp == pytest.approx(ref[tok], abs=2e-4)


def test_a_sample_depends_on_its_seed_alone(tiny, backend):
    """seeds[i][j] decides sample j of prompt i: the same with other prompts, another n, another slot count."""
    from selfdebug.generate.llamacpp import LlamaCppBackend

    params = SamplingParams(n=3, temperature=0.9, top_p=0.95, max_new_tokens=10)
    together = backend.generate(CHATS, params, seeds=[[1, 2, 3], [4, 5, 6]])
    single = LlamaCppBackend(tiny[1], n_ctx=256, n_threads=1, n_parallel=1)
    try:
        alone = single.generate([CHATS[1]], SamplingParams(n=1, temperature=0.9, top_p=0.95, max_new_tokens=10),
                                seeds=[[5]])
    finally:
        single.close()
    assert (alone[0][0].text, alone[0][0].token_ids) == (together[1][1].text, together[1][1].token_ids)
    twice = backend.generate([CHATS[0], CHATS[0]], SamplingParams(n=1, temperature=0.9, max_new_tokens=10),
                             seeds=[[9], [9]])
    assert twice[0][0].text == twice[1][0].text
    assert len({c.text for row in together for c in row}) > 1


def test_token_ids_and_logprobs_match_transformers(tiny, backend):
    """Same f32 weights: llama.cpp's sampled ids and their raw log-probabilities are what a transformers
    forward pass over prompt + completion gives."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny[0], dtype=torch.float32).eval()
    for params in (SamplingParams(n=2, temperature=0.8, top_p=0.95, max_new_tokens=8),
                   SamplingParams(n=1, temperature=0.0, max_new_tokens=8)):
        for chat, row in zip(CHATS, backend.generate(CHATS, params), strict=True):
            for c in row:
                assert len(c.token_ids) == len(c.logprobs) == c.completion_tokens
                assert c.prompt_token_ids == backend.tokenize(backend.render(chat))
                with torch.no_grad():
                    logits = model(torch.tensor([c.prompt_token_ids + c.token_ids])).logits[0]
                lp = torch.log_softmax(logits.double(), -1)
                n = len(c.prompt_token_ids)
                ref = [float(lp[n - 1 + k, t]) for k, t in enumerate(c.token_ids)]
                assert c.logprobs == pytest.approx(ref, abs=2e-3)


def test_cache_tag_names_engine_weights_and_encoding(tiny, backend, tmp_path, monkeypatch):
    import shutil

    from selfdebug.generate.gguf_requant import requantized_gguf
    from selfdebug.generate.hf import HFBackend
    from selfdebug.generate.llamacpp import LlamaCppBackend
    from selfdebug.generate.tiny import build_tiny_model

    monkeypatch.setenv("SELFDEBUG_FINGERPRINT_CACHE", str(tmp_path / "fp.json"))
    tag = backend.cache_tag
    assert tag.startswith("llamacpp|weights=") and "chat=template:" in tag
    assert HFBackend(tiny[0], dtype="float32", device="cpu").cache_tag != tag  # another engine
    src = Path(shutil.copy(tiny[1], tmp_path / "m.gguf"))

    def tag_of(path, **kw):
        b = LlamaCppBackend(path, n_ctx=64, n_threads=1, n_parallel=1, **kw)
        try:
            return b.cache_tag
        finally:
            b.close()

    first = tag_of(src)
    assert first == tag  # same weights, same tag, wherever the file is
    assert tag_of(requantized_gguf(src, "q8_0", n_threads=1), weights_tag="q8_0") != first
    write_qwen2_gguf(build_tiny_model(tmp_path / "retrained", seed=1), src)  # retrained, same path and size
    assert tag_of(src) != first


def test_a_prompt_that_continues_a_finished_reply_reuses_the_replys_kv(tiny):
    """The second generation of a prefixed reply (and any next turn) starts with the first one's prompt and reply:
    the cache takes both from the slot the reply was written in (in token ids: a random tiny model's text need
    not tokenise back to its tokens), and the completion is what a cold engine writes."""
    from selfdebug.generate.llamacpp import LlamaCppBackend

    cached = LlamaCppBackend(tiny[1], n_ctx=256, n_threads=1, n_parallel=2, prefix_cache=True)
    plain = LlamaCppBackend(tiny[1], n_ctx=256, n_threads=1, n_parallel=2, prefix_cache=False)
    try:
        greedy = SamplingParams(n=1, temperature=0.0, max_new_tokens=12)
        prompt = cached.tokenize(SHARED)
        reply = cached.generate_tokens([prompt], greedy)[0][0]
        assert reply.completion_tokens == 12 and reply.finish_reason == "length"
        follow = prompt + reply.token_ids + cached.tokenize("\n```python\n")
        before = cached.stats["reused_tokens"]
        got = cached.generate_tokens([follow], greedy)[0][0]
        assert got.token_ids == plain.generate_tokens([follow], greedy)[0][0].token_ids
        # the prompt and the reply's tokens but its last (sampled, never evaluated): evaluated once, not twice
        assert cached.stats["reused_tokens"] - before == len(prompt) + 12 - 1
    finally:
        cached.close()
        plain.close()
