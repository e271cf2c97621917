"""ROUGE-L F1 through rouge-score, Porter-stemmed, max over references, scaled ×100 (SuperNI).

rouge-score's default tokeniser keeps only [a-z0-9] — text in other scripts becomes nothing and
scores 0 (a known trap). `rouge_tokenizer=unicode` splits on Unicode word characters instead and
stems only ASCII words longer than three letters (rouge-score's stemming rule).
"""

from __future__ import annotations

import re
from importlib.metadata import version

from rouge_score import rouge_scorer

from tuneforge.errors import ConfigError

TOKENIZERS = ("default", "unicode")


class UnicodeTokenizer:
    """A rouge-score tokenizer over Unicode word characters."""

    def __init__(self, stem: bool = True):
        from nltk.stem import porter

        self.stemmer = porter.PorterStemmer() if stem else None

    def tokenize(self, text: str) -> list[str]:
        tokens = re.findall(r"\w+", text.lower(), re.UNICODE)
        if self.stemmer:
            tokens = [self.stemmer.stem(t) if t.isascii() and len(t) > 3 else t for t in tokens]
        return tokens


def rouge_l(predictions: list[str], references: list[list[str]], rouge_tokenizer: str = "default", **_) -> dict:
    if rouge_tokenizer not in TOKENIZERS:
        raise ConfigError(f"rouge_tokenizer '{rouge_tokenizer}' unknown; use one of {', '.join(TOKENIZERS)}")
    tok = UnicodeTokenizer() if rouge_tokenizer == "unicode" else None
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True, tokenizer=tok)
    per_item = [
        100 * max(scorer.score(ref, pred)["rougeL"].fmeasure for ref in refs)
        for pred, refs in zip(predictions, references)
    ]
    name = "rouge-score-default(ascii)" if tok is None else "unicode-words"
    return {
        "score": sum(per_item) / len(per_item),
        "per_item": per_item,
        "signature": f"rougeL|f1|stem:porter|tok:{name}|refs:max|x100|rouge-score:{version('rouge-score')}",
    }
