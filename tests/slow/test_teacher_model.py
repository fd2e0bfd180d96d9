"""The real teacher (Qwen2.5-Coder-1.5B-Instruct, ``model.id: embedded-teacher``), when ``make teacher`` has
provisioned it: the assembled GGUF verifies, and llama.cpp, picked by ``backend: auto``, decodes valid Python.
On demand only: skipped where the teacher was not provisioned (it is no part of setup or ``make test``)."""

from __future__ import annotations

import ast
import re

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gguf():
    from selfdebug.generate import provision
    from selfdebug.generate.model_specs import TEACHER

    try:
        return provision.gguf_path(TEACHER.model_id)
    except provision.ProvisionError as e:
        pytest.skip(f"teacher not provisioned (make teacher): {e}")


def test_assembled_gguf_is_the_pinned_file(gguf):
    from selfdebug.generate.model_specs import TEACHER
    from selfdebug.generate.provision import sha256_file

    assert gguf.stat().st_size == TEACHER.gguf_size == 1_117_320_768
    assert sha256_file(gguf) == TEACHER.gguf_sha256


def test_auto_backend_runs_the_teacher_with_llama_cpp(gguf):
    pytest.importorskip("llama_cpp")
    from selfdebug.generate import make_backend
    from selfdebug.generate.base import SamplingParams

    b = make_backend({"id": "embedded-teacher", "n_ctx": 512, "batch_size": 1, "probe": False})
    try:
        assert type(b).__name__ == "LlamaCppBackend" and "weights=cc324af070c2ecbf" in b.cache_tag
        chat = [{"role": "user", "content": "Write a Python function `add(a, b)` that returns a + b. Reply with "
                                            "only a Python code block."}]
        out = b.generate([chat], SamplingParams(temperature=0, max_new_tokens=48))[0][0]
    finally:
        b.close()
    m = re.search(r"```(?:python)?\n(.*?)(?:```|$)", out.text, re.S)
    code = m.group(1) if m else out.text
    ast.parse(code)  # parsed only: model-written code never runs in the test process
    assert "def add" in code and out.completion_tokens > 0
