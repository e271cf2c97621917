"""`tuneforge compress`: a smaller model from a model or a run, as a recipe that reads top to bottom —
resolve config → check every input → load the source (a run's adapter merged) → read the calibration
set → score units (magnitude | taylor | gates) → plan → prune → save → (optional) recover with the
existing SFT or distillation objective on the one loop → (optional) quantize → held-out loss before and
after → summary.

OUT/model is the result (`AutoModelForCausalLM.from_pretrained(OUT/model)`); with recovery or
quantization, OUT/pruned is the model straight after pruning, OUT/recovery the training run (and
OUT/recovered its merged model when quantization follows), OUT/source the unpruned teacher of a distillation.
`compress_summary.json` records the plan, parameter counts and held-out losses with 95% CIs; the
resolved config is OUT/config.yaml."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from tuneforge.compress.gates import GatesConfig, learned_scores
from tuneforge.compress.importance import Scores, block_influence, magnitude_scores, taylor_scores
from tuneforge.compress.prune import blocks, count_parameters, plan_from_scores, prune_model
from tuneforge.compress.quantize import QUANT_METHODS, check_quantize, quantize_model
from tuneforge.config import SEED, dtype_field, read_yaml, save_config
from tuneforge.data.seed import load_examples
from tuneforge.errors import ConfigError, suggest
from tuneforge.files import check_output_dir, run_directory, write_text_atomic
from tuneforge.hardware import resolve_precision
from tuneforge.intervals import paired_ratio_delta
from tuneforge.models import EMBEDDED_MODEL
from tuneforge.tokenisation import batch_stream, encode_examples
from tuneforge.train.sft import heldout_batches, heldout_with_ci

METHODS = {
    "magnitude": "summed |weight| of each unit (no data); layers by block influence on the calibration set",
    "taylor": "E[|∂L/∂h·h|] on the calibration set (seed 001 eqs. 25-26)",
    "gates": "hard-concrete gates trained with an L0 penalty on the calibration set (seed 001 eq. 24)",
}
RECOVERY = ("none", "sft", "distill")


def _check_choice(key: str, value: str, options) -> None:
    if value not in options:
        raise ConfigError(f"{key} '{value}' unknown.{suggest(value, options)} Use one of {', '.join(options)}")


@dataclass
class PruneConfig:
    method: str = field(default="taylor", metadata={"help": " | ".join(METHODS)})
    heads: float = field(
        default=0.0, metadata={"help": "share of query heads removed from every layer", "ge": 0, "lt": 1}
    )
    mlp: float = field(
        default=0.0, metadata={"help": "share of MLP channels removed from every layer", "ge": 0, "lt": 1}
    )
    layers: float = field(default=0.0, metadata={"help": "share of decoder layers removed", "ge": 0, "lt": 1})
    gates: GatesConfig = field(default_factory=GatesConfig)

    def __post_init__(self):
        _check_choice("prune.method", self.method, METHODS)


@dataclass
class CalibrationConfig:
    data: str = field(
        default="", metadata={"help": "calibration examples ('' = the source run's data.train, else seed:train)"}
    )
    domain: str = field(default="", metadata={"help": "keep only this domain's examples (domain-adaptive pruning)"})
    examples: int = field(default=64, metadata={"help": "examples drawn (seeded) from the calibration data", "ge": 1})
    max_length: int = field(default=256, metadata={"help": "tokens per example", "ge": 8})


@dataclass
class RecoveryConfig:
    method: str = field(default="none", metadata={"help": "none | sft (LoRA SFT) | distill (KL to the unpruned model)"})
    data: str = field(default="", metadata={"help": "training data ('' = the calibration data, all domains)"})
    steps: int = field(default=60, metadata={"help": "optimizer steps", "ge": 1})
    lr: float = field(default=5e-4, metadata={"help": "peak learning rate (LoRA)", "gt": 0})
    batch_size: int = field(default=4, metadata={"help": "examples per step", "ge": 1})
    r: int = field(default=16, metadata={"help": "LoRA rank", "ge": 1})
    temperature: float = field(default=4.0, metadata={"help": "distill: softmax temperature τ (seed: 3-5)", "gt": 0})
    kl_weight: float = field(default=0.5, metadata={"help": "distill: α in (1-α)·CE + α·τ²·KL", "ge": 0, "le": 1})

    def __post_init__(self):
        _check_choice("recovery.method", self.method, RECOVERY)


@dataclass
class CompressRunConfig:
    output_dir: str = field(default="", metadata={"help": "run directory ('' = runs/compress-<time>)"})
    source: str = field(
        default=EMBEDDED_MODEL,
        metadata={"help": "model name / directory / .gguf, or a train or demo run directory (its adapter merged)"},
    )
    dtype: str = dtype_field(
        "dtype the result is saved in (auto: bf16 where this hardware runs it natively, else fp32)"
    )
    prune: PruneConfig = field(default_factory=PruneConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)
    quantize: str = field(
        default="none", metadata={"help": "none | int8 | int4: weight-only, after pruning and recovery"}
    )
    eval: str = field(
        default="seed:test", metadata={"help": "held-out examples for the loss before and after ('' = none)"}
    )
    seed: int = field(default=0, metadata={"help": "calibration sample and recovery seed", **SEED})

    def __post_init__(self):
        _check_choice("quantize", self.quantize, ("none", *QUANT_METHODS))


def _run_data(source: str) -> str:
    """The training data of a train or demo run, or '': the data a demo built and trained on
    (RUN/data/train.jsonl), else the run config's data.train."""
    cfg_path = Path(source) / "config.yaml"
    if not cfg_path.exists():
        return ""
    if (Path(source) / "data" / "train.jsonl").is_file():
        return str(Path(source) / "data" / "train.jsonl")
    data = read_yaml(cfg_path, "run config")[0].get("data", {})
    train = data.get("train", "") if isinstance(data, dict) else ""
    return train if isinstance(train, str) else ""


def calibration_examples(cfg: CompressRunConfig) -> tuple[list, str]:
    """(examples, the spec they came from): the configured data, one domain of it if asked, a seeded sample."""
    spec = cfg.calibration.data or _run_data(cfg.source) or "seed:train"
    rows = load_examples(spec)
    if cfg.calibration.domain:
        domains = ", ".join(d or "''" for d in sorted({r.domain for r in rows}))
        rows = [r for r in rows if r.domain == cfg.calibration.domain]
        if not rows:
            raise ConfigError(
                f"calibration.domain={cfg.calibration.domain}: no example of that domain in {spec}; it has {domains}"
            )
    random.Random(cfg.seed).shuffle(rows)
    return rows[: cfg.calibration.examples], spec


def importance(model, tok, cfg: CompressRunConfig, examples: list) -> tuple[Scores, dict]:
    """The scores of the configured method, and what the method reports about itself."""
    c = cfg.calibration
    batches = heldout_batches(examples, tok, c.max_length, "assistant", size=4)
    if not batches:
        raise ConfigError(
            f"calibration: none of the {len(examples)} examples has an answer token within {c.max_length}"
        )
    if cfg.prune.method == "magnitude":
        s = magnitude_scores(model)
        if cfg.prune.layers:
            s.layers = block_influence(model, batches)
        return s, {}
    if cfg.prune.method == "taylor":
        return taylor_scores(model, batches), {}
    kinds = tuple(
        k for k, v in (("heads", cfg.prune.heads), ("channels", cfg.prune.mlp), ("layers", cfg.prune.layers)) if v
    )
    enc, _ = encode_examples(examples, tok, c.max_length, "assistant")
    stream = batch_stream(enc, cfg.prune.gates.batch_size, tok.pad_token_id, cfg.seed)
    s, closed, result = learned_scores(model, stream, cfg.prune.gates, kinds or ("channels",), "fp32")
    return s, {"closed_by_mask": closed, "gate_loss_first": result.losses[0], "gate_loss_last": result.final_loss}


def _heldout(model, tok, cfg: CompressRunConfig, examples) -> dict | None:
    return heldout_with_ci(model, tok, examples, cfg.calibration.max_length, seed=cfg.seed) if examples else None


def _loss_row(r: dict, base: dict | None) -> dict:
    if base is None:
        return {"loss": r["loss"], "ci": r["ci"]}
    d = paired_ratio_delta(base["sums"], r["sums"], r["units"])  # same examples, same target tokens
    return {"loss": r["loss"], "ci": r["ci"], "delta_vs_source": d}


def compress_model(cfg: CompressRunConfig) -> Path:
    """Prune (and optionally recover and quantize) `cfg.source`; returns the run directory."""
    import torch

    from tuneforge.evaluate.model_spec import check_model_spec, load_eval_model

    out = Path(cfg.output_dir or f"runs/compress-{time.strftime('%Y%m%d-%H%M%S')}")
    check_output_dir(out, "compress")
    check_model_spec(cfg.source)  # every input before any write: model, data, libraries
    examples, spec = calibration_examples(cfg)
    held = load_examples(cfg.eval) if cfg.eval else []
    if cfg.recovery.method != "none" and cfg.recovery.data:
        load_examples(cfg.recovery.data)
    if cfg.quantize != "none":
        check_quantize(cfg.quantize)
    model, tok, described = load_eval_model(cfg.source, "float32", "cpu")
    blocks(model)  # an architecture pruning cannot handle is refused here
    with run_directory(out, "compress"):
        save_config(cfg, out / "config.yaml")
        total = count_parameters(model)
        before = _heldout(model, tok, cfg, held)
        if cfg.recovery.method == "distill":  # the teacher is the unpruned model, as a directory
            model.save_pretrained(out / "source")
            tok.save_pretrained(out / "source")
        start = time.time()
        scores, extra = importance(model, tok, cfg, examples)
        p = cfg.prune
        plan = plan_from_scores(
            model, scores.heads, scores.channels, scores.layers, p.heads, p.mlp, p.layers, scores.kv
        )
        prune_model(model, plan)
        seconds = time.time() - start
        model.to(_save_dtype(cfg.dtype))
        after = _heldout(model, tok, cfg, held)  # of the model as saved, in its dtype
        staged = cfg.recovery.method != "none" or cfg.quantize != "none"
        pruned_dir = out / ("pruned" if staged else "model")
        model.save_pretrained(pruned_dir)
        tok.save_pretrained(pruned_dir)
        summary = {
            "source": cfg.source,
            "source_model": described,
            "method": p.method,
            "sparsity": {"heads": p.heads, "mlp": p.mlp, "layers": p.layers},
            "calibration": {"data": spec, "domain": cfg.calibration.domain, "examples": len(examples)},
            "params_source": total,
            "params": count_parameters(model),
            "plan": plan.to_dict(),
            "prune_seconds": round(seconds, 1),
            **extra,
            "heldout": {"data": cfg.eval, "source": _strip(before), "pruned": after and _loss_row(after, before)},
        }
        del model
        final = pruned_dir
        if cfg.recovery.method != "none":
            final = _recover(cfg, out, pruned_dir, spec, out / ("recovered" if cfg.quantize != "none" else "model"))
            m, t, _ = load_eval_model(str(final), "float32", "cpu")
            rec = _heldout(m, t, cfg, held)
            summary["heldout"]["recovered"] = rec and _loss_row(rec, before)
            summary["recovery"] = json.loads((out / "recovery" / "train_summary.json").read_text())
            del m
        if cfg.quantize != "none":
            final = quantize_model(final, cfg.quantize, out / "model")
            summary["quantize"] = cfg.quantize
        summary["model"] = str(Path(final).resolve())
        write_text_atomic(out / "compress_summary.json", json.dumps(summary, indent=2))
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return out


def _strip(r: dict | None) -> dict | None:
    return r and {"loss": r["loss"], "ci": r["ci"]}


def _save_dtype(dtype: str):
    import torch

    from tuneforge.hardware import resolve_dtype

    return {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(resolve_dtype(dtype, "cpu"), torch.float32)


def _recover(cfg: CompressRunConfig, out: Path, pruned: Path, calib_spec: str, merged: Path) -> Path:
    """LoRA SFT, or distillation from the unpruned model, on the one loop (`tuneforge train`), merged."""
    from tuneforge.train.adapters import AdapterConfig
    from tuneforge.train.config import ModelConfig, SFTDataConfig
    from tuneforge.train.distill import DistillOptions
    from tuneforge.train.export import export_run
    from tuneforge.train.loop import TrainConfig
    from tuneforge.train.run import train_model
    from tuneforge.train.run_config import TrainRunConfig
    from tuneforge.train.sft import SFTOptions

    r = cfg.recovery
    objective = (
        DistillOptions(name="distill", teacher=str(out / "source"), temperature=r.temperature, kl_weight=r.kl_weight)
        if r.method == "distill"
        else SFTOptions()
    )
    train_cfg = TrainRunConfig(
        output_dir=str(out / "recovery"),
        model=ModelConfig(name=str(pruned), dtype="float32"),
        data=SFTDataConfig(train=r.data or calib_spec, eval=cfg.eval),
        adapter=AdapterConfig(method="lora", r=r.r, alpha=2 * r.r, target_modules=["all-linear"]),
        objective=objective,
        train=TrainConfig(
            steps=r.steps,
            batch_size=r.batch_size,
            lr=r.lr,
            max_length=cfg.calibration.max_length,
            seed=cfg.seed,
            precision=resolve_precision("auto", "cpu"),
            log_every=max(1, r.steps // 10),
        ),  # fmt: skip
    )
    run = train_model(train_cfg)
    return export_run(run, merged, merge=True, dtype=str(_save_dtype(cfg.dtype)).removeprefix("torch."))
