"""The llama.cpp probe: a crashing engine kills a child process, never the run; the run falls back and says so."""

import logging
import sys

import pytest

from selfdebug.generate import engine_select, make_backend, probe

CRASH = "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
OK = "print('probe: ok')"


@pytest.fixture(autouse=True)
def fresh_memo():
    probe._results.clear()
    yield
    probe._results.clear()


def children(monkeypatch, crash_when):
    """Replace the probe child by a real process that kills itself with SIGSEGV when ``crash_when(settings)``."""
    seen = []

    def argv(settings):
        seen.append(settings)
        return [sys.executable, "-c", CRASH if crash_when(settings) else OK]

    monkeypatch.setattr(probe, "_child_argv", argv)
    return seen


def test_describe_exit_names_the_signal():
    assert probe.describe_exit(-11) == "killed by SIGSEGV"
    assert probe.describe_exit(-9) == "killed by SIGKILL"
    assert probe.describe_exit(3) == "exit code 3"


def test_a_child_killed_by_a_signal_is_reported_not_raised(tmp_path, monkeypatch):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    children(monkeypatch, lambda s: True)
    result = probe.probe({"gguf_path": str(gguf)})
    assert not result.ok and result.how == "killed by SIGSEGV"
    # remembered per process: the same settings are not probed twice
    monkeypatch.setattr(probe, "_child_argv", lambda s: pytest.fail("probed twice"))
    assert probe.probe({"gguf_path": str(gguf)}) is result


def test_crash_falls_back_to_plain_kernels_with_a_warning(tmp_path, monkeypatch, caplog):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    seen = children(monkeypatch, lambda s: s.get("extra_buffer_types", True))
    with caplog.at_level(logging.WARNING):
        chosen, attempts = probe.choose_llamacpp_settings({"gguf_path": str(gguf), "n_parallel": 4})
    assert chosen == {"gguf_path": str(gguf), "n_parallel": 4, "extra_buffer_types": False}
    assert [a["ok"] for a in attempts] == [False, True] and len(seen) == 2
    text = caplog.text
    assert "SIGSEGV" in text and "without llama.cpp's extra buffer types" in text


def test_auto_falls_back_to_hf_when_every_llamacpp_setting_crashes(tmp_path, monkeypatch, caplog):
    from selfdebug.generate.tiny import build_tiny_model

    hf_dir = build_tiny_model(tmp_path / "hf")
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setattr(engine_select, "llama_cpp_available", lambda: (True, ""))
    children(monkeypatch, lambda s: True)
    with caplog.at_level(logging.WARNING):
        backend = make_backend({"id": str(hf_dir), "gguf": str(gguf), "backend": "auto"})
    try:
        assert backend.name == "hf"
    finally:
        backend.close()
    assert "killed by SIGSEGV" in caplog.text and "falling back to the hf backend" in caplog.text


def test_explicit_llamacpp_that_crashes_is_a_clear_error(tmp_path, monkeypatch):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    children(monkeypatch, lambda s: True)
    with pytest.raises(RuntimeError, match=r"cannot run .*m\.gguf.*killed by SIGSEGV"):
        make_backend({"id": str(gguf), "backend": "llamacpp"})


def test_real_probe_of_a_real_gguf_passes(tmp_path):
    pytest.importorskip("llama_cpp")
    from test_llamacpp import write_qwen2_gguf

    from selfdebug.generate.tiny import build_tiny_model

    gguf = write_qwen2_gguf(build_tiny_model(tmp_path / "hf"), tmp_path / "tiny.gguf")
    result = probe.probe({"gguf_path": str(gguf), "n_parallel": 2, "n_threads": 1})
    assert result.ok, result.how
    backend = make_backend({"id": str(gguf), "backend": "llamacpp", "batch_size": 2, "n_threads": 1})
    try:
        assert backend.name == "llamacpp" and backend.probe_report[0]["ok"]
    finally:
        backend.close()
