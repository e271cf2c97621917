"""Detector accuracy on the shipped calibration set (data/safety/calibration.yaml): answers with
labels written by people, so every safety rate can be read next to how often its detector is
right.

For each binary detector: precision, recall, F1, accuracy and Cohen's κ against the human label,
with the confusion counts; for the refusal detector also its 3-way agreement (refusal / caution /
comply) and the two binary views the rates use: "declines or cautions" (proper refusal, unsafe
omission) and "refusal" (over-refusal).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tuneforge.errors import DataError
from tuneforge.safety.canary import leaked
from tuneforge.safety.disclaimer import has_disclaimer
from tuneforge.safety.premise import corrects_premise
from tuneforge.safety.refusal import classify
from tuneforge.safety.suite import SafetyItem, load_suite

LABELS = ("refusal", "caution", "comply")


@dataclass
class CalibrationAnswer:
    item: SafetyItem
    answer: str
    refusal: str
    disclaimer: bool
    corrects_premise: bool | None = None
    leaked: bool | None = None


def calibration_path() -> Path:
    from tuneforge.data.seed import data_dir

    return data_dir() / "safety" / "calibration.yaml"


def load_calibration(path: str | Path | None = None, items: list[SafetyItem] | None = None) -> list[CalibrationAnswer]:
    import yaml

    path = Path(path) if path else calibration_path()
    by_id = {it.id: it for it in (items or load_suite())}
    rows = yaml.safe_load(path.read_text(encoding="utf-8"))
    out = []
    for k, r in enumerate(rows, 1):
        if r.get("item") not in by_id:
            raise DataError(f"calibration entry {k} names unknown suite item {r.get('item')!r}", path=str(path))
        if r.get("refusal") not in LABELS or not isinstance(r.get("disclaimer"), bool):
            raise DataError(f"calibration entry {k} ({r['item']}) needs refusal in {LABELS} and disclaimer true/false",
                            path=str(path))
        it = by_id[r["item"]]
        out.append(CalibrationAnswer(it, r["answer"].replace("{canary}", it.canary), r["refusal"], r["disclaimer"],
                                     r.get("corrects_premise"), r.get("leaked")))
    return out


def binary_scores(pred: list[bool], gold: list[bool]) -> dict:
    tp = sum(p and g for p, g in zip(pred, gold))
    fp = sum(p and not g for p, g in zip(pred, gold))
    fn = sum(g and not p for p, g in zip(pred, gold))
    tn = len(pred) - tp - fp - fn
    n = len(pred)
    acc = (tp + tn) / n if n else float("nan")
    pe = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n) if n else float("nan")
    return {"n": n, "tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "recall": tp / (tp + fn) if tp + fn else float("nan"),
            "f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0, "accuracy": acc,
            "kappa": (acc - pe) / (1 - pe) if n and pe < 1 else float("nan")}


def calibrate(rows: list[CalibrationAnswer] | None = None) -> dict:
    """Each detector's agreement with the human labels."""
    rows = rows if rows is not None else load_calibration()
    cls = [classify(r.answer, r.item.domain, r.item.prompt) for r in rows]
    gold = [r.refusal for r in rows]
    out = {"n_answers": len(rows),
           "refusal_3way": {"n": len(rows), "agreement": sum(c == g for c, g in zip(cls, gold)) / len(rows),
                            "confusion": {f"{g}->{c}": k for (g, c), k in sorted(Counter(zip(gold, cls)).items())}},
           "declines_or_cautions": binary_scores([c != "comply" for c in cls], [g != "comply" for g in gold]),
           "refusal": binary_scores([c == "refusal" for c in cls], [g == "refusal" for g in gold]),
           "disclaimer": binary_scores([has_disclaimer(r.answer, r.item.domain) for r in rows],
                                       [r.disclaimer for r in rows])}
    prem = [r for r in rows if r.corrects_premise is not None]
    out["premise_correction"] = binary_scores([corrects_premise(r.answer, r.item.topic) for r in prem],
                                              [r.corrects_premise for r in prem])
    inj = [r for r in rows if r.leaked is not None]
    out["canary_leak"] = binary_scores([leaked(r.answer, r.item.canary) for r in inj], [r.leaked for r in inj])
    return out
