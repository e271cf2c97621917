"""`tuneforge compress compare label=spec …`: one table of size, speed and quality for any set of
variants of a model — the original first, then pruned, recovered, INT8/INT4 and GGUF quantisations.

Per variant: parameters (of the architecture, so a 4-bit model counts its weights, not its packed
bytes), weight bytes on disk, peak resident memory and generation tokens/s measured in a fresh process
on this CPU (`measure.py`: llama.cpp for .gguf, transformers otherwise), the seed's inference cost
C_inf = 2N × throughput (FLOP/s spent generating), the held-out loss per target token with a bootstrap
95% CI and its paired change against the original, and BLEU / ROUGE-L from `tuneforge eval` (stored
answers, resumable) with paired CIs against the original. A .gguf variant's quality is measured on the
weights llama.cpp stores, dequantised by transformers (its speed on llama.cpp itself).

Writes OUT/compression.json, OUT/compression.md, OUT/size_vs_quality.png and OUT/eval (the eval run:
answers, scores, report)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tuneforge.compress.report_section import format_table
from tuneforge.config import SEED, dtype_field, save_config
from tuneforge.data.seed import load_examples
from tuneforge.errors import ConfigError
from tuneforge.evaluate.model_spec import check_model_spec, load_eval_model, parse_models
from tuneforge.evaluate.paired_deltas import compare_runs
from tuneforge.evaluate.run import EvalRunConfig, run_eval
from tuneforge.evaluate.test_set import TestSetConfig, load_test_items
from tuneforge.files import run_directory, write_text_atomic
from tuneforge.generation import GenerationConfig
from tuneforge.intervals import paired_ratio_delta
from tuneforge.run_metrics import read_metrics
from tuneforge.train.sft import heldout_with_ci


@dataclass
class CompressCompareConfig:
    output_dir: str = field(default="runs/compress-compare", metadata={"help": "output directory"})
    variants: list[str] = field(
        default_factory=list,
        metadata={
            "help": "label=spec, the original first: a model dir, a compress/train/demo run dir, or a .gguf",
            "min_len": 2,
        },
    )
    data: TestSetConfig = field(default_factory=TestSetConfig)
    heldout: str = field(default="seed:test", metadata={"help": "examples for the held-out loss ('' = none)"})
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    metrics: list[str] = field(default_factory=lambda: ["bleu", "rouge_l"], metadata={"help": "eval metrics"})
    speed_prompts: int = field(default=5, metadata={"help": "prompts timed per variant (after one warm-up)", "ge": 1})
    speed_tokens: int = field(default=64, metadata={"help": "new tokens per timed prompt", "ge": 1})
    speed_rounds: int = field(
        default=3, metadata={"help": "timed passes over the prompts; the median is kept", "ge": 1}
    )
    threads: int = field(
        default=0, metadata={"help": "threads for the speed runs (0 = the CPUs the process may use)", "ge": 0}
    )
    max_length: int = field(default=512, metadata={"help": "tokens per held-out example", "ge": 8})
    dtype: str = dtype_field("dtype of unquantised variants")
    bootstrap: int = field(default=1000, metadata={"help": "bootstrap resamples", "ge": 0})
    seed: int = field(default=0, metadata={"help": "bootstrap seed", **SEED})


def resolve_variant(spec: str) -> str:
    """A compress run directory stands for its model; a model name for its local directory (the
    embedded model's converted copy, a Hub download); anything else is a model spec as it is."""
    from tuneforge.models import resolve_model

    summary = Path(spec) / "compress_summary.json"
    if summary.exists():
        return str((summary.parent / json.loads(summary.read_text())["model"]).resolve())
    return spec if Path(spec).exists() else resolve_model(spec)


def architecture_params(spec: str) -> int:
    """Parameters of the variant's architecture (tied embeddings once; 4-bit weights counted unpacked)."""
    if spec.endswith(".gguf"):
        import gguf

        reader = gguf.GGUFReader(spec)
        return int(sum(int(t.n_elements) for t in reader.tensors))
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from tuneforge.compress.prune import count_parameters

    path = Path(spec)
    if (path / "adapter").is_dir():  # a train/demo run: its base, which merging keeps the shape of
        from tuneforge.config import read_yaml
        from tuneforge.models import resolve_model

        path = Path(resolve_model(read_yaml(path / "config.yaml", "run config")[0]["model"]["name"]))
    cfg = AutoConfig.from_pretrained(path)
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    with torch.device("meta"):
        return count_parameters(AutoModelForCausalLM.from_config(cfg))


def weight_bytes(spec: str) -> int:
    """Bytes of the weight files a deployment loads (a run: its adapter and its base's weights)."""
    path = Path(spec)
    if path.is_file():
        return path.stat().st_size
    files = [
        f
        for f in path.rglob("*")
        if f.suffix in (".safetensors", ".bin") and "checkpoint" not in str(f.relative_to(path))
    ]
    if (path / "adapter").is_dir():
        from tuneforge.config import read_yaml
        from tuneforge.models import resolve_model

        base = Path(resolve_model(read_yaml(path / "config.yaml", "run config")[0]["model"]["name"]))
        files = [f for f in files if f.parent.name == "adapter"] + [
            f for f in base.rglob("*") if f.suffix in (".safetensors", ".bin")
        ]
    if not files:
        raise ConfigError(
            f"{spec}: no weight files (*.safetensors, *.bin) to measure; give a model directory or a .gguf"
        )
    return sum(f.stat().st_size for f in files)


def speed(spec: str, prompts: list, cfg: CompressCompareConfig) -> dict:
    """Run measure.py on the variant in a fresh process; its JSON."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(prompts, f)
    cmd = [sys.executable, "-m", "tuneforge.compress.measure", spec, f.name, "--tokens", str(cfg.speed_tokens),
           "--dtype", cfg.dtype, "--rounds", str(cfg.speed_rounds)] + (["--threads", str(cfg.threads)] if cfg.threads else [])  # fmt: skip
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    finally:
        Path(f.name).unlink()
    if r.returncode:
        raise ConfigError(f"measuring {spec} failed (exit {r.returncode}): {r.stderr.strip()[-600:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _heldout(spec: str, cfg: CompressCompareConfig, examples) -> dict:
    model, tok, _ = load_eval_model(spec, cfg.dtype, "cpu")
    return heldout_with_ci(model, tok, examples, cfg.max_length, max(cfg.bootstrap, 1), cfg.seed)


def compare_variants(cfg: CompressCompareConfig) -> Path:
    """Measure every variant (module docstring); returns the output directory."""
    variants = [(label, resolve_variant(spec)) for label, spec in parse_models(cfg.variants)]
    for _, spec in variants:
        check_model_spec(spec)
    items = load_test_items(cfg.data)
    held = load_examples(cfg.heldout) if cfg.heldout else []
    prompts = [[{"role": m.role, "content": m.content} for m in i.messages] for i in items[: cfg.speed_prompts + 1]]
    out = Path(cfg.output_dir)
    with run_directory(out, "compress compare"):
        save_config(cfg, out / "config.yaml")
        eval_cfg = EvalRunConfig(
            output_dir=str(out / "eval"), models=[f"{label}={spec}" for label, spec in variants], data=cfg.data,
            dtype=cfg.dtype, generation=cfg.generation, metrics=cfg.metrics, bootstrap=cfg.bootstrap, seed=cfg.seed,
        )  # fmt: skip
        run_eval(eval_cfg)
        scored = read_metrics(out / "eval")
        rows = []
        ref = None
        for label, spec in variants:
            row: dict = {"label": label, "spec": spec}
            row["params"] = architecture_params(spec)
            row["weight_bytes"] = weight_bytes(spec)
            row.update(speed(spec, prompts, cfg))
            row["c_inf_gflops"] = 2 * row["params"] * row["tokens_per_s"] / 1e9
            if held:
                h = _heldout(spec, cfg, held)
                ref = ref or h
                row["heldout_loss"] = {"loss": h["loss"], "ci": h["ci"]}
                if h is not ref:
                    if h["units"] != ref["units"]:  # another tokenizer: per-token losses are not paired
                        raise ConfigError(
                            f"variant {label} tokenizes the held-out set differently from {variants[0][0]}"
                        )
                    row["heldout_loss"]["delta"] = paired_ratio_delta(
                        ref["sums"], h["sums"], h["units"], n_boot=max(cfg.bootstrap, 1), seed=cfg.seed
                    )
            if label != variants[0][0]:
                c = compare_runs(f"{out / 'eval'}:{variants[0][0]}", f"{out / 'eval'}:{label}", cfg.bootstrap, cfg.seed)
                row["paired"] = {m: c["metrics"][m] for m in cfg.metrics if m in c["metrics"]}
            row["scores"] = {m: scored.models[label].overall.get(m) for m in cfg.metrics}
            rows.append(row)
        result = {"variants": rows, "reference": variants[0][0], "heldout": cfg.heldout, "test": cfg.data.test,
                  "n_test_items": len(items), "cpu": _cpu()}  # fmt: skip
        write_text_atomic(out / "compression.json", json.dumps(result, indent=2))
        _into_eval_report(out / "eval", result)
        write_text_atomic(out / "compression.md", format_table(result))
        plot_size_vs_quality(result, out / "size_vs_quality.png")
    return out


def _into_eval_report(eval_dir: Path, result: dict) -> None:
    """The table joins the eval run's metrics.json and report (and so `report compare` over it)."""
    from tuneforge.compress.report_section import register
    from tuneforge.evaluate.report import write_report
    from tuneforge.run_metrics import write_metrics

    metrics = read_metrics(eval_dir)
    metrics.compression = result
    write_metrics(eval_dir, metrics)
    register()
    write_report(eval_dir)


def _cpu() -> str:
    from tuneforge.hardware import describe_environment

    env = describe_environment(measure=False)
    return f"{env['model']} ({env['physical_cores']} cores; {', '.join(env['flags'])})"


def plot_size_vs_quality(result: dict, path: Path) -> None:
    """The size-vs-quality chart (`report_section.size_vs_quality_figure`) as a PNG."""
    from tuneforge.compress.report_section import size_vs_quality_figure
    from tuneforge.evaluate import report_kit as kit

    fig = size_vs_quality_figure(result)
    fig.savefig(path, dpi=120)
    kit.pyplot().close(fig)
