"""Data-selection experiment (issue 34 (b)): at one equal budget — a quarter of the training pool, one
pass — which quarter should a run train on?

  random       a seeded random 25% of the pool (the baseline every Δ is against)
  ifd          the 25% with the highest IFD among those whose instruction helps (IFD < 1; data/ifd.py,
               scored by the base model)
  uncertainty  active learning: 3 rounds, each adding the pool's most uncertain examples (answer loss
               under the model as trained so far) until 25% are chosen (train.active)
  curriculum   the whole pool ordered by the base model's loss, easiest first, linear pacing from 20%
               to all by 80% of the steps (train.curriculum), for the same number of steps

Every arm: LoRA r=16 on all linear layers of the embedded SmolLM2-135M-Instruct, batch 1, lr 3e-4,
as many steps as the budget has examples; seeds 0 and 1 (data draw and training). Measured on the
79 held-out examples of seed:test: the loss per target token (per example, paired across arms) and
ROUGE-L of greedy answers (`tuneforge eval run`); Δ against random with paired bootstrap 95% CIs,
the seeds averaged per example first. Writes benchmarks/results/data_selection.json (naming the
CPU); `--smoke` runs every arm on a tiny random model in a temporary folder (CI).

Usage:  python benchmarks/data_selection.py [--out runs/data_selection] [--seeds 0 1] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ARMS = ("random", "ifd", "uncertainty", "curriculum")


def _subset(arm: str, pool: list, k: int, seed: int, model_name: str) -> list:
    """The training file's records of an arm that selects before training (random, ifd); else the pool."""
    if arm == "random":
        return random.Random(seed).sample(pool, k)
    if arm == "ifd":
        from tuneforge.data.ifd import ifd_scores, select_by_ifd
        from tuneforge.models import load_model

        model, tok = load_model(model_name, "auto", "eager", "cpu")
        scores = ifd_scores(model, tok, pool)
        helped = sum(1 for s in scores if s["ifd"] == s["ifd"] and s["ifd"] < 1)
        kept, _, _ = select_by_ifd(pool, scores, 1.0, min(1.0, k / max(helped, 1)))
        return kept
    return pool


def _train(arm: str, out: Path, data: Path, steps: int, seed: int, base: list[str], budget: float) -> Path:
    from tuneforge.config import load_config
    from tuneforge.train.run import train_model
    from tuneforge.train.run_config import TrainRunConfig

    run = out / f"{arm}-s{seed}"
    if (run / "train_summary.json").exists():  # resumable: a finished arm is kept
        return run
    extra = {
        "uncertainty": ["train.active.rounds=3", f"train.active.fraction={budget}", "train.active.score=loss"],
        "curriculum": ["train.curriculum.order=loss", "train.curriculum.pacing=linear"],
    }.get(arm, [])
    cfg = load_config(TrainRunConfig, None, [*base, f"output_dir={run}", f"data.train={data}", f"train.steps={steps}",
                                             f"train.seed={seed}", *extra])  # fmt: skip
    return train_model(cfg)


def _paired(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean of b − a over items with its paired bootstrap 95% CI."""
    rng = np.random.default_rng(seed)
    d = b - a
    boots = [d[rng.integers(0, len(d), len(d))].mean() for _ in range(n_boot)]
    return {"delta": float(d.mean()), "ci": np.percentile(boots, [2.5, 97.5]).tolist()}


def _heldout(runs: dict[str, list[Path]]) -> dict:
    """Per arm: loss per target token (seeds pooled) and, per example, the seed-mean loss."""
    out = {}
    for arm, dirs in runs.items():
        pe = [json.loads((d / "train_summary.json").read_text())["eval"]["per_example"] for d in dirs]
        units = np.array(pe[0]["units"], float)
        sums = np.mean([p["tuned"] for p in pe], 0)
        out[arm] = {"units": units, "sums": sums, "loss": float(sums.sum() / units.sum()),
                    "base": float(np.sum(pe[0]["base"]) / units.sum()),
                    "tokens": [json.loads((d / "train_summary.json").read_text())["compute"]["tokens"] for d in dirs]}  # fmt: skip
    return out


def _rouge(eval_dir: Path, runs: dict[str, list[Path]]) -> dict[str, np.ndarray]:
    """Per arm: per-item ROUGE-L, the seeds averaged, in the test set's item order."""
    out = {}
    for arm, dirs in runs.items():
        per_seed = []
        for d in dirs:
            rows = [json.loads(x) for x in (eval_dir / "scores" / f"{d.name}.jsonl").read_text().splitlines()]
            per_seed.append({r["id"]: r["rouge_l"] for r in rows})
        ids = sorted(per_seed[0])
        out[arm] = np.array([np.mean([s[i] for s in per_seed]) for i in ids])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, default=Path("runs/data_selection"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--budget", type=float, default=0.25, help="share of the pool each arm trains on")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "data_selection.json")
    p.add_argument("--smoke", action="store_true", help="a tiny random model, one seed, a temporary folder")
    a = p.parse_args(argv)
    from tuneforge.config import load_config
    from tuneforge.data.io import write_records
    from tuneforge.data.seed import load_examples
    from tuneforge.evaluate.run import EvalRunConfig, run_eval
    from tuneforge.hardware import hardware_summary
    from tuneforge.intervals import paired_ratio_delta

    tmp = Path(tempfile.mkdtemp(prefix="tuneforge-smoke-")) if a.smoke else None
    out, seeds = (tmp / "exp", [0]) if tmp else (a.out, a.seeds)
    model_name, test = (_smoke_model(tmp), tmp / "test.jsonl") if tmp else ("smollm2-135m-instruct", "seed:test")
    pool = load_examples(str(tmp / "train.jsonl") if tmp else "seed:train")
    k = max(1, round(a.budget * len(pool)))
    base = [f"model.name={model_name}", "model.attn_implementation=eager", f"data.eval={test}", "adapter.method=lora",
            "adapter.r=16", "adapter.alpha=32", "adapter.dropout=0.0", "adapter.target_modules=[all-linear]",
            "train.batch_size=1", "train.lr=3e-4", "train.log_every=10"]  # fmt: skip
    if tmp:
        base += ["model.dtype=float32", "train.precision=fp32", "adapter.r=4"]
    runs: dict[str, list[Path]] = {arm: [] for arm in ARMS}
    for seed in seeds:
        for arm in ARMS:
            data = out / "data" / f"{arm}-s{seed}.jsonl"
            if not data.exists():
                write_records(_subset(arm, pool, k, seed, model_name), data)
            runs[arm].append(_train(arm, out, data, k, seed, base, a.budget))
    models = [f"{d.name}={d}" for arm in ARMS for d in runs[arm]]
    gen = ["generation.max_new_tokens=4"] if tmp else ["generation.max_new_tokens=96"]
    eval_dir = out / "eval"
    if not (eval_dir / "metrics.json").exists():
        run_eval(load_config(EvalRunConfig, None, [f"output_dir={eval_dir}", f"models=[{','.join(models)}]",
                                                   f"data.test={test}", "metrics=[rouge_l]", *gen,
                                                   "bootstrap=200"]))  # fmt: skip
    held, rouge = _heldout(runs), _rouge(eval_dir, runs)
    table = {}
    for arm in ARMS:
        h = held[arm]
        table[arm] = {
            "heldout_loss": h["loss"],
            "tokens_trained": h["tokens"],
            "rouge_l": float(rouge[arm].mean()),
            "vs_random": None if arm == "random" else {
                # loss per target token over the same examples (sums averaged over seeds), paired with random's
                "heldout_loss": paired_ratio_delta(held["random"]["sums"], h["sums"], h["units"], 2000),
                "rouge_l": _paired(rouge["random"], rouge[arm]),
            },
        }  # fmt: skip
    result = {"budget": a.budget, "examples_per_arm": k, "pool": len(pool), "seeds": seeds, "base_loss": held["random"]["base"],
              "arms": table, "hardware": hardware_summary("cpu"), "smoke": bool(tmp)}  # fmt: skip
    print(_markdown(result))
    results = tmp / "tuneforge-smoke-data_selection.json" if tmp else a.results
    results.write_text(json.dumps(result, indent=1))
    print(f"wrote {results}")
    return 0


def _markdown(r: dict) -> str:
    lines = [f"Budget: {r['examples_per_arm']} of {r['pool']} examples, seeds {r['seeds']}; base model held-out loss "
             f"{r['base_loss']:.4f}. CPU: {r['hardware']['cpu']}.", "",
             "| arm | tokens trained | held-out loss | Δ loss vs random [95% CI] | ROUGE-L | Δ ROUGE-L vs random [95% CI] |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for arm, t in r["arms"].items():
        v = t["vs_random"]
        fmt = lambda d: f"{d['delta']:+.4f} [{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}]" if d else "—"  # noqa: E731
        lines.append(f"| {arm} | {', '.join(f'{x:,}' for x in t['tokens_trained'])} | {t['heldout_loss']:.4f} | "
                     f"{fmt(v and v['heldout_loss'])} | {t['rouge_l']:.4f} | {fmt(v and v['rouge_l'])} |")  # fmt: skip
    return "\n".join(lines)


def _smoke_model(tmp: Path) -> str:
    from tuneforge.data.io import write_records
    from tuneforge.models import tiny_model, tiny_tokenizer
    from tuneforge.records import Example, Message

    tok = tiny_tokenizer()
    tiny_model(tok, hidden=32, layers=2).save_pretrained(tmp / "model")
    tok.save_pretrained(tmp / "model")
    rows = [Example(messages=[Message("user", f"Question {i}: what now?"), Message("assistant", f"Answer {i} " * (1 + i % 3))],
                    id=str(i), domain=("finance", "legal")[i % 2]) for i in range(16)]  # fmt: skip
    write_records(rows, tmp / "train.jsonl")
    write_records(rows[:4], tmp / "test.jsonl")
    return str(tmp / "model")


if __name__ == "__main__":
    sys.exit(main())
