import json
import sqlite3

import pytest
from chat_server import ChatServer

from tuneforge.errors import ConfigError
from tuneforge.llm.cache import CachedLLM, RequestCache
from tuneforge.llm.client import Sampling, cut_at_stop
from tuneforge.llm.openai_http import LLMRequestError, OpenAIChatLLM

CONV = [{"role": "user", "content": "Name a fruit."}]


class ScriptedServer(ChatServer):
    """Answers from a script of (status, delay) steps, then 200s: `n` choices echoing the last message."""

    def __init__(self, script=(), choices_per_request=None):
        self.script = list(script)

        def respond(body: dict) -> tuple[int, dict, float]:
            status, delay = self.script.pop(0) if self.script else (200, 0)
            if status != 200:
                return status, {"error": "try later"}, delay
            n = min(body["n"], choices_per_request or body["n"])
            last = body["messages"][-1]["content"]
            choices = [{"message": {"role": "assistant", "content": f"echo {last} #{i} STOP tail"}} for i in range(n)]
            return 200, {"choices": choices}, delay

        super().__init__(respond)


@pytest.fixture
def server_factory():
    servers = []

    def make(*args, **kwargs):
        servers.append(ScriptedServer(*args, **kwargs))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def test_retries_429_500_and_a_timeout_then_succeeds(server_factory):
    server = server_factory([(429, 0), (500, 0), (200, 1.0)])  # the third answer comes after the timeout
    llm = OpenAIChatLLM("m", server.url, api_key_env="", timeout=0.3, backoff=0.01, max_retries=4)
    out = llm.chat([CONV], Sampling(stop=["STOP"]))
    assert out == [["echo Name a fruit. #0"]]
    assert len(server.seen) == 4 and llm.requests_sent == 4


def test_gives_up_after_the_retries_and_fails_fast_on_4xx(server_factory):
    server = server_factory([(503, 0)] * 3)
    with pytest.raises(LLMRequestError, match="failed after 3 attempts; last: HTTP 503"):
        OpenAIChatLLM("m", server.url, api_key_env="", backoff=0.01, max_retries=2).chat([CONV], Sampling())
    server = server_factory([(401, 0)])
    llm = OpenAIChatLLM("m", server.url, api_key_env="TF_TEST_KEY", backoff=0.01)
    with pytest.raises(LLMRequestError, match="refused.*HTTP 401.*TF_TEST_KEY"):
        llm.chat([CONV], Sampling())
    assert len(server.seen) == 1


def test_key_comes_from_the_environment_and_is_never_stored(server_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("TF_TEST_KEY", "sk-secret-123")
    server = server_factory()
    llm = CachedLLM(OpenAIChatLLM("m", server.url, api_key_env="TF_TEST_KEY"), tmp_path / "cache.sqlite")
    llm.chat([CONV], Sampling())
    assert server.seen[0]["auth"] == "Bearer sk-secret-123"
    assert "sk-secret" not in json.dumps(vars(llm.llm), default=str)
    for f in tmp_path.iterdir():
        assert b"sk-secret" not in f.read_bytes()


def test_n_samples_are_collected_from_servers_that_return_fewer(server_factory):
    server = server_factory(choices_per_request=1)
    llm = OpenAIChatLLM("m", server.url, api_key_env="", max_concurrency=2)
    out = llm.chat([CONV, [{"role": "user", "content": "Name a city."}]], Sampling(n=3, temperature=0.7))
    assert [len(x) for x in out] == [3, 3] and out[1][0].startswith("echo Name a city.")
    assert len(server.seen) == 6 and len({s["body"]["seed"] for s in server.seen}) == 3


class CountingLLM:
    name = "fake"

    def __init__(self, fail_on_call=None):
        self.calls, self.fail_on_call = [], fail_on_call

    def chat(self, conversations, sampling):
        self.calls.append(len(conversations))
        if self.fail_on_call is not None and len(self.calls) == self.fail_on_call:
            raise KeyboardInterrupt("killed mid-run")
        return [[c[-1]["content"].upper()] * sampling.n for c in conversations]


def test_the_cache_resumes_a_crashed_run_without_repeating_calls(tmp_path):
    convs = [[{"role": "user", "content": f"q{i}"}] for i in range(10)]
    crashing = CachedLLM(CountingLLM(fail_on_call=3), tmp_path / "c.sqlite", batch_size=4)
    with pytest.raises(KeyboardInterrupt):
        crashing.chat(convs, Sampling())
    assert len(RequestCache(tmp_path / "c.sqlite")) == 8  # two batches committed before the crash
    fresh = CountingLLM()
    resumed = CachedLLM(fresh, tmp_path / "c.sqlite", batch_size=4)
    assert resumed.chat(convs, Sampling()) == [[f"Q{i}"] for i in range(10)]
    assert fresh.calls == [2] and resumed.hits == 8 and resumed.calls == 2
    assert CachedLLM(CountingLLM(), tmp_path / "c.sqlite").chat(convs[:1], Sampling(max_new_tokens=9))  # new key
    rows = sqlite3.connect(tmp_path / "c.sqlite").execute("SELECT COUNT(*) FROM completions").fetchone()[0]
    assert rows == 11


def test_sampling_settings_are_validated_and_stops_cut():
    with pytest.raises(ConfigError, match="temperature > 0"):
        Sampling(n=3)
    assert cut_at_stop("a STOP b END", ["END", "STOP"]) == "a "


def test_local_llm_batches_samples_and_stops(tiny_lm, tiny_tok):
    from tuneforge.llm.local import LocalLLM

    llm = LocalLLM(tiny_lm, tiny_tok, "tiny", batch_size=2)
    convs = [
        [{"role": "user", "content": "hello there"}],
        [{"role": "user", "content": "a much longer question"}],
        [{"role": "user", "content": "x"}],
    ]
    greedy = llm.chat(convs, Sampling(max_new_tokens=6))
    assert [len(x) for x in greedy] == [1, 1, 1] and greedy == llm.chat(convs, Sampling(max_new_tokens=6))
    sampled = llm.chat(convs[:1], Sampling(max_new_tokens=6, n=3, temperature=1.0))
    assert len(sampled[0]) == 3


def test_the_request_cache_does_not_serve_a_retrained_model_the_old_answers(tiny_lm, tiny_tok, tmp_path):
    from tuneforge.llm.cache import CachedLLM
    from tuneforge.llm.local import LocalLLM
    from tuneforge.models import tiny_model

    convs = [[{"role": "user", "content": "hello there"}]]
    first = CachedLLM(LocalLLM(tiny_lm, tiny_tok, "my-model"), tmp_path / "c.sqlite")
    first.chat(convs, Sampling(max_new_tokens=6))
    retrained = CachedLLM(
        LocalLLM(tiny_model(tiny_tok, hidden=32, seed=7), tiny_tok, "my-model"), tmp_path / "c.sqlite"
    )
    retrained.chat(convs, Sampling(max_new_tokens=6))
    assert (retrained.calls, retrained.hits) == (1, 0)  # same name, other weights: asked, not read back
    again = CachedLLM(LocalLLM(tiny_lm, tiny_tok, "my-model"), tmp_path / "c.sqlite")
    again.chat(convs, Sampling(max_new_tokens=6))
    assert (again.calls, again.hits) == (0, 1)
