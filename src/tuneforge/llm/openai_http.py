"""An LLM client for any OpenAI-compatible chat-completions server: vLLM, llama.cpp's server,
Ollama, TGI, hosted APIs.

- The API key is read from the environment variable named by `api_key_env` at each request; it is
  never stored on the object's public state, in the cache or in any file.
- `max_concurrency` requests run at once (threads; the work is waiting on the network).
- 408/409/429 and 5xx answers, timeouts and dropped connections are retried with exponential
  backoff and jitter (honouring Retry-After); other 4xx answers fail at once with the server's
  message. A server that returns fewer than `n` choices is asked again until there are `n`.
- Every wait is bounded, so a bad server ends in an error, never a hang: at most `MAX_RETRIES`
  retries, each pause at most `MAX_WAIT_S` (whatever Retry-After asks), and one request, retries
  included, at most `deadline` seconds in total (requests' `timeout` bounds each socket read
  only: a server that trickles a byte every few seconds never trips it). Ctrl-C, or the first
  request that fails for good, drops the other requests instead of waiting for them.
- Error messages quote at most `BODY_CHARS` of a server's reply, passed through `redact` (a server
  or proxy that echoes the request would otherwise print the API key).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

from tuneforge.errors import ConfigError, TuneforgeError
from tuneforge.llm.client import Conversation, Sampling, cut_at_stop
from tuneforge.redaction import redact, register_secret

RETRY_STATUS = {408, 409, 429}
MAX_RETRIES = 10  # with waits capped below, a request gives up within minutes, not hours
MAX_WAIT_S = 60.0  # the longest pause between attempts, whatever a server's Retry-After asks
REQUEST_DEADLINE_S = 600.0  # one request, retries and pauses included (a busy server queues requests)
MAX_RESPONSE_BYTES = 64 * 2**20  # an answer is text; a reply larger than this is a broken server
BODY_CHARS = 300  # how much of a server's reply an error message quotes


class LLMRequestError(TuneforgeError):
    """A request that failed for good (after retries, or a 4xx that retrying cannot fix)."""


class _Dropped(Exception):
    """A connection that failed, timed out or broke off mid-reply: another attempt may succeed."""


class OpenAIChatLLM:
    def __init__(
        self,
        model: str,
        base_url: str = "https://api.openai.com/v1",
        api_key_env: str = "OPENAI_API_KEY",
        max_concurrency: int = 8,
        max_retries: int = 5,
        timeout: float = 120.0,
        backoff: float = 1.0,
        deadline: float = REQUEST_DEADLINE_S,
    ):
        import requests

        self.name, self.url = model, base_url.rstrip("/") + "/chat/completions"
        for key, value, ok, fix in (
            ("max_concurrency", max_concurrency, max_concurrency >= 1, "Use 1 or more"),
            ("max_retries", max_retries, 0 <= max_retries <= MAX_RETRIES, f"Use 0 to {MAX_RETRIES}"),
            ("timeout", timeout, timeout > 0, "Use seconds > 0"),
            ("deadline", deadline, deadline > 0, "Use seconds > 0"),
        ):
            if not ok:  # written as what is allowed, so NaN fails too
                raise ConfigError(f"{key} out of range: {value}. The OpenAI-compatible client for {self.url}. {fix}")
        self.api_key_env, self.max_concurrency = api_key_env, max_concurrency
        self.max_retries, self.timeout, self.backoff, self.deadline = max_retries, timeout, backoff, deadline
        if api_key_env:  # the key itself is not kept here; redaction needs to know it to mask it
            register_secret(os.environ.get(api_key_env, ""))
        self.session = requests.Session()
        self.requests_sent = 0

    def chat(self, conversations: list[Conversation], sampling: Sampling) -> list[list[str]]:
        cancel = threading.Event()  # tells the requests still running to stop at their next check
        pool = ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="tuneforge-llm")
        try:
            futures = [pool.submit(self._complete, c, sampling, cancel) for c in conversations]
            wait(futures, return_when=FIRST_EXCEPTION)  # the first failure ends the call, whatever its place
            for f in futures:
                if f.done() and (exc := f.exception()) is not None:
                    raise exc
            return [f.result() for f in futures]
        finally:
            # Not `with pool`: its exit waits for every queued and running request, so Ctrl-C or
            # the first failure would sit through all the others' retries.
            cancel.set()
            pool.shutdown(wait=False, cancel_futures=True)

    def _complete(self, conversation: Conversation, sampling: Sampling, cancel: threading.Event) -> list[str]:
        texts: list[str] = []
        attempt_seed = sampling.seed
        while len(texts) < sampling.n:
            body = {
                "model": self.name,
                "messages": conversation,
                "max_tokens": sampling.max_new_tokens,
                "temperature": sampling.temperature,
                "top_p": sampling.top_p,
                "n": sampling.n - len(texts),
                "seed": attempt_seed,
            }
            if sampling.repetition_penalty != 1.0:  # vLLM / llama.cpp / TGI extension, not in OpenAI's API
                body["repetition_penalty"] = sampling.repetition_penalty
            if sampling.stop:
                body["stop"] = sampling.stop[:4]  # the OpenAI API takes at most 4; the rest are cut below
            if sampling.tools:
                body["tools"] = sampling.tools
                if sampling.tool_choice in ("none", "auto", "required"):
                    body["tool_choice"] = sampling.tool_choice
                elif sampling.tool_choice:  # one named function, as the API spells it
                    body["tool_choice"] = {"type": "function", "function": {"name": sampling.tool_choice}}
            choices = self._post(body, cancel)
            if not choices:
                raise self._error(
                    f"no choices in the reply. {self.url}, model {self.name}. Check that the server serves this model"
                )
            # redact: a server that echoes the request would put the key into answers, caches and datasets
            texts += [redact(cut_at_stop(c, sampling.stop)).strip() for c in choices]
            attempt_seed += 1
        return texts[: sampling.n]

    def _post(self, body: dict, cancel: threading.Event) -> list[str]:
        """The answer texts for one request, retrying what another attempt may fix, within
        `self.deadline` seconds in total."""
        key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        register_secret(key)  # the environment may have changed since __init__
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        until = time.monotonic() + self.deadline
        last, asked = "", 0.0
        for attempt in range(self.max_retries + 1):
            pause = min(self.backoff * 2**attempt * (0.5 + random.random() / 2), MAX_WAIT_S)
            try:
                reply = self._send(body, headers, until, cancel)
            except _Dropped as exc:
                last = str(exc)
            else:
                if reply is None:
                    raise self._late(attempt + 1, last)
                status, retry_after, text = reply
                if status == 200:
                    return self._choices(text)
                last = f"HTTP {status}: {_quote(text)}"
                if status not in RETRY_STATUS and status < 500:
                    hint = ""
                    if status in (401, 403):
                        hint = f" Check that {self.api_key_env or 'the api_key_env variable'} holds a valid key"
                    raise self._error(f"the server refused the request: {last}. {self.url}, model {self.name}.{hint}")
                asked = _seconds(retry_after)
                pause = max(pause, min(asked, MAX_WAIT_S))
            if attempt < self.max_retries:
                if time.monotonic() + pause > until:  # the pause alone would pass the deadline
                    raise self._late(attempt + 1, last)
                self._pause(pause, cancel)
        capped = (
            f" The server asked to wait {asked:g} s (Retry-After); tuneforge waits at most {MAX_WAIT_S:g} s."
            if asked > MAX_WAIT_S
            else ""
        )
        raise self._error(
            f"{self.url}: model {self.name} failed after {self.max_retries + 1} attempts; last: {last}.{capped} "
            "Check the server (its log, its rate limits), then run again"
        )

    def _late(self, attempts: int, last: str) -> LLMRequestError:
        return self._error(
            f"no answer within the request deadline of {self.deadline:g} s ({attempts} attempts; last: "
            f"{last or 'no complete reply'}). {self.url}, model {self.name}. The server is overloaded, stalled "
            "or trickling its reply: check it, lower llm.max_concurrency, or allow more time (llm.request_deadline)"
        )

    def _send(self, body: dict, headers: dict, until: float, cancel: threading.Event) -> tuple[int, str, str] | None:
        """One POST: (status, Retry-After, reply text), or None when `time.monotonic()` passes `until` first.

        The exchange runs in a daemon thread that this one stops waiting for at the deadline or on
        `cancel`: requests' timeout bounds each socket read, not the whole exchange, and nothing else
        stops a server that sends its headers or its body a byte at a time. An abandoned exchange
        ends at its next read (it checks the deadline between reads) or with the process.
        """
        box: dict = {}
        done = threading.Event()

        def run() -> None:
            try:
                box["reply"] = self._exchange(body, headers, until)
            except BaseException as exc:  # handed to the waiting thread, which raises it
                box["error"] = exc
            finally:
                done.set()

        self.requests_sent += 1
        threading.Thread(target=run, name="tuneforge-http", daemon=True).start()
        while not done.wait(min(0.1, max(until - time.monotonic(), 0.0))):  # 0.1 s: how soon Ctrl-C is seen
            if cancel.is_set():
                raise self._cancelled()
            if time.monotonic() >= until:
                return None
        if "error" in box:
            raise box["error"]
        return box["reply"]

    def _exchange(self, body: dict, headers: dict, until: float) -> tuple[int, str, str]:
        """POST and read the whole reply, a chunk at a time so that the deadline is checked as bytes
        arrive; a broken connection or protocol is a `_Dropped`."""
        import http.client

        import requests
        import urllib3

        read_timeout = max(min(self.timeout, until - time.monotonic()), 0.001)
        try:
            with self.session.post(self.url, json=body, headers=headers, timeout=read_timeout, stream=True) as r:
                data = bytearray()
                while chunk := r.raw.read1(2**16, decode_content=True):  # read1: whatever has arrived
                    data += chunk
                    if time.monotonic() > until:
                        raise _Dropped(f"the reply was still arriving at the deadline ({len(data)} bytes)")
                    if len(data) > MAX_RESPONSE_BYTES:
                        raise self._error(
                            f"reply too large: over {MAX_RESPONSE_BYTES} bytes. {self.url}, model {self.name}. "
                            "Check that the URL is an OpenAI-compatible chat-completions server"
                        )
                return r.status_code, r.headers.get("Retry-After", ""), data.decode("utf-8", errors="replace")
        except (requests.RequestException, urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
            raise _Dropped(f"{type(exc).__name__}: {exc}") from exc

    def _choices(self, text: str) -> list[str]:
        """The answer texts of a 200 reply; anything else is an error quoting the reply."""
        try:
            texts = [_answer_text(c.get("message") or {}) for c in json.loads(text)["choices"]]
        except (ValueError, TypeError, KeyError, AttributeError):
            texts = None
        if texts is None or not all(isinstance(t, str) for t in texts):
            raise self._error(
                f"not a chat completion: {_quote(text)!r}. {self.url}, model {self.name}. "
                "Check that base_url is an OpenAI-compatible server's /v1 URL"
            )
        return texts

    def _pause(self, seconds: float, cancel: threading.Event) -> None:
        """Wait between attempts; Ctrl-C or another request's failure ends the wait at once."""
        if cancel.wait(seconds):
            raise self._cancelled()

    def _cancelled(self) -> LLMRequestError:  # seen by no one when Ctrl-C or another failure ended chat()
        return self._error(f"request cancelled: {self.url}, model {self.name}. Ctrl-C, or another request failed")

    def _error(self, message: str) -> LLMRequestError:
        # Every message passes through redact: parts of it came from the server or the environment.
        return LLMRequestError(redact(message))


def _answer_text(message: dict) -> str:
    """A reply message as one text: its words, and its reasoning trace and tool calls (vLLM, SGLang
    and llama.cpp return them as `reasoning_content` and `tool_calls`) written as the <think> and
    <tool_call> blocks `tool_text.parse_turn` reads — the form a local model's answer has. A call
    whose arguments are not a JSON object is written as it came, so parsing counts it malformed."""
    content = message.get("content") or ""
    calls, reasoning = message.get("tool_calls") or [], message.get("reasoning_content") or ""
    if not calls and not reasoning:
        return content
    from tuneforge.errors import DataError
    from tuneforge.tool_text import CALL_CLOSE, CALL_OPEN, render_turn
    from tuneforge.tool_use import parse_tool_calls

    text = render_turn(content, reasoning)
    for c in calls:
        try:
            text = render_turn(text, "", parse_tool_calls([c], "tool_calls"))
        except DataError:
            fn = c.get("function", {}) if isinstance(c, dict) else {}
            raw = json.dumps({"name": fn.get("name"), "arguments": fn.get("arguments")}, ensure_ascii=False)
            text += f"{chr(10) if text else ''}{CALL_OPEN}\n{raw}\n{CALL_CLOSE}"
    return text


def _quote(text: str) -> str:
    """A server's reply as an error message may quote it: secrets masked (before cutting, so no
    half-secret escapes the mask), on one line, at most BODY_CHARS characters."""
    text = " ".join(redact(text).split())
    return text if len(text) <= BODY_CHARS else text[:BODY_CHARS] + f"… ({len(text)} characters)"


def _seconds(retry_after: str) -> float:
    """Retry-After as seconds (0 when absent or an HTTP date: the backoff then decides)."""
    try:
        value = float(retry_after)
    except ValueError:
        return 0.0
    return value if value >= 0 else 0.0
