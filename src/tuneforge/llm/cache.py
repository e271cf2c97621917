"""A persistent request cache: SQLite, keyed by model, conversation and sampling settings.

Every completion a client returns is committed before the call returns, so a run killed at any
point loses at most the batch in flight; rerunning it reads the rest from here and repeats no call.
SQLite is used (not a JSONL file) because several processes or threads may write at once and a
key lookup must stay fast at hundreds of thousands of rows.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path

from tqdm.auto import tqdm

from tuneforge.llm.client import LLM, Conversation, Sampling


def request_key(model: str, conversation: Conversation, sampling: Sampling) -> str:
    blob = json.dumps(
        {"model": model, "messages": conversation, "sampling": sampling.key()}, sort_keys=True, ensure_ascii=False
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class RequestCache:
    """The SQLite file is created with the first stored answer, not before: a command that fails
    before any answer (a refused request, a bad prompt) leaves no cache file behind."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if self.path.exists():
            self._open()

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, timeout=60)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, model TEXT, "
            "request TEXT, outputs TEXT, created TEXT DEFAULT CURRENT_TIMESTAMP)"
        )
        db.commit()
        self._db = db
        return db

    def get(self, key: str) -> list[str] | None:
        with self._lock:
            if self._db is None:
                return None
            row = self._db.execute("SELECT outputs FROM completions WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put_many(self, rows: list[tuple[str, str, dict, list[str]]]) -> None:
        """Store (key, model, request, outputs) rows in one transaction."""
        if not rows:
            return
        with self._lock:
            db = self._db or self._open()
            db.executemany(
                "INSERT OR REPLACE INTO completions (key, model, request, outputs) VALUES (?, ?, ?, ?)",
                [(k, m, json.dumps(r, ensure_ascii=False), json.dumps(o, ensure_ascii=False)) for k, m, r, o in rows],
            )
            db.commit()

    def __len__(self) -> int:
        with self._lock:
            if self._db is None:
                return 0
            return self._db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


class CachedLLM:
    """An LLM whose every answer is read from / written to a RequestCache. `hits` and `calls`
    count conversations served from the cache and sent to the model."""

    def __init__(self, llm: LLM, cache: RequestCache | str | Path, batch_size: int = 32, desc: str = "generate"):
        self.llm, self.name, self.desc = llm, llm.name, desc
        self.cache_id = getattr(llm, "cache_id", llm.name)  # what the answers depend on (a local model's dtype too)
        self.cache = cache if isinstance(cache, RequestCache) else RequestCache(cache)
        self.batch_size = batch_size
        self.hits = self.calls = 0

    def _cached(self, keys: list[str], conversations: list[Conversation], request: dict, compute) -> list:
        """Outputs for `keys`: from the cache, else `compute(conversations)` batch by batch, each batch
        committed before the next (a crash loses one batch at most)."""
        out: dict[str, list] = {}
        for k in dict.fromkeys(keys):
            got = self.cache.get(k)
            if got is not None:
                out[k] = got
        todo = [(k, c) for k, c in dict(zip(keys, conversations)).items() if k not in out]
        self.hits += sum(1 for k in keys if k in out)
        bar = tqdm(
            total=len(out) + len(todo),
            initial=len(out),
            desc=f"{self.desc} ({self.name})",
            unit="prompt",
            disable=len(todo) <= self.batch_size,
        )
        for s in range(0, len(todo), self.batch_size):
            chunk = todo[s : s + self.batch_size]
            results = compute([c for _, c in chunk])
            self.calls += len(chunk)
            self.cache.put_many([(k, self.name, {"messages": c, **request}, r) for (k, c), r in zip(chunk, results)])
            out.update({k: r for (k, _), r in zip(chunk, results)})
            bar.update(len(chunk))
        bar.close()
        return [out[k] for k in keys]

    def chat(self, conversations: list[Conversation], sampling: Sampling) -> list[list[str]]:
        keys = [request_key(self.cache_id, c, sampling) for c in conversations]
        return self._cached(
            keys, conversations, {"sampling": sampling.key()}, lambda convs: self.llm.chat(convs, sampling)
        )

    def choice_probs(self, conversations: list[Conversation], prefix: str, choices: list[str]) -> list[list[float]]:
        """The wrapped client's `choice_probs`, cached like completions (clients without next-token
        probabilities, e.g. HTTP servers, raise a ConfigError)."""
        from tuneforge.errors import ConfigError

        if not hasattr(self.llm, "choice_probs"):
            raise ConfigError(
                f"{self.name}: this client gives no next-token probabilities; use a local model "
                "or text verdicts (e.g. reflect's verdict: text)"
            )
        request = {"choice_probs": {"prefix": prefix, "choices": choices}}
        keys = [
            hashlib.sha256(
                json.dumps(
                    {"model": self.cache_id, "messages": c, **request}, sort_keys=True, ensure_ascii=False
                ).encode()
            ).hexdigest()
            for c in conversations
        ]
        return self._cached(keys, conversations, request, lambda convs: self.llm.choice_probs(convs, prefix, choices))
