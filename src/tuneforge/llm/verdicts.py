"""Strict parsing of judge verdicts, and escaping of model text placed inside a judge prompt.

Shared by the data-quality filter and the evaluation judge. Parsing never guesses: a reply that
does not hold exactly the asked-for form is a parse failure, which callers count and show.
"""

from __future__ import annotations

import re

_RATING = re.compile(r"rating\s*[:=]\s*\**\s*(\d+(?:\.\d+)?)\s*(?:/\s*10)?", re.I)
_BARE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*10)?\s*\.?\s*$")
_CHOICE = re.compile(r"\[\[([ABC])\]\]")


def escape(text: str) -> str:
    """Model text made inert inside a tagged judge prompt: it cannot close the tag it sits in."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def parse_rating(text: str, low: float = 1, high: float = 10) -> float | None:
    """The first `Rating: N` (or a reply that is only a number) with low ≤ N ≤ high, else None."""
    m = _RATING.search(text) or _BARE.match(text)
    if not m:
        return None
    value = float(m.group(1))
    return value if low <= value <= high else None


def parse_choice(text: str) -> str | None:
    """'A', 'B' or 'C' (tie) from a pairwise verdict written as [[A]] / [[B]] / [[C]]; None when
    the reply holds none, or more than one different verdict."""
    found = set(_CHOICE.findall(text))
    return found.pop() if len(found) == 1 else None
