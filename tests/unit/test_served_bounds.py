"""A served model that misbehaves ends in a clear error, in bounded time, without the API key:
servers that echo the request headers, rate-limit forever with a huge Retry-After, trickle their
reply a byte at a time, or never answer while the user presses Ctrl-C. Every server here listens
on 127.0.0.1 and stops by itself (at teardown, or after a bounded number of bytes)."""

import itertools
import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tuneforge.errors import ConfigError
from tuneforge.llm.client import Sampling
from tuneforge.llm.openai_http import MAX_RETRIES, MAX_WAIT_S, LLMRequestError, OpenAIChatLLM

CONV = [{"role": "user", "content": "Name a fruit."}]
KEY = "sk-bounds-test-0123456789abcdef"
ANSWER = json.dumps({"choices": [{"message": {"role": "assistant", "content": "apple"}}]}).encode()


class Server:
    """ThreadingHTTPServer on port 0 that answers every POST with `respond(handler, stop)`; `stop` is
    set at close so that a handler that stalls or trickles returns."""

    def __init__(self, respond):
        self.stop, self.requests = threading.Event(), 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests += 1
                try:
                    respond(self, outer.stop)
                except OSError:  # the client gave up on us: expected here
                    pass

            def do_GET(self):  # GET /models: the probe `eval` and `safety` send before any work
                reply(self, 200, json.dumps({"data": [{"id": "m"}]}).encode())

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def make(respond):
        servers.append(Server(respond))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("TF_BOUNDS_KEY", KEY)
    return "TF_BOUNDS_KEY"


def reply(h, status: int, data: bytes, headers: dict | None = None) -> None:
    h.send_response(status)
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)


def echo_headers(status: int, headers: dict | None = None):
    """A server (or proxy) that quotes the request's headers back, as text and as JSON, then pads."""

    def respond(h, stop):
        text = "".join(f"{k}: {v}\n" for k, v in h.headers.items()) + json.dumps({"headers": dict(h.headers)})
        reply(h, status, (text + " pad" * 1000).encode(), headers)

    return respond


@pytest.mark.parametrize("status", [400, 401, 500])
def test_an_error_that_echoes_the_request_headers_does_not_show_the_key(serve, key, status):
    server = serve(echo_headers(status))
    llm = OpenAIChatLLM("m", server.url, api_key_env=key, max_retries=1, backoff=0.01)
    with pytest.raises(LLMRequestError) as err:
        llm.chat([CONV], Sampling())
    message = str(err.value)
    assert KEY not in message and KEY[:12] not in message and "Bearer ***" in message
    assert server.url in message and f"HTTP {status}" in message
    assert len(message) < 1000 and "\n" not in message  # the 4 kB body is cut, the message is one line


def test_a_429_loop_with_a_huge_retry_after_waits_at_most_the_cap_and_says_so(serve, key, monkeypatch):
    waits = []
    monkeypatch.setattr(OpenAIChatLLM, "_pause", lambda self, seconds, cancel: waits.append(seconds))
    server = serve(echo_headers(429, {"Retry-After": "100000"}))
    llm = OpenAIChatLLM("m", server.url, api_key_env=key, max_retries=3, backoff=0.01)
    with pytest.raises(LLMRequestError) as err:
        llm.chat([CONV], Sampling())
    assert waits == [MAX_WAIT_S] * 3 and server.requests == 4
    message = str(err.value)
    assert "failed after 4 attempts" in message and "100000 s (Retry-After)" in message
    assert f"at most {MAX_WAIT_S:g} s" in message and KEY not in message


def test_a_retry_after_past_the_deadline_fails_at_once_instead_of_sleeping(serve, monkeypatch):
    monkeypatch.setattr(OpenAIChatLLM, "_pause", lambda self, seconds, cancel: pytest.fail("paused"))
    server = serve(lambda h, stop: reply(h, 503, b"busy", {"Retry-After": "30"}))
    llm = OpenAIChatLLM("m", server.url, api_key_env="", deadline=5.0)
    with pytest.raises(LLMRequestError, match="deadline of 5 s .*HTTP 503: busy"):
        llm.chat([CONV], Sampling())
    assert server.requests == 1


def trickle(raw: bytes, every: float = 0.2):
    """A server that writes `raw` (status line, headers and body) one byte every `every` seconds."""

    def respond(h, stop):
        for b in raw:
            if stop.wait(every):
                return
            h.wfile.write(bytes([b]))
            h.wfile.flush()

    return respond


@pytest.mark.parametrize("part", ["headers", "body"])
def test_a_server_that_trickles_its_reply_hits_the_deadline(serve, part):
    head = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(ANSWER)
    if part == "headers":
        respond = trickle(head + ANSWER)
    else:

        def respond(h, stop):  # the headers at once, then the body a byte at a time
            h.wfile.write(head)
            trickle(ANSWER)(h, stop)

    server = serve(respond)
    # every byte comes well within the 10 s read timeout: only the total deadline can stop this
    llm = OpenAIChatLLM("m", server.url, api_key_env="", timeout=10, deadline=1.0, max_retries=2, backoff=0.01)
    start = time.monotonic()
    with pytest.raises(LLMRequestError, match="deadline of 1 s") as err:
        llm.chat([CONV], Sampling())
    assert time.monotonic() - start < 3.0
    assert server.url in str(err.value)


def test_ctrl_c_does_not_wait_for_requests_in_flight(serve):
    server = serve(lambda h, stop: stop.wait(20) or reply(h, 200, ANSWER))  # answers only at teardown
    llm = OpenAIChatLLM("m", server.url, api_key_env="", max_concurrency=2)
    main = threading.main_thread().ident
    assert main == threading.get_ident()
    # Python's own Ctrl-C handler, as in a terminal: a runner started in the background of a
    # non-interactive shell inherits SIGINT ignored, and then no KeyboardInterrupt would come
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.5, signal.pthread_kill, (main, signal.SIGINT))  # Ctrl-C, to this thread
    timer.start()
    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            llm.chat([CONV] * 4, Sampling())
    finally:
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - start < 3.0
    for _ in range(50):  # the pool's workers (joined at interpreter exit) end at once, too
        if not any(t.name.startswith("tuneforge-llm") for t in threading.enumerate()):
            break
        time.sleep(0.05)
    else:
        pytest.fail("request threads still running after Ctrl-C")
    timer.join()


def test_the_first_failure_ends_the_call_without_waiting_for_slower_requests(serve):
    arrivals = itertools.count()

    def respond(h, stop):  # the first request stalls, the second is refused
        if next(arrivals) == 0:
            stop.wait(20)
        reply(h, 400, b'{"error": "bad request"}')

    server = serve(respond)
    llm = OpenAIChatLLM("m", server.url, api_key_env="", max_concurrency=2)
    start = time.monotonic()
    with pytest.raises(LLMRequestError, match="refused the request: HTTP 400"):
        llm.chat([CONV, [{"role": "user", "content": "other"}]], Sampling())
    assert time.monotonic() - start < 3.0


def test_a_reply_that_is_not_a_chat_completion_is_an_error(serve):
    server = serve(lambda h, stop: reply(h, 200, b"<html>proxy login</html>"))
    with pytest.raises(LLMRequestError, match="not a chat completion: '<html>proxy login</html>'"):
        OpenAIChatLLM("m", server.url, api_key_env="").chat([CONV], Sampling())


@pytest.mark.parametrize(
    "kwargs", [{"max_retries": MAX_RETRIES + 1}, {"max_retries": -1}, {"max_concurrency": 0}, {"deadline": 0}]
)
def test_settings_that_would_hang_or_crash_are_refused(kwargs):
    with pytest.raises(ConfigError, match=f"{next(iter(kwargs))} out of range"):
        OpenAIChatLLM("m", "http://127.0.0.1:9/v1", api_key_env="", **kwargs)


def test_the_key_is_registered_when_the_client_is_built(monkeypatch):
    from tuneforge.redaction import redact

    secret = f"sk-registered-{os.getpid()}-abcdef"
    monkeypatch.setenv("TF_BOUNDS_KEY2", secret)
    OpenAIChatLLM("m", "http://127.0.0.1:9/v1", api_key_env="TF_BOUNDS_KEY2")
    assert redact(f"the key was {secret}.") == "the key was ***."


@pytest.mark.parametrize("status", [400, 401, 403, 404])  # 5xx are retried: the client tests cover them
def test_a_refused_request_through_the_cli_is_one_line_without_the_key_and_leaves_nothing(
    serve, status, tmp_path, capsys, monkeypatch
):
    from fuzzing import expect_user_error

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server = serve(echo_headers(status))
    for verb in (["eval", "generate"], ["safety", "run"]):
        argv = [*verb, f"output_dir={tmp_path / 'out'}", f"models=[s=openai:m@{server.url}]"]
        line = expect_user_error(argv, ["HTTP", str(status)], tmp_path, capsys)
        assert KEY not in line and KEY[:12] not in line and len(line) < 1200


def test_an_answer_that_echoes_the_key_is_stored_without_it(serve, key):
    """A server (or proxy) that puts the request's headers into a 200 answer: the key must not reach
    the answers, the request cache or the dataset made from them."""

    def respond(h, stop):
        content = f"apple; you sent {h.headers.get('Authorization')}"
        reply(h, 200, json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode())

    server = serve(respond)
    llm = OpenAIChatLLM("m", server.url, api_key_env=key, max_retries=1, backoff=0.01)
    [answers] = llm.chat([CONV], Sampling())
    assert answers[0].startswith("apple") and KEY not in answers[0] and "Bearer ***" in answers[0]
