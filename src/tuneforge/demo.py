"""`tuneforge demo`: the whole pipeline on the embedded model, offline, in minutes on a laptop.

data (shipped train split, grown by `data build`: DS²-Instruct + Self-Instruct with the embedded
model, Mosaic and token-level augmentation, dedup, decontamination against the test split, IFD) → LoRA fine-tuning (bf16 where the CPU runs it natively, else fp32) → answers to the test split from the base
and the tuned model → BLEU, ROUGE-L and TSAS per domain → a run directory with the data, the
adapter, the generations, metrics.json and report.md.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from tuneforge.chat_template import check_chat_template
from tuneforge.config import save_config
from tuneforge.data.io import read_records, records_of, write_records
from tuneforge.data.run import BuildConfig, build_dataset
from tuneforge.data.seed import load_examples
from tuneforge.evaluate.report import write_report
from tuneforge.evaluate.scoring import score_models
from tuneforge.evaluate.test_set import TestSetConfig, cap_per_domain
from tuneforge.files import check_output_dir, run_directory, write_text_atomic
from tuneforge.generation import GenerationConfig, generate_answers
from tuneforge.hardware import cpu_ticks, hardware_summary, steal_percent
from tuneforge.models import EMBEDDED_ENCODER, check_attention, check_hub_model, load_model
from tuneforge.records import EvalItem, Example
from tuneforge.run_metrics import write_metrics
from tuneforge.train.adapters import AdapterConfig, is_prompt_learning
from tuneforge.train.config import ModelConfig, resolve_auto
from tuneforge.train.loop import TrainConfig
from tuneforge.train.objectives import fit
from tuneforge.train.sft import SFTOptions


@dataclass
class DataConfig(TestSetConfig):
    train: str = field(default="seed:train", metadata={"help": "training file (any format) or seed:train"})


@dataclass
class DemoBuildConfig(BuildConfig):
    """`tuneforge data build` run before training; its manual source is data.train."""

    enabled: bool = field(default=False, metadata={"help": "build the training data first (else train on data.train)"})
    output_dir: str = field(default="", metadata={"help": "dataset directory ('' = RUN/data/build)"})


@dataclass
class EvalConfig:
    metrics: list[str] = field(
        default_factory=lambda: ["bleu", "rouge_l", "tsas"],
        metadata={"help": "metric names or package.module:function", "min_len": 1},
    )
    encoder: str = field(default=EMBEDDED_ENCODER, metadata={"help": "sentence encoder for TSAS, IF-Score and MAUVE"})


@dataclass
class DemoConfig:
    output_dir: str = field(default="", metadata={"help": "run directory ('' = runs/demo-<time>)"})
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    build: DemoBuildConfig = field(default_factory=DemoBuildConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def _build_steps(b: BuildConfig) -> list[str]:
    steps = [
        name
        for name, on in (
            ("self-instruct", b.self_instruct.enabled),
            ("DS²", b.ds2.enabled),
            ("evol", b.evol.enabled),
            ("distill", bool(b.distill.prompts)),
            ("augment", bool(b.augment.mosaic or b.augment.token or b.augment.paraphrase)),
            ("dedup", b.filters.dedup),
            ("decontamination", bool(b.filters.decontaminate)),
            ("judge", b.filters.judge),
            ("IFD", b.filters.ifd),
        )
        if on
    ]
    return steps or ["manual data only"]


class _Stages:
    """Prints numbered stage headers and records each stage's wall time (seconds)."""

    def __init__(self, total: int, run_dir: Path | None = None):
        self.total, self._start, self.run_dir = total, time.time(), run_dir
        self.times: dict[str, float] = {}
        self._name: str | None = None
        self.ticks = cpu_ticks()

    def start(self, name: str, text: str) -> None:
        self.stop()
        self._name, self._start = name, time.time()
        print(f"[{len(self.times) + 1}/{self.total}] {text}", flush=True)
        if self.run_dir is not None:  # for `tuneforge ui`: which stage a running demo is in
            stage = {"stage": len(self.times) + 1, "of": self.total, "name": name, "text": text}
            write_text_atomic(self.run_dir / "stage.json", json.dumps(stage))

    def stop(self) -> None:
        if self._name is not None:
            self.times[self._name] = round(time.time() - self._start, 1)
            self._name = None


def run_demo(cfg: DemoConfig) -> Path:
    """Run the demo pipeline and return the run directory."""
    run_dir = Path(cfg.output_dir or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}")
    cfg = resolve_auto(cfg, cfg.model.device)
    check_output_dir(run_dir, "demo")  # the model and template are checked before anything is written
    check_hub_model(cfg.model.name)
    check_chat_template(cfg.model.chat_template)
    check_attention(cfg.model.attn_implementation, cfg.model.device)
    with run_directory(run_dir, "demo"):
        save_config(cfg, run_dir / "config.yaml")
        stages = _Stages(7 if cfg.build.enabled else 6, run_dir)
        stages.start("data", "data")
        train = load_examples(cfg.data.train)
        build_summary = None
        if cfg.build.enabled:
            stages.start("data_build", "data build: " + ", ".join(_build_steps(cfg.build)))
            build_cfg = dataclasses.replace(
                cfg.build,
                output_dir=cfg.build.output_dir or str(run_dir / "data" / "build"),
                manual=dataclasses.replace(cfg.build.manual, files=cfg.build.manual.files or [cfg.data.train]),
            )
            built = build_dataset(build_cfg)
            train = records_of(read_records(built / "train.jsonl"), Example, built / "train.jsonl", "")
            manifest = json.loads((built / "manifest.json").read_text())
            build_summary = {k: manifest[k] for k in ("stages", "removed", "final", "llm")} | {"dir": str(built)}
            print(
                f"      built {manifest['final']} records: stages {manifest['stages']}, removed "
                f"{manifest['removed'] or 'none'}",
                flush=True,
            )
        test = cap_per_domain(load_examples(cfg.data.test), cfg.data.test_per_domain)
        write_records(train, run_dir / "data" / "train.jsonl")
        write_records(test, run_dir / "data" / "test.jsonl")
        items = [EvalItem.from_example(ex) for ex in test]
        print(f"      {len(train)} training examples, {len(items)} test items", flush=True)

        stages.start("base_answers", f"base model {cfg.model.name}: answers to the test split")
        model, tok = load_model(cfg.model.name, cfg.model.dtype, cfg.model.attn_implementation, cfg.model.device)
        base_gens = generate_answers(
            model,
            tok,
            items,
            cfg.generation,
            cfg.model.name,
            run_dir / "generations" / "base.jsonl",
            desc="base answers",
        )

        stages.start("train", f"{cfg.adapter.method} fine-tuning, {cfg.train.steps} steps")
        model, result, eval_loss = fit(
            model, tok, SFTOptions(), cfg.train, cfg.adapter, run_dir, examples=train, eval_examples=test
        )

        stages.start("tuned_answers", "tuned model: answers to the test split")
        if hasattr(model, "merge_and_unload") and not is_prompt_learning(model):
            model = model.merge_and_unload()  # merged weights decode ~30% faster than an unmerged adapter
        tuned_name = f"{cfg.model.name}+{cfg.adapter.method}"
        tuned_gens = generate_answers(
            model, tok, items, cfg.generation, tuned_name, run_dir / "generations" / "tuned.jsonl", desc="tuned answers"
        )

        stages.start("score", f"scoring: {', '.join(cfg.eval.metrics)}")
        scored = score_models({"base": base_gens, "tuned": tuned_gens}, cfg.eval.metrics, run_dir, cfg.eval.encoder)
        run = {
            "name": run_dir.name,
            "model": cfg.model.name,
            "adapter": cfg.adapter.method,
            "steps": result.steps,
            "train_seconds": result.seconds,
            "tokens": result.tokens,
            "tokens_per_s": result.tokens / max(result.seconds, 1e-9),
            "first_loss": result.losses[0],
            "final_loss": result.final_loss,
            "trainable_params": result.trainable_params,
            "total_params": result.total_params,
            "compute": result.compute,
            "eval_loss": eval_loss,
            "data_build": build_summary,
            "dtype": cfg.model.dtype,
            "precision": cfg.train.precision,
            "hardware": hardware_summary(cfg.model.device),
        }

        stages.start("report", "report")
        run["stage_seconds"] = stages.times
        run["cpu_steal_percent"] = steal_percent(stages.ticks, cpu_ticks())
        write_metrics(
            run_dir, {"run": run | {"kind": "demo"}, "models": scored["models"], "comparison": scored["comparison"]}
        )
        report = write_report(run_dir)
        stages.stop()
        print(f"Report: {report}", flush=True)
        return run_dir
