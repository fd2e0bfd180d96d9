"""The real embedded model: provision it (assemble + verify + convert once) and generate valid Python."""

from __future__ import annotations

import ast
import re

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def backend():
    from selfdebug.generate import make_backend

    b = make_backend({"id": "embedded", "backend": "hf", "batch_size": 2})
    yield b
    b.close()


def _code(text: str) -> str:
    m = re.search(r"```(?:python)?\n(.*?)(?:```|$)", text, re.S)
    return m.group(1) if m else text


def test_provisioned_folder_records_the_gguf_hash():
    from selfdebug.generate import provision

    folder = provision.provision_embedded()
    assert provision.read_marker(folder)["gguf_sha256"] == provision.GGUF_SHA256
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()


def test_greedy_completion_is_valid_python(backend):
    from selfdebug.generate.base import SamplingParams

    chat = [
        {
            "role": "user",
            "content": "Write a Python function `add(a, b)` that returns the sum of a and b. "
            "Reply with only a Python code block.",
        }
    ]
    out = backend.generate([chat], SamplingParams(temperature=0, max_new_tokens=96))[0][0]
    code = _code(out.text)
    ast.parse(code)  # parsed only: model-written code never runs in the test process
    assert "def add" in code
    assert out.finish_reason == "stop" and 0 < out.completion_tokens < 96
