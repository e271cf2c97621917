"""An LLM client for any OpenAI-compatible chat-completions server: vLLM, llama.cpp's server,
Ollama, TGI, hosted APIs.

- The API key is read from the environment variable named by `api_key_env` at each request; it is
  never stored on the object's public state, in the cache or in any file.
- `max_concurrency` requests run at once (threads; the work is waiting on the network).
- 408/409/429 and 5xx answers, timeouts and dropped connections are retried with exponential
  backoff and jitter (honouring Retry-After); other 4xx answers fail at once with the server's
  message. A server that returns fewer than `n` choices is asked again until there are `n`.
"""

from __future__ import annotations

import os
import random
import time
from concurrent.futures import ThreadPoolExecutor

from tuneforge.errors import TuneforgeError
from tuneforge.llm.client import Conversation, Sampling, cut_at_stop

RETRY_STATUS = {408, 409, 429}


class LLMRequestError(TuneforgeError):
    """A request that failed for good (after retries, or a 4xx that retrying cannot fix)."""


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
    ):
        import requests

        self.name, self.url = model, base_url.rstrip("/") + "/chat/completions"
        self.api_key_env, self.max_concurrency = api_key_env, max_concurrency
        self.max_retries, self.timeout, self.backoff = max_retries, timeout, backoff
        self.session = requests.Session()
        self.requests_sent = 0

    def chat(self, conversations: list[Conversation], sampling: Sampling) -> list[list[str]]:
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            return list(pool.map(lambda c: self._complete(c, sampling), conversations))

    def _complete(self, conversation: Conversation, sampling: Sampling) -> list[str]:
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
            choices = self._post(body)["choices"]
            if not choices:
                raise LLMRequestError(f"{self.url} returned no choices for model {self.name}")
            texts += [
                cut_at_stop((c.get("message") or {}).get("content") or "", sampling.stop).strip() for c in choices
            ]
            attempt_seed += 1
        return texts[: sampling.n]

    def _post(self, body: dict) -> dict:
        import requests

        key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        last = ""
        for attempt in range(self.max_retries + 1):
            wait = self.backoff * 2**attempt * (0.5 + random.random() / 2)
            try:
                self.requests_sent += 1
                r = self.session.post(self.url, json=body, headers=headers, timeout=self.timeout)
            except (requests.Timeout, requests.ConnectionError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if r.status_code == 200:
                    return r.json()
                last = f"HTTP {r.status_code}: {r.text[:300]}"
                if r.status_code not in RETRY_STATUS and r.status_code < 500:
                    hint = f" (is {self.api_key_env} set?)" if r.status_code in (401, 403) else ""
                    raise LLMRequestError(f"{self.url} refused the request for model {self.name}: {last}{hint}")
                retry_after = r.headers.get("Retry-After", "")
                if retry_after.replace(".", "", 1).isdigit():
                    wait = max(wait, float(retry_after))
            if attempt < self.max_retries:
                time.sleep(wait)
        raise LLMRequestError(
            f"{self.url}: model {self.name} failed after {self.max_retries + 1} attempts; last: {last}"
        )
