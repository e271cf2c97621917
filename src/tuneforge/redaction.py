"""Keep secrets out of messages: error text that quotes a server's reply can carry the request's
own `Authorization` header back (servers and proxies that echo requests do), and a message is
printed, logged and pasted into issues.

`register_secret(key)` when a client learns a key; `redact(text)` on every message built from
text a server or a URL supplied. Registered secrets are replaced wherever they occur; the common
credential shapes (`Authorization: Bearer …`, `api_key=…`, `"api_key": "…"`) are masked even when
the secret was never registered (a proxy's own key, a key in a URL).

A low-layer module: standard library only, so any layer may use it.
"""

from __future__ import annotations

import re
import threading

MIN_SECRET_LENGTH = 8  # shorter strings are too likely to be ordinary words; replacing them mangles text
MASK = "***"

_secrets: set[str] = set()
_lock = threading.Lock()  # clients register from worker threads while others redact

# A credential-carrying key (header or parameter), its separator with any quotes, an optional
# scheme word, then the value: the value alone is masked, so the message still says what was there.
_KEYED = re.compile(
    r"(?i)\b(authorization|api[_-]?key|access[_-]?token)"
    r"([\"']?\s*[:=]\s*[\"']?)"
    r"((?:bearer|basic|token)\s+)?"
    r"[^\s\"',;&{}\[\]]+"
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+")  # a bearer token quoted without its header


def register_secret(value: str | None) -> None:
    """Remember `value` so that `redact` masks it; empty or short values are ignored."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """`text` with every registered secret and every credential-looking value replaced by `***`."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)  # longest first: a secret may contain another
    for secret in secrets:
        text = text.replace(secret, MASK)
    text = _KEYED.sub(lambda m: f"{m[1]}{m[2]}{m[3] or ''}{MASK}", text)
    return _BEARER.sub(lambda m: f"{m[1]}{MASK}", text)
