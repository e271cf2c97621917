"""PREPROCESS, RETRIEVE and AGGREGATE of Algorithm 1: documents → passages → the passages relevant
to an instruction → one context string.

Passages are runs of whole sentences of at most `max_words` words, never crossing a paragraph or
heading boundary (a heading is kept as the passage's title, so a retrieved passage still says what it
is about). Retrieval is BM25 (`rank-bm25`, Okapi BM25 over lower-cased word tokens) or embedding
search with a sentence encoder (cosine of unit vectors). AGGREGATE keeps the retrieved passages in
document order — so the context reads like the source — and joins them, separated by blank lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tuneforge.errors import ConfigError, DataError, read_text

RETRIEVERS = ("bm25", "embedding")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_WORD = re.compile(r"\w+")


@dataclass
class Passage:
    doc: str  # document name (file name)
    index: int  # position in the document
    title: str  # nearest heading above the passage ('' when none)
    text: str

    def render(self) -> str:
        return f"[{self.doc} — {self.title}] {self.text}" if self.title else f"[{self.doc}] {self.text}"


def preprocess(name: str, text: str, max_words: int = 80) -> list[Passage]:
    """Split one document into passages of whole sentences, ≤ `max_words` words where a sentence allows."""
    if max_words < 1:
        raise ConfigError(f"passage_words must be ≥ 1 (got {max_words})")
    passages: list = []
    title = ""
    for block in re.split(r"\n\s*\n", text):
        block = block.strip()
        if not block:
            continue
        if block.startswith("#"):
            head, _, rest = block.partition("\n")
            title, block = head.lstrip("#").strip(), rest.strip()
            if not block:
                continue
        current: list[str] = []
        for sentence in _SENTENCE.split(" ".join(block.split())):
            if current and len(" ".join(current + [sentence]).split()) > max_words:
                passages.append(Passage(name, len(passages), title, " ".join(current)))
                current = []
            current.append(sentence)
        if current:
            passages.append(Passage(name, len(passages), title, " ".join(current)))
    return passages


def load_documents(folder: str | Path, names: list[str] | None = None, max_words: int = 80) -> list[Passage]:
    """Passages of the named documents in `folder` (all *.md / *.txt files when `names` is empty)."""
    folder = Path(folder)
    files = [folder / n for n in names] if names else sorted(p for p in folder.iterdir() if p.suffix in (".md", ".txt"))
    outside = [str(n) for n, f in zip(names or [], files) if folder.resolve() not in f.resolve().parents]
    if outside:  # `../../secret.txt` would put a file from elsewhere into prompts and outputs
        raise DataError(
            f"documents outside the documents folder {folder}: {', '.join(outside)}. Name files inside it "
            "(no '..', absolute paths or links out of it), or set documents_dir"
        )
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise DataError(f"documents not found: {', '.join(missing)} (check the item's `documents` and `documents_dir`)")
    if not files:
        raise DataError(f"no .md or .txt documents in {folder}")
    return [p for f in files for p in preprocess(f.name, read_text(f, "document"), max_words)]


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def retrieve(passages: list[Passage], query: str, k: int = 3, method: str = "bm25", encoder=None) -> list[Passage]:
    """The `k` passages most relevant to `query` (ties keep document order)."""
    if method not in RETRIEVERS:
        raise ConfigError(f"retriever '{method}' unknown; use one of {', '.join(RETRIEVERS)}")
    if not passages:
        return []
    if method == "bm25":
        from rank_bm25 import BM25Okapi

        scores = np.asarray(BM25Okapi([_tokens(p.render()) for p in passages]).get_scores(_tokens(query)))
    else:
        if encoder is None:
            raise ConfigError("retriever 'embedding' needs a sentence encoder")
        vecs = np.asarray(encoder([p.render() for p in passages] + [query]), dtype=float)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True) + 1e-12
        scores = vecs[:-1] @ vecs[-1]
    order = sorted(range(len(passages)), key=lambda i: (-scores[i], i))[:k]
    return [passages[i] for i in order]


def aggregate(passages: list[Passage]) -> str:
    """One context: the passages in document order, one paragraph each."""
    ordered = sorted(passages, key=lambda p: (p.doc, p.index))
    return "\n\n".join(p.render() for p in ordered)
