"""The OpenAI-compatible backend against a real local HTTP server (http.server in a thread)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from selfdebug.generate import make_backend
from selfdebug.generate.base import SamplingParams
from selfdebug.generate.openai import OpenAIBackend, OpenAIError


class Server:
    def __init__(self):
        self.requests: list[tuple[str, dict, dict]] = []
        self.fail_first: list[int] = []  # HTTP codes to answer before succeeding
        self.max_n: int | None = None  # emulate servers that ignore n > 1
        self.lock = threading.Lock()


def _handler(state: Server):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.requests.append((self.path, dict(self.headers), body))
            if state.fail_first:
                code = state.fail_first.pop(0)
                self.send_response(code)
                if code == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(b'{"error": "slow down"}')
                return
            if self.path not in ("/v1/chat/completions", "/v1/completions"):
                self.send_response(404)
                self.end_headers()
                return
            n = body.get("n", 1) if state.max_n is None else min(body.get("n", 1), state.max_n)
            chat = self.path.endswith("chat/completions")
            choices = []
            for i in range(n):
                text = f"answer {i} seed={body['seed']}<|end|>tail" if chat else f"code {i}"
                lp = ({"content": [{"token": "a", "logprob": -0.25}, {"token": "b", "logprob": -1.5}]} if chat
                      else {"tokens": ["c"], "token_logprobs": [-0.75]})
                choices.append(
                    {
                        "index": i,
                        "finish_reason": "length" if body["seed"] % 2 else "stop",
                        **({"message": {"role": "assistant", "content": text}} if chat else {"text": text}),
                        **({"logprobs": lp} if body.get("logprobs") is not None else {}),
                    }
                )
            resp = {"choices": choices, "usage": {"prompt_tokens": 11, "completion_tokens": 10 * n}}
            data = json.dumps(resp).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture
def server():
    state = Server()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    yield state
    httpd.shutdown()
    httpd.server_close()


CHAT = [{"role": "user", "content": "Write add."}]


def test_chat_n_completions_usage_and_auth(server, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-test")
    b = OpenAIBackend("gpt-x", base_url=server.url, api_key_env="MY_KEY")
    out = b.generate(
        [CHAT], SamplingParams(n=2, temperature=0.5, top_p=0.9, max_new_tokens=64, stop=("<|end|>",)),
        seeds=[[3, 2**40 + 4]],
    )
    # one request per sample (n=1), each with its own seed (reduced to 31 bits)
    assert sorted(body["seed"] for _, _, body in server.requests) == [3, 4]
    path, headers, body = next(r for r in server.requests if r[2]["seed"] == 3)
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == "Bearer sk-test"
    assert body == {
        "model": "gpt-x",
        "temperature": 0.5,
        "top_p": 0.9,
        "max_tokens": 64,
        "seed": 3,
        "stop": ["<|end|>"],
        "messages": CHAT,
        "n": 1,
    }
    cs = out[0]
    assert [c.text for c in cs] == ["answer 0 seed=3", "answer 0 seed=4"]  # stop applied locally too
    assert all(c.prompt_tokens == 11 and c.completion_tokens == 10 for c in cs)
    assert cs[0].finish_reason == "stop"  # cut at a stop string, even though the server said length
    assert cs[0].logprobs is None and cs[0].token_ids is None


def test_raw_prompt_uses_completions_endpoint(server):
    b = OpenAIBackend("m", base_url=server.url, api_key="")
    out = b.generate(["def f():"], SamplingParams(max_new_tokens=8))
    path, headers, body = server.requests[0]
    assert path == "/v1/completions" and body["prompt"] == "def f():"
    assert "Authorization" not in headers
    assert out[0][0].text == "code 0" and out[0][0].completion_tokens == 10


def test_retries_429_and_5xx_then_succeeds(server):
    server.fail_first = [429, 503]
    b = OpenAIBackend("m", base_url=server.url, backoff_s=0.01)
    out = b.generate([CHAT], SamplingParams())
    assert len(server.requests) == 3
    assert out[0][0].text.startswith("answer 0")


def test_gives_up_after_max_retries(server):
    server.fail_first = [500, 500, 500]
    b = OpenAIBackend("m", base_url=server.url, backoff_s=0.01, max_retries=2)
    with pytest.raises(OpenAIError, match="HTTP 500"):
        b.generate([CHAT], SamplingParams())
    assert len(server.requests) == 3


def test_client_error_is_not_retried(server):
    server.fail_first = [400]
    b = OpenAIBackend("m", base_url=server.url, backoff_s=0.01)
    with pytest.raises(OpenAIError, match="HTTP 400.*slow down"):
        b.generate([CHAT], SamplingParams())
    assert len(server.requests) == 1


def test_every_sample_is_its_own_seeded_request(server):
    """Servers that ignore n > 1 are no problem, and a sample does not depend on what else was asked."""
    server.max_n = 1
    b = OpenAIBackend("m", base_url=server.url)
    out = b.generate([CHAT, CHAT], SamplingParams(n=3, seed=0))
    assert [len(cs) for cs in out] == [3, 3]
    assert len(server.requests) == 6 and all(body["n"] == 1 for _, _, body in server.requests)
    assert len({c.text for cs in out for c in cs}) == 6  # every sample has a seed of its own
    together = b.generate([CHAT, CHAT], SamplingParams(n=3), seeds=[[1, 2, 3], [4, 5, 6]])
    alone = b.generate([CHAT], SamplingParams(n=1), seeds=[[5]])
    assert alone[0][0].text == together[1][1].text == "answer 0 seed=5<|end|>tail"


def test_logprobs_on_request(server):
    b = OpenAIBackend("m", base_url=server.url, logprobs=True)
    chat, raw = b.generate([CHAT, "def f():"], SamplingParams())
    assert server.requests[0][2]["logprobs"] in (True, 0)
    assert chat[0].logprobs == [-0.25, -1.5] and raw[0].logprobs == [-0.75]
    assert OpenAIBackend("m", base_url=server.url).cache_tag == f"openai|{server.url}|model=m"


def test_factory_reads_base_url_from_env(server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    b = make_backend({"id": "m", "backend": "openai"})
    assert isinstance(b, OpenAIBackend)
    assert b.generate(["x"], SamplingParams())[0][0].text == "code 0"
