"""`tuneforge eval generate|run CONFIG`: answer a test set with one or more models once, then score
the stored answers with every configured metric, judge and correlation.

    OUT/config.yaml                 the resolved config
    OUT/generations/<label>.jsonl   one row per item: prompt, references, generation, model,
                                    decoding settings, prompt/generation hashes (resumable)
    OUT/scores/<label>.jsonl        per-item scores
    OUT/judge/cache.sqlite          judge answers (a rerun repeats no call)
    OUT/metrics.json                every aggregate with its CI and signature; judge; correlation
    OUT/report.md, report.html      (`tuneforge report OUT` rewrites them)

A model is `label=spec` (or just `spec`): a model name / directory / .gguf, a `tuneforge train` or
`demo` run directory (its adapter on its base model, merged for speed), or a PEFT adapter directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from tuneforge.config import SEED, device_field, dtype_field, save_config
from tuneforge.data.io import read_records, records_of
from tuneforge.errors import ConfigError, DataError
from tuneforge.evaluate.correlation import correlate, load_ratings
from tuneforge.evaluate.judge import judge_pairwise, judge_single
from tuneforge.evaluate.metrics import get_metric
from tuneforge.evaluate.model_spec import answer_with_model, check_model_spec, parse_models
from tuneforge.evaluate.report import write_report
from tuneforge.evaluate.scoring import score_models
from tuneforge.evaluate.test_set import TestSetConfig, load_test_items
from tuneforge.files import run_directory, write_text_atomic
from tuneforge.generation import GenerationConfig
from tuneforge.hardware import check_device_dtype, distributed_state, resolve_dtype
from tuneforge.llm.config import LLMConfig, make_llm
from tuneforge.models import EMBEDDED_ENCODER, EMBEDDED_MODEL
from tuneforge.records import Generation
from tuneforge.run_metrics import write_metrics

ALL_METRICS = ["bleu", "rouge_l", "bertscore", "tsas", "exact_match", "if_score", "mauve"]


@dataclass
class MetricOptions:
    rouge_tokenizer: str = field(default="default", metadata={"help": "default (rouge-score, ASCII) | unicode"})
    bertscore_model: str = field(
        default=EMBEDDED_ENCODER, metadata={"help": "encoder for BERTScore (e.g. roberta-large)"}
    )
    bertscore_layer: int = field(default=0, metadata={"help": "layer (0 = the model's default; 6 for MiniLM)", "ge": 0})
    mauve_seeds: int = field(default=5, metadata={"help": "k-means seeds MAUVE is averaged over", "ge": 1})
    mauve_scaling: float = field(default=5.0, metadata={"help": "MAUVE scaling constant c", "gt": 0})
    strip_reasoning: bool = field(
        default=True, metadata={"help": "text metrics score the answer without its leading <think> trace"}
    )
    tsas_floor: float = field(
        default=0.1,
        metadata={
            "help": "TSAS leaves out (and counts) items whose cos(instruction, reference) is below this",
            "ge": -1,
            "le": 1,
        },
    )


@dataclass
class JudgeConfig:
    single: bool = field(default=False, metadata={"help": "rate every answer 1-10"})
    pairwise: bool = field(default=False, metadata={"help": "compare the first two models, both orders"})
    with_reference: bool = field(default=True, metadata={"help": "show the judge the reference answer"})
    llm: LLMConfig = field(default_factory=LLMConfig)


@dataclass
class EvalRunConfig:
    output_dir: str = field(default="runs/eval", metadata={"help": "evaluation directory"})
    models: list[str] = field(
        default_factory=lambda: [f"base={EMBEDDED_MODEL}"],
        metadata={"help": "label=spec: model name/dir/.gguf, a train/demo run dir, or an adapter dir", "min_len": 1},
    )
    data: TestSetConfig = field(default_factory=TestSetConfig)
    dtype: str = dtype_field("dtype of every local model")
    device: str = device_field()
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    metrics: list[str] = field(
        default_factory=lambda: list(ALL_METRICS),
        metadata={"help": f"any of {', '.join(ALL_METRICS)} or package.module:function", "min_len": 1},
    )
    encoder: str = field(default=EMBEDDED_ENCODER, metadata={"help": "sentence encoder for TSAS, IF-Score, MAUVE"})
    options: MetricOptions = field(default_factory=MetricOptions)
    bootstrap: int = field(
        default=1000, metadata={"help": "bootstrap resamples for CIs (0 = none)", "ge": 0, "le": 100_000}
    )
    seed: int = field(default=0, metadata={"help": "bootstrap seed", **SEED})
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    human_ratings: str = field(default="", metadata={"help": "file of {id, rating} to correlate metrics with"})
    human_ratings_key: str = field(default="rating", metadata={"help": "the rating field in that file"})
    human_ratings_model: str = field(default="", metadata={"help": "label of the rated model ('' = first)"})

    RENAMED: ClassVar[dict[str, str]] = {"test": "data.test", "test_per_domain": "data.test_per_domain"}

    def __post_init__(self):
        check_device_dtype(self.device, self.dtype)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def eval_generate(cfg: EvalRunConfig) -> dict[str, list[Generation]]:
    """Answer the test set with every model (resuming what is already on disk)."""
    import torch

    out = Path(cfg.output_dir)
    cfg = dataclasses.replace(cfg, dtype=resolve_dtype(cfg.dtype, cfg.device))
    items = load_test_items(cfg.data)  # inputs checked before anything is written
    for _, spec in parse_models(cfg.models):
        check_model_spec(spec)
    main = distributed_state().is_main_process  # under `accelerate launch`, processes split the items; one writes
    with run_directory(out, "eval", active=main):
        if main:
            save_config(cfg, out / "config.yaml")
        result = {}
        for label, spec in parse_models(cfg.models):
            path = out / "generations" / f"{label}.jsonl"
            gens, desc = answer_with_model(
                spec, label, items, cfg.generation, path, cfg.dtype, cfg.device, desc=f"{label} answers"
            )
            for g in gens:
                g.meta["model_spec"] = desc
                g.meta["prompt_sha256"] = _prompt_sha256(g.prompt)
                g.meta["generation_sha256"] = _hash(g.generation)
            if main:
                _rewrite(path, gens)
            result[label] = gens
            torch.cuda.empty_cache() if torch.cuda.is_available() else None
        return result


def _rewrite(path: Path, gens: list[Generation]) -> None:
    write_text_atomic(path, "".join(json.dumps(g.to_dict(), ensure_ascii=False) + "\n" for g in gens))


def load_generations(out: Path, labels: list[str]) -> dict[str, list[Generation]]:
    gens: dict[str, list[Generation]] = {}
    for label in labels:
        path = out / "generations" / f"{label}.jsonl"
        if not path.exists():
            raise DataError(
                f"no stored generations for model '{label}'; run tuneforge eval generate first", path=str(path)
            )
        gens[label] = records_of(read_records(path), Generation, path, "Run tuneforge eval generate again")
    return gens


def _prompt_sha256(messages) -> str:
    return _hash(json.dumps([[m.role, m.content] for m in messages]))


def _check_same_test_set(cfg: EvalRunConfig, gens: dict[str, list[Generation]]) -> None:
    """Answers `eval generate` made carry their prompt's digest: they are scored only against the
    test set they answered, never labelled with another one (answers made elsewhere carry none)."""
    made_here = [(label, g) for label, gs in gens.items() for g in gs if "prompt_sha256" in g.meta]
    if not made_here:
        return
    items = {i.id: _prompt_sha256(i.messages) for i in load_test_items(cfg.data)}
    other = [f"{label}:{g.id}" for label, g in made_here if items.get(g.id) != g.meta["prompt_sha256"]]
    if other:
        raise DataError(
            f"{len(other)} of {len(made_here)} stored answers were not made from data.test={cfg.data.test} "
            f"(first: {', '.join(other[:3])}): their prompts are not that test set's. Score them with the test set "
            "they answered (the `test` in this run's config.yaml), or generate again",
            path=str(Path(cfg.output_dir) / "generations"),
        )


def eval_score(cfg: EvalRunConfig, gens: dict[str, list[Generation]] | None = None) -> Path:
    """Score stored generations; write scores/, metrics.json and the reports. Returns OUT."""
    out = Path(cfg.output_dir)
    labels = [label for label, _ in parse_models(cfg.models)]
    ratings = _check_score_inputs(cfg, labels)
    gens = gens or load_generations(out, labels)
    _check_same_test_set(cfg, gens)
    with run_directory(out, "eval", adopt=["generations"]):  # answers made elsewhere are scored too
        start = time.time()
        options = {k: getattr(cfg.options, k) for k in MetricOptions.__dataclass_fields__}
        scored = score_models(
            {label: gens[label] for label in labels}, cfg.metrics, out, cfg.encoder, options, cfg.bootstrap, cfg.seed
        )
        metrics = {
            "run": {
                "name": out.name,
                "kind": "eval",
                "models": dict(parse_models(cfg.models)),
                "test": cfg.data.test,
                "n_items": len(next(iter(gens.values()))),
                "generation": {k: v for k, v in vars(cfg.generation).items() if k != "batch_size"},
            },
            **scored,
        }
        if cfg.judge.single or cfg.judge.pairwise:
            llm = make_llm(cfg.judge.llm, out / "judge" / "cache.sqlite", desc="judge")
            judge = {}
            if cfg.judge.single:
                judge["single"] = {
                    label: judge_single(llm, g, cfg.judge.with_reference, n_boot=cfg.bootstrap, seed=cfg.seed)
                    for label, g in gens.items()
                }
            if cfg.judge.pairwise:
                judge["pairwise"] = judge_pairwise(
                    llm, gens[labels[0]], gens[labels[1]], n_boot=cfg.bootstrap, seed=cfg.seed
                )
            metrics["judge"] = judge
        if ratings is not None:
            rated = cfg.human_ratings_model or labels[0]
            per_item = {
                r["id"]: r for r in map(json.loads, (out / "scores" / f"{rated}.jsonl").read_text().splitlines())
            }
            names = [m for m in cfg.metrics if m in next(iter(per_item.values()), {})]
            metrics["correlation"] = {
                "model": rated,
                "file": cfg.human_ratings,
                "metrics": {
                    m: correlate({i: r.get(m) for i, r in per_item.items()}, ratings, cfg.bootstrap, cfg.seed)
                    for m in names
                },
            }
        metrics["run"]["score_seconds"] = round(time.time() - start, 1)
        write_metrics(out, metrics)
        write_report(out)
        return out


def _check_score_inputs(cfg: EvalRunConfig, labels: list[str]) -> dict | None:
    """What would otherwise fail after answers or scores are written; returns the human ratings."""
    if cfg.judge.pairwise and len(labels) < 2:
        raise ConfigError("judge.pairwise needs two models in `models`")
    if cfg.human_ratings and (cfg.human_ratings_model or labels[0]) not in labels:
        raise ConfigError(f"human_ratings_model '{cfg.human_ratings_model}' is not one of the models {labels}")
    for name in cfg.metrics:  # a metric that cannot run must not wait for the answers to fail
        get_metric(name, {k: getattr(cfg.options, k) for k in MetricOptions.__dataclass_fields__})
    return load_ratings(cfg.human_ratings, cfg.human_ratings_key) if cfg.human_ratings else None


def run_eval(cfg: EvalRunConfig) -> Path:
    _check_score_inputs(cfg, [label for label, _ in parse_models(cfg.models)])
    return eval_score(cfg, eval_generate(cfg))


def _nan_safe(x):
    return float(x)
