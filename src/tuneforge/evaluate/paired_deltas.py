"""`tuneforge eval compare RUN_A[:MODEL] RUN_B[:MODEL]`: per-metric deltas (B − A) over the items
both runs answered, with paired bootstrap 95% CIs and two-sided p-values.

Per-item metrics use a sign-flip permutation test on the item differences; corpus BLEU is
recomputed from the stored generations and tested by approximate randomisation (each item's
n-gram statistics swapped between the systems with probability ½), as sacreBLEU's paired test
does. A run directory is anything `tuneforge demo`, `train` or `eval run` wrote (metrics.json,
scores/<model>.jsonl, generations/<model>.jsonl); MODEL picks one of its models (default: the last,
i.e. the tuned one).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tuneforge.data.io import read_records, records_of
from tuneforge.errors import DataError
from tuneforge.evaluate.metrics.bleu import _ref_streams, bleu_from_stats
from tuneforge.intervals import interval, paired_test, resample_indices
from tuneforge.records import Generation
from tuneforge.run_metrics import read_metrics


def resolve(spec: str | Path) -> tuple[Path, str]:
    """'RUN' or 'RUN:MODEL' → (run dir, model label)."""
    text = str(spec)
    run, _, label = text.rpartition(":") if ":" in text and not Path(text).exists() else (text, "", "")
    run_dir = Path(run)
    metrics = run_dir / "metrics.json"
    if not metrics.exists():
        raise DataError(
            "not a finished run directory (no metrics.json). Give a directory written by "
            "tuneforge demo / train / eval run, optionally with :MODEL",
            path=str(run_dir),
        )
    models = list(read_metrics(run_dir).models)
    if not models:
        raise DataError("this run scored no model (a bench-only folder?)", path=str(metrics))
    label = label or models[-1]
    if label not in models:
        raise DataError(f"no model '{label}' in this run; it has {', '.join(models)}", path=str(metrics))
    return run_dir, label


def _per_item(run_dir: Path, label: str) -> dict[str, dict]:
    path = run_dir / "scores" / f"{label}.jsonl"
    if not path.exists():
        raise DataError("per-item scores missing; rerun the scoring", path=str(path))
    return {r["id"]: r for r in map(json.loads, path.read_text().splitlines()) if r}


def _bleu_stats(run_dir: Path, label: str, ids: list[str]) -> np.ndarray | None:
    import sacrebleu

    path = run_dir / "generations" / f"{label}.jsonl"
    if not path.exists():
        return None
    gens = {g.id: g for g in records_of(read_records(path), Generation, path, "Run tuneforge eval generate again")}
    preds, refs = [gens[i].generation for i in ids], [gens[i].references for i in ids]
    return np.array(sacrebleu.BLEU()._extract_corpus_statistics(preds, _ref_streams(refs)), dtype=float)


def compare_bleu(sa: np.ndarray, sb: np.ndarray, n_boot: int = 1000, n_perm: int = 1000, seed: int = 0) -> dict:
    a, b = bleu_from_stats(sa.sum(0)), bleu_from_stats(sb.sum(0))
    idx = resample_indices(len(sa), n_boot, seed)
    ci = interval(np.array([bleu_from_stats(sb[i].sum(0)) - bleu_from_stats(sa[i].sum(0)) for i in idx]), 0.95)
    rng = np.random.default_rng(seed + 1)
    hits = 0
    for _ in range(n_perm):
        swap = rng.random(len(sa)) < 0.5
        pa = np.where(swap[:, None], sb, sa).sum(0)
        pb = np.where(swap[:, None], sa, sb).sum(0)
        hits += abs(bleu_from_stats(pb) - bleu_from_stats(pa)) >= abs(b - a) - 1e-9
    return {
        "a": a,
        "b": b,
        "delta": b - a,
        "ci": ci,
        "p_value": (hits + 1) / (n_perm + 1),
        "n": len(sa),
        "test": "approximate randomisation of corpus BLEU",
    }


def compare_runs(spec_a: str | Path, spec_b: str | Path, n_boot: int = 1000, seed: int = 0) -> dict:
    (run_a, label_a), (run_b, label_b) = resolve(spec_a), resolve(spec_b)
    items_a, items_b = _per_item(run_a, label_a), _per_item(run_b, label_b)
    ids = [i for i in items_a if i in items_b]
    if not ids:
        raise DataError(f"{run_a}:{label_a} and {run_b}:{label_b} share no item ids; compare runs on the same test set")
    numeric = lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))  # noqa: E731
    names = [
        k
        for k in items_a[ids[0]]
        if k not in ("id", "domain")
        and k in items_b[ids[0]]
        and all(numeric(items_a[i].get(k)) and numeric(items_b[i].get(k)) for i in ids)
    ]
    out: dict[str, Any] = {
        "a": f"{run_a}:{label_a}",
        "b": f"{run_b}:{label_b}",
        "n_common": len(ids),
        "only_a": len(items_a) - len(ids),
        "only_b": len(items_b) - len(ids),
        "metrics": {},
    }
    for m in names:
        if m == "bleu":
            sa, sb = _bleu_stats(run_a, label_a, ids), _bleu_stats(run_b, label_b, ids)
            if sa is not None and sb is not None:
                out["metrics"]["bleu"] = compare_bleu(sa, sb, n_boot, seed=seed)
                continue
        a = [items_a[i][m] for i in ids]
        b = [items_b[i][m] for i in ids]
        test = paired_test(a, b, n_boot, seed=seed)
        ok = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
        out["metrics"][m] = {
            "a": float(np.mean([x for x, _ in ok])) if ok else float("nan"),
            "b": float(np.mean([y for _, y in ok])) if ok else float("nan"),
            **test,
            "test": "sign-flip permutation on per-item differences",
        }
    return out


def format_comparison(c: dict) -> str:
    lines = [
        f"A = {c['a']}",
        f"B = {c['b']}",
        f"{c['n_common']} items in common ({c['only_a']} only in A, {c['only_b']} only in B)",
        "",
        "| metric | n | A | B | B − A | 95% CI | p |",
        "|---|---|---|---|---|---|---|",
    ]
    for m, r in c["metrics"].items():
        n = r.get("n", c["n_common"])
        if r["delta"] != r["delta"]:  # NaN: fewer than two items scored in both
            lines.append(f"| {m} | {n} | — | — | — | needs ≥ 2 items scored in both runs | — |")
            continue
        lines.append(
            f"| {m} | {n} | {r['a']:.3f} | {r['b']:.3f} | {r['delta']:+.3f} | "
            f"[{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}] | {r['p_value']:.4f} |"
        )
    return "\n".join(lines)
