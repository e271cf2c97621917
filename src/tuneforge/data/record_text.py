"""The text of a record that filters compare, normalised the same way everywhere."""

from __future__ import annotations

import re

from tuneforge.errors import ConfigError
from tuneforge.records import EvalItem, Example, PreferencePair

PARTS = ("instruction", "response", "all")
_WORD = re.compile(r"\w+", re.UNICODE)
STOP_WORDS = set(  # common English function words
    "a an the and or but if of to in on at by for with about as is are was were be been being it its "
    "this that these those i you he she we they me him her us them my your our their not no yes so "
    "do does did have has had can could will would should may might must just very too".split()
)


def record_text(record, part: str = "all") -> str:
    """`instruction` (user turns), `response` (assistant turns / chosen / references) or `all`."""
    if part not in PARTS:
        raise ConfigError(f"unknown text part '{part}'. Use one of {', '.join(PARTS)}")
    if isinstance(record, Example):
        user = [m.content for m in record.messages if m.role in ("user", "system")]
        answer = [m.text for m in record.messages if m.role == "assistant"]
    elif isinstance(record, EvalItem):
        user, answer = [m.content for m in record.messages if m.role in ("user", "system")], list(record.references)
    elif isinstance(record, PreferencePair):
        user, answer = [m.content for m in record.prompt], [record.chosen, record.rejected]
    else:
        raise ConfigError(f"cannot take text from a {type(record).__name__}")
    chosen = {"instruction": user, "response": answer, "all": user + answer}[part]
    return "\n".join(chosen)


def record_parts(record) -> list[str]:
    """Each text of a record on its own: every message, reference, chosen and rejected answer."""
    if isinstance(record, Example):
        return [m.content for m in record.messages]
    if isinstance(record, EvalItem):
        return [m.content for m in record.messages] + list(record.references)
    if isinstance(record, PreferencePair):
        return [m.content for m in record.prompt] + [record.chosen, record.rejected]
    raise ConfigError(f"cannot take text from a {type(record).__name__}")


def instruction_parts(record) -> list[str]:
    """The user (and system) messages of a record: what a prompt is."""
    messages = record.prompt if isinstance(record, PreferencePair) else getattr(record, "messages", [])
    return [m.content for m in messages if m.role in ("user", "system")]


def words(text: str) -> list[str]:
    """Lower-cased word tokens (punctuation and spacing ignored)."""
    return _WORD.findall(text.lower())


def shingles(text: str, n: int) -> set[str]:
    """Word n-grams; a text shorter than n words is one shingle."""
    w = words(text)
    if len(w) <= n:
        return {" ".join(w)} if w else set()
    return {" ".join(w[i : i + n]) for i in range(len(w) - n + 1)}
