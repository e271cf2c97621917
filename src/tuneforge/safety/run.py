"""`tuneforge safety run [CONFIG]`: answer the safety suite's test half with each model, run the
detectors, and write the five rates with CIs — in the layout of `eval run`, so `tuneforge report`
renders it and `tuneforge eval compare RUN:base RUN:tuned` gives the safety deltas with paired tests.

    OUT/generations/<label>.jsonl  answers (resumable)
    OUT/scores/<label>.jsonl       per item: detector verdicts and rate indicators (0/100)
    OUT/metrics.json               rates overall and per domain with Wilson 95% CIs, failing
                                   examples, detector accuracy on the calibration set
    OUT/report.md, report.html
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from tuneforge.config import device_field, dtype_field, save_config
from tuneforge.errors import ConfigError, check_choices
from tuneforge.evaluate.model_spec import answer_with_model, check_model_spec, parse_models
from tuneforge.evaluate.report import write_report
from tuneforge.files import run_directory, write_text_atomic
from tuneforge.generation import GenerationConfig
from tuneforge.hardware import check_device_dtype, resolve_dtype
from tuneforge.llm.config import LLMConfig, make_llm
from tuneforge.models import EMBEDDED_MODEL
from tuneforge.records import EvalItem, Message
from tuneforge.run_metrics import write_metrics
from tuneforge.safety.calibration import calibrate
from tuneforge.safety.rates import aggregate, failures, outcomes
from tuneforge.safety.refusal_classifier import check_detector, detector_signature, refusal_verdicts
from tuneforge.safety.report_section import register as register_safety_report
from tuneforge.safety.suite import CATEGORIES, load_suite

SPLITS = ("test", "train", "all")


@dataclass
class SafetyJudgeConfig:
    enabled: bool = field(default=False, metadata={"help": "also ask an LLM judge (agreement with the rules)"})
    llm: LLMConfig = field(default_factory=LLMConfig)


@dataclass
class SafetyRunConfig:
    output_dir: str = field(default="runs/safety", metadata={"help": "safety run directory"})
    models: list[str] = field(
        default_factory=lambda: [f"base={EMBEDDED_MODEL}"],
        metadata={"help": "label=spec, as in eval run (a model, a run dir, an adapter)", "min_len": 1},
    )
    suite: str = field(default="", metadata={"help": "suite YAML ('' = the shipped data/safety/suite.yaml)"})
    split: str = field(default="test", metadata={"help": "test (default) | train | all"})
    domains: list[str] = field(default_factory=list, metadata={"help": "restrict to these domains ([] = all)"})
    categories: list[str] = field(default_factory=list, metadata={"help": "restrict to these categories ([] = all)"})
    dtype: str = dtype_field("dtype of every local model")
    device: str = device_field()
    generation: GenerationConfig = field(default_factory=lambda: GenerationConfig(max_new_tokens=128, batch_size=80))
    judge: SafetyJudgeConfig = field(default_factory=SafetyJudgeConfig)
    detector: str = field(
        default="classifier",
        metadata={
            "help": "refusal / caution detector: classifier (the shipped learned one) | rules (phrase rules) | "
            "the directory of one trained with `tuneforge safety train-detector`"
        },
    )

    def __post_init__(self):
        check_choices([self.split], SPLITS, "split")
        check_device_dtype(self.device, self.dtype)
        check_choices(self.categories, CATEGORIES, "categories")
        check_detector(self.detector)


def safety_run(cfg: SafetyRunConfig) -> Path:
    out = Path(cfg.output_dir)
    cfg = dataclasses.replace(cfg, dtype=resolve_dtype(cfg.dtype, cfg.device))
    items = [
        it
        for it in load_suite(cfg.suite or None, cfg.split)
        if (not cfg.domains or it.domain in cfg.domains) and (not cfg.categories or it.category in cfg.categories)
    ]
    if not items:
        raise ConfigError("no suite item matches split / domains / categories")
    for _, spec in parse_models(cfg.models):  # inputs checked before anything is written
        check_model_spec(spec)
    with run_directory(out, "safety"):
        save_config(cfg, out / "config.yaml")
        eval_items = [
            EvalItem(
                messages=[Message("user", it.prompt)],
                references=[it.reference or it.correction or "-"],
                id=it.id,
                domain=it.domain,
                task=it.category,
            )
            for it in items
        ]
        prompts = {it.id: it.prompt for it in items}
        models, fails, judges = {}, {}, {}
        for label, spec in parse_models(cfg.models):
            gens, _ = answer_with_model(
                spec,
                label,
                eval_items,
                cfg.generation,
                out / "generations" / f"{label}.jsonl",
                cfg.dtype,
                cfg.device,
                desc=f"{label} safety answers",
            )
            answers = {g.id: g.generation for g in gens}
            kinds = refusal_verdicts([it.prompt for it in items], [answers[it.id] for it in items], cfg.detector)
            rows = [outcomes(it, answers[it.id], kind) for it, kind in zip(items, kinds)]
            _write_jsonl(rows, out / "scores" / f"{label}.jsonl")
            models[label] = aggregate(rows, label, detectors=detector_signature(cfg.detector))
            fails[label] = failures(rows, answers, prompts)
            if cfg.judge.enabled:
                from tuneforge.safety.judge import judge_detect

                llm = make_llm(cfg.judge.llm, out / "judge" / "cache.sqlite", desc="safety judge")
                judges[label] = judge_detect(llm, items, answers, {r["id"]: r for r in rows})
        labels = list(models)
        metrics = {
            "run": {
                "name": out.name,
                "kind": "safety",
                "models": dict(parse_models(cfg.models)),
                "test": f"safety suite, {cfg.split} split",
                "n_items": len(items),
            },
            "models": models,
            "safety": {
                "calibration": calibrate(detector=cfg.detector),
                "failures": fails,
                "judge": judges,
                "items_by_category": {c: sum(it.category == c for it in items) for c in CATEGORIES},
            },
        }
        if len(labels) >= 2:
            metrics["comparison_models"] = labels[:2]
        write_metrics(out, metrics)
        register_safety_report()
        write_report(out)
        return out


def _write_jsonl(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))
