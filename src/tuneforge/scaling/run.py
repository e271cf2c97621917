"""`tuneforge scaling`: how much would more data help, and which model should I tune? As a recipe
that reads top to bottom — resolve config → check every input → draw nested fractions of the
training data (one seeded order per seed: the 1/16 subset is inside the 1/8 one) → train the same
recipe (`tuneforge train`, one epoch count, so steps grow with the data) on every (model, fraction,
seed) → read each run's held-out losses per example → fit the laws with bootstrap CIs → check the fit
by extrapolating to the largest fraction → predict more data and choose a model at the budget →
scaling.json, scaling.md, scaling.png.

OUT/runs/<model>-f<fraction>-s<seed> are ordinary train runs; a rerun reuses every finished one whose
fingerprint (resolved config + data bytes) is unchanged and trains the rest, so an interrupted sweep
continues. D is the tokens each run processed (its compute record), N the base model's non-embedding
parameters; the runs' base losses (before training) are the D = 0 points of the rectified law."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tuneforge.config import save_config
from tuneforge.data.io import write_records
from tuneforge.errors import ConfigError
from tuneforge.files import check_output_dir, marker_state, run_directory, write_text_atomic
from tuneforge.hardware import distributed_state, hardware_summary
from tuneforge.scaling.extrapolation import extrapolation_check
from tuneforge.scaling.fit import Points, fit_with_ci, predict
from tuneforge.scaling.report_section import write_outputs
from tuneforge.scaling.selection import select_model
from tuneforge.train.adapters import AdapterConfig
from tuneforge.train.config import ModelConfig, SFTDataConfig, resolve_auto
from tuneforge.train.context import load_training_mix
from tuneforge.train.loop import TrainConfig
from tuneforge.train.resume import run_fingerprint
from tuneforge.train.run import train_model
from tuneforge.train.run_config import TrainRunConfig
from tuneforge.train.sft import SFTOptions

ADDS_PARAMETERS = ("lora", "qlora", "prefix_tuning", "prompt_tuning", "p_tuning", "ia3")


@dataclass
class SweepConfig:
    fractions: list[float] = field(
        default_factory=lambda: [0.0625, 0.125, 0.25, 0.5, 1.0],
        metadata={"help": "nested shares of data.train, each in (0, 1]", "min_len": 2},
    )
    seeds: list[int] = field(default_factory=lambda: [0, 1], metadata={"help": "data orders × training seeds"})
    epochs: float = field(default=1.0, metadata={"help": "passes over each fraction (sets train.steps)", "gt": 0})
    budget: float = field(
        default=0.0, metadata={"help": "tokens to predict at and choose a model for (0 = 4× the full data)", "ge": 0}
    )
    bootstrap: int = field(default=200, metadata={"help": "bootstrap draws per fit", "ge": 20})


@dataclass
class ScalingConfig:
    output_dir: str = field(default="", metadata={"help": "run directory ('' = runs/scaling-<time>)"})
    models: list[str] = field(
        default_factory=list,
        metadata={"help": "models of one family to fit L(N, D) over and choose from ([] = model.name only)"},
    )
    model: ModelConfig = field(default_factory=ModelConfig)
    data: SFTDataConfig = field(default_factory=SFTDataConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    scaling: SweepConfig = field(default_factory=SweepConfig)

    def __post_init__(self):
        bad = [f for f in self.scaling.fractions if not 0 < f <= 1]
        if bad:
            raise ConfigError(f"scaling.fractions must each be in (0, 1], got {bad}")
        if len(set(self.scaling.fractions)) < 4:
            raise ConfigError(
                "scaling.fractions needs 4 distinct shares or more: three to fit on and the largest to check the "
                "extrapolation (e.g. [0.125, 0.25, 0.5, 1.0])"
            )
        if not self.scaling.seeds:
            raise ConfigError("scaling.seeds is empty: give at least one seed, e.g. [0, 1]")
        if not self.data.eval:
            raise ConfigError(
                "data.eval is empty: every run's held-out loss is what the laws fit. Give one, e.g. seed:test"
            )


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name).name or name).strip("-") or "model"


def nested_fractions(examples: list, fractions: list[float], seed: int) -> dict[float, list]:
    """fraction → the first round(f·n) examples of one seeded order: each smaller set is inside the larger."""
    order = list(examples)
    random.Random(seed).shuffle(order)
    return {f: order[: max(1, round(f * len(order)))] for f in sorted(set(fractions))}


def _sub_config(cfg: ScalingConfig, model: str, data: Path, n: int, seed: int, out: Path) -> TrainRunConfig:
    per_step = cfg.train.batch_size * cfg.train.grad_accum * distributed_state().num_processes
    steps = max(1, math.ceil(cfg.scaling.epochs * n / per_step))
    return TrainRunConfig(
        output_dir=str(out),
        model=dataclasses.replace(cfg.model, name=model),
        data=SFTDataConfig(train=str(data), eval=cfg.data.eval),
        adapter=cfg.adapter,
        objective=SFTOptions(),
        train=dataclasses.replace(cfg.train, steps=steps, seed=seed),
    )


def _finished_and_same(run: Path, sub: TrainRunConfig, device: str) -> bool:
    """A finished sub-run made by exactly this config and these data bytes (then it is reused)."""
    stored = run / "run_fingerprint.json"
    if marker_state(run) is not None or not (run / "train_summary.json").exists() or not stored.exists():
        return False
    return json.loads(stored.read_text()) == run_fingerprint(resolve_auto(sub, device))


def _train_all(cfg: ScalingConfig, out: Path, models: list[str]) -> list[dict]:
    examples = load_training_mix(cfg.data, 0)
    device = str(distributed_state().device) if cfg.model.device == "auto" else cfg.model.device
    rows = []
    for seed in cfg.scaling.seeds:
        for frac, subset in nested_fractions(examples, cfg.scaling.fractions, seed).items():
            data = out / "data" / f"s{seed}-f{frac:g}.jsonl"
            write_records(subset, data)  # always: the same bytes when data.train is the same, so runs are reused
            for m, model in enumerate(models):
                run = out / "runs" / f"{_slug(model)}-f{frac:g}-s{seed}"
                sub = _sub_config(cfg, model, data, len(subset), seed, run)
                if _finished_and_same(run, sub, device):
                    print(f"tuneforge scaling: reusing {run} (same config and data)", flush=True)
                else:
                    print(f"tuneforge scaling: {model}, {len(subset)} examples ({frac:g}), seed {seed}", flush=True)
                    train_model(sub)
                summary = json.loads((run / "train_summary.json").read_text())
                rows.append({"model": m, "name": model, "fraction": frac, "seed": seed, "examples": len(subset),
                             "run": str(run.relative_to(out)), "summary": summary})  # fmt: skip
    return rows


def _base_n(summary: dict, method: str) -> int:
    """The base model's non-embedding parameters (an adapter's own are not the model's size)."""
    p = summary["compute"]["params"]
    return p["non_embedding"] - (p["trainable_non_embedding"] if method in ADDS_PARAMETERS else 0)


def points_of(rows: list[dict], method: str) -> tuple[Points, Points]:
    """(trained points, trained + each model's D = 0 base point) from the sub-runs' summaries."""
    units = {tuple(r["summary"]["eval"]["per_example"]["units"]) for r in rows}
    if len(units) != 1:
        raise ConfigError(
            "the models tokenise the held-out set differently, so their losses per target token do not pair up: "
            "give models of one family (one tokenizer) in `models`"
        )
    pe = [r["summary"]["eval"]["per_example"] for r in rows]
    n = np.array([_base_n(r["summary"], method) for r in rows], float)
    model = np.array([r["model"] for r in rows])
    trained = Points(model, n, np.array([r["summary"]["compute"]["tokens"] for r in rows], float),
                     np.array([r["seed"] for r in rows]), np.array([p["tuned"] for p in pe], float),
                     np.array(pe[0]["units"], float), [r["run"] for r in rows],
                     np.array([r["fraction"] for r in rows]))  # fmt: skip
    # the base loss is one per model: take it from each model's first run, in row order
    idx = sorted({r["model"]: i for i, r in reversed(list(enumerate(rows)))}.values())
    base = trained.subset(np.isin(np.arange(len(rows)), idx))
    base = dataclasses.replace(base, d=np.zeros(len(idx)), sums=np.array([pe[i]["base"] for i in idx], float),
                               fraction=np.zeros(len(idx)), labels=["base"] * len(idx))  # fmt: skip
    return trained, _concat(trained, base)


def _concat(a: Points, b: Points) -> Points:
    cat = lambda x, y: np.concatenate([x, y])  # noqa: E731
    return Points(cat(a.model, b.model), cat(a.n, b.n), cat(a.d, b.d), cat(a.seed, b.seed), cat(a.sums, b.sums),
                  a.units, a.labels + b.labels, cat(a.fraction, b.fraction))  # fmt: skip


def analyse(trained: Points, with_base: Points, names: list[str], budget: float, n_boot: int) -> tuple[dict, dict]:
    """Every fit, check and prediction of the sweep (scaling.json's `fits`), and each model's data-law
    fit with its bootstrap draws (the plot's band)."""
    out: dict = {"models": {}}
    data_fits: dict[str, dict] = {}
    for m, name in enumerate(names):
        own, own_base = trained.subset(trained.model == m), with_base.subset(with_base.model == m)
        data_fit, rect = fit_with_ci("data", own, n_boot), fit_with_ci("rectified", own_base, n_boot)
        data_fits[name] = data_fit
        d_full = float(own.d[own.fraction == own.fraction.max()].mean())
        more = {}
        for k in (2, 4):
            draws = [predict("data", p, 1, k * d_full) for p in data_fit["draws"]]
            more[f"{k}x"] = {"d": k * d_full, "loss": float(predict("data", data_fit["params"], 1, k * d_full)),
                             "ci": np.percentile(draws, [2.5, 97.5]).tolist()}  # fmt: skip
        out["models"][name] = {
            "n": float(own.n[0]),
            "data_law": _public(data_fit),
            "rectified_law": _public(rect),
            "extrapolation": extrapolation_check(own, "data", n_boot),
            "full_data": {"d": d_full, "loss": float(own.loss[own.fraction == own.fraction.max()].mean())},
            "more_data": more,
        }
    if len(set(trained.n.tolist())) >= 2:
        out["joint_law"] = _public(fit_with_ci("joint", trained, n_boot))
    out["selection"] = select_model(with_base, budget, names, n_boot)
    return out, data_fits


def _public(fit: dict) -> dict:
    """A fit without its bootstrap draws (those stay in memory for the plot's band)."""
    return {k: v for k, v in fit.items() if k != "draws"} | {"n_boot": len(fit["draws"])}


def run_scaling(cfg: ScalingConfig) -> Path:
    """Run the sweep and write OUT/scaling.{json,md,png}; returns OUT."""
    out = check_output_dir(cfg.output_dir or f"runs/scaling-{time.strftime('%Y%m%d-%H%M%S')}", "scaling")
    models = list(dict.fromkeys(cfg.models or [cfg.model.name]))
    with run_directory(out, "scaling"):
        save_config(cfg, out / "config.yaml")
        rows = _train_all(cfg, out, models)
        trained, with_base = points_of(rows, cfg.adapter.method)
        budget = cfg.scaling.budget or 4 * float(trained.d[trained.fraction == trained.fraction.max()].mean())
        fits, data_fits = analyse(trained, with_base, models, budget, cfg.scaling.bootstrap)
        runs = [{k: v for k, v in r.items() if k != "summary"} | _run_facts(r["summary"]) for r in rows]
        result = {"runs": runs, "fits": fits, "budget": budget, "hardware": hardware_summary(cfg.model.device),
                  "total_c_train": sum(r["c_train_6nd"] for r in runs)}  # fmt: skip
        write_text_atomic(out / "scaling.json", json.dumps(result, indent=1))
        write_outputs(out, result, trained, data_fits)
    print(f"Scaling: {out / 'scaling.md'}", flush=True)
    return out


def _run_facts(s: dict) -> dict:
    c = s["compute"]
    return {"tokens": c["tokens"], "c_train_6nd": c["c_train_6nd"], "steps": s["steps"],
            "heldout_loss": s["eval"]["tuned"]["loss"], "heldout_ci": s["eval"]["tuned"]["ci"],
            "train_seconds": s["train_seconds"]}  # fmt: skip
