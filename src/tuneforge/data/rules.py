"""Rule rewards: Python functions that score an answer against its record, named by dotted path
(`tuneforge.data.rules.exact_match`, or any `package.module.function` of the user's) wherever a
rule is accepted — preference building (`preferences.scorer=rule`) and online RL rewards.

A rule is `rule(answer: str, record: Example) -> float`; `record` is the prompt's source record,
whose last assistant turn (`record.response`) is the reference answer where there is one.
"""

from __future__ import annotations

import importlib
import inspect
import re
import string
from collections.abc import Callable

from tuneforge.errors import ConfigError
from tuneforge.records import Example

Rule = Callable[[str, Example], float]


def normalise(text: str) -> str:
    """Lower case, punctuation and articles dropped, whitespace collapsed (SQuAD-style answer
    normalisation, the usual exact-match convention)."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(w for w in text.split() if w not in ("a", "an", "the"))


def references(record: Example) -> list[str]:
    """The acceptable answers: `meta["references"]` when the record has several (SuperNI), else its
    last assistant turn."""
    refs = record.meta.get("references")
    return [str(r) for r in refs] if isinstance(refs, list) and refs else [record.response]


def exact_match(answer: str, record: Example) -> float:
    """1.0 when the normalised answer equals a normalised reference, else 0.0 (the same
    normalisation as the exact-match metric)."""
    return float(any(normalise(answer) == normalise(r) for r in references(record)))


def first_line_match(answer: str, record: Example) -> float:
    """1.0 when the answer's first non-empty line equals a reference (normalised): classification
    answers followed by an explanation still count."""
    first = next((line for line in answer.splitlines() if line.strip()), "")
    return float(any(normalise(first) == normalise(r) for r in references(record)))


def contains_reference(answer: str, record: Example) -> float:
    """1.0 when a normalised reference occurs in the normalised answer as whole words."""
    text = normalise(answer)
    return float(
        any(r and re.search(rf"(?<!\S){re.escape(r)}(?!\S)", text) for r in map(normalise, references(record)))
    )


def brevity(answer: str, record: Example) -> float:
    """−(words beyond the reference's length) / reference length: 0 for an answer no longer than
    the reference, more negative the more it rambles."""
    ref, n = max(1, len(record.response.split())), len(answer.split())
    return -max(0, n - ref) / ref


def load_rule(path: str) -> Rule:
    """The function a dotted path names, e.g. `tuneforge.data.rules.exact_match`."""
    module, _, name = path.rpartition(".")
    if not module:
        raise ConfigError(
            f"rule '{path}' is not a dotted path to a function; e.g. tuneforge.data.rules.exact_match "
            "(built in: exact_match, first_line_match, contains_reference, brevity)"
        )
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"rule '{path}' cannot be loaded: {exc}") from None
    if not callable(fn):
        raise ConfigError(f"rule '{path}' is not a function")
    try:  # a function of other arguments (os.system, say) would fail on the first answer
        inspect.signature(fn).bind("answer", None)
    except TypeError:
        raise ConfigError(
            f"rule '{path}' does not take (answer, record): a rule is rule(answer: str, record) -> float. "
            "Name a function of that shape, e.g. tuneforge.data.rules.exact_match"
        ) from None
    except ValueError:  # a builtin without a signature: it is checked when it is first called
        pass
    return fn
