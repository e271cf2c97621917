"""Compression experiment (issue 33): how small can the demo's tuned model get, and what does it cost?

From one tuned run (the demo's LoRA on the embedded SmolLM2-135M-Instruct, or `--run`), side by side
in one `tuneforge compress compare`:

  original        the run's adapter merged into its base (`export --merge`), the reference of every Δ
  p25, p50        25% / 50% of the query heads and MLP channels pruned (gradient × activation scores
                  on 64 examples of seed:train, the human-written part of the demo's training data;
                  heads to the nearest shape the 3 KV groups allow)
  p25-kd, p50-kd  the same, then recovered by distillation from the original (τ = 4, LoRA, 60 steps)
  int8, int4      bitsandbytes weight-only LLM.int8 / NF4 of the original
  gguf-f16, gguf-q8_0, gguf-q4_k_m   `export --gguf` (q4_k_m through llama.cpp's own quantiser)

Writes OUT/cmp/compression.{json,md} and size_vs_quality.png, and copies the JSON (naming the CPU)
to benchmarks/results/compression.json (or --results). `--smoke` runs the same steps on a tiny random
model with two variants in a temporary folder (CI).

Usage:  python benchmarks/compression.py [--run RUN] [--out DIR] [--items-per-domain 8] [--smoke]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _compress(source: str, out: Path, *overrides: str) -> str:
    from tuneforge.compress.run import CompressRunConfig, compress_model
    from tuneforge.config import load_config

    if not (out / "compress_summary.json").exists():  # resumable: a finished variant is kept
        compress_model(load_config(CompressRunConfig, None, [f"source={source}", f"output_dir={out}", *overrides]))
    return str(out)


def _variants(run: Path, out: Path, smoke: bool) -> list[str]:
    from tuneforge.compress.quantize import quantize_model

    orig = out / "original"
    if not orig.exists():
        _merged(run, orig)
    found = [f"original={orig}"]
    rec = ["recovery.method=distill", "recovery.steps=3" if smoke else "recovery.steps=60", "recovery.temperature=4"]
    for s in (0.25, 0.5) if not smoke else (0.5,):
        tag = f"p{int(100 * s)}"
        # calibration (and recovery) on the run's human-written training data, the shipped seed:train
        prune = [f"prune.heads={s}", f"prune.mlp={s}"] + (["eval=''"] if smoke else ["calibration.data=seed:train"])
        found.append(f"{tag}={_compress(str(run), out / tag, *prune)}")
        if not smoke:
            found.append(f"{tag}-kd={_compress(str(run), out / (tag + '-kd'), *prune, *rec)}")
    if smoke:
        return found
    for method in ("int8", "int4"):
        if not (out / method).exists():
            quantize_model(orig, method, out / method)
        found.append(f"{method}={out / method}")
    for quant in ("f16", "q8_0", "q4_k_m"):
        path = out / "gguf" / f"model-{quant}.gguf"
        if not path.exists():
            _gguf(run, orig, path, quant)
        found.append(f"gguf-{quant}={path}")
    return found


def _merged(run: Path, out: Path) -> None:
    """The run's adapter merged into its base, saved as a model directory (train or demo run)."""
    from tuneforge.evaluate.model_spec import load_eval_model

    model, tok, _ = load_eval_model(str(run), "auto", "cpu")
    model.save_pretrained(out)
    tok.save_pretrained(out)


def _gguf(run: Path, merged: Path, path: Path, quant: str) -> None:
    """`export --gguf`'s writer on the merged model (the tokenizer copied from the run's base GGUF)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneforge.config import read_yaml
    from tuneforge.train.gguf_export import source_gguf, write_gguf

    base = source_gguf(read_yaml(run / "config.yaml", "run config")[0]["model"]["name"])
    model = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_gguf(model, AutoTokenizer.from_pretrained(merged), base, path, quant, name=f"{run.name} (tuneforge)")


def _smoke_run(tmp: Path) -> Path:
    """A finished tiny LoRA run to compress, in seconds."""
    from tuneforge.config import load_config
    from tuneforge.data.io import write_records
    from tuneforge.models import tiny_model, tiny_tokenizer
    from tuneforge.records import Example, Message
    from tuneforge.train.run import train_model
    from tuneforge.train.run_config import TrainRunConfig

    tok = tiny_tokenizer()
    tiny_model(tok, hidden=64, layers=2).save_pretrained(tmp / "model")
    tok.save_pretrained(tmp / "model")
    rows = [Example(messages=[Message("user", f"Question {i}?"), Message("assistant", f"Answer {i}.")], id=str(i),
                    domain="finance") for i in range(8)]  # fmt: skip
    write_records(rows, tmp / "data.jsonl")
    cfg = load_config(TrainRunConfig, None, [f"output_dir={tmp / 'run'}", f"model.name={tmp / 'model'}",
                                             "model.dtype=float32", f"data.train={tmp / 'data.jsonl'}",
                                             f"data.eval={tmp / 'data.jsonl'}", "train.steps=2",
                                             "train.precision=fp32", "adapter.r=4"])  # fmt: skip
    return train_model(cfg)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--run", type=Path, help="a finished train or demo run (default: run the demo)")
    p.add_argument("--out", type=Path, default=Path("runs/compression"))
    p.add_argument("--items-per-domain", type=int, default=8, help="test items per domain for BLEU/ROUGE-L")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "compression.json")
    p.add_argument("--smoke", action="store_true", help="a tiny random model, two variants, a temporary folder")
    a = p.parse_args(argv)
    from tuneforge.compress.table import CompressCompareConfig, compare_variants
    from tuneforge.config import load_config

    tmp = Path(tempfile.mkdtemp(prefix="tuneforge-smoke-")) if a.smoke else None
    out = tmp / "exp" if tmp else a.out
    run = _smoke_run(tmp) if tmp else a.run
    if run is None:
        from tuneforge.demo import DemoConfig, run_demo

        run = run_demo(load_config(DemoConfig, ROOT / "configs" / "demo.yaml", [f"output_dir={out / 'demo'}"]))
    variants = _variants(Path(run), out, a.smoke)
    data = (
        [
            f"data.test={tmp / 'data.jsonl'}",
            f"heldout={tmp / 'data.jsonl'}",
            "generation.max_new_tokens=4",
            "speed_prompts=2",
            "speed_tokens=4",
            "bootstrap=20",
        ]  # fmt: skip
        if tmp
        else [f"data.test_per_domain={a.items_per_domain}", "generation.max_new_tokens=64", "speed_prompts=5"]
    )
    cfg = load_config(
        CompressCompareConfig, None, [f"output_dir={out / 'cmp'}", f"variants=[{','.join(variants)}]", *data]
    )
    cmp = compare_variants(cfg)
    print((cmp / "compression.md").read_text())
    results = tmp / "tuneforge-smoke-compression.json" if tmp else a.results
    shutil.copyfile(cmp / "compression.json", results)
    print(f"wrote {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
