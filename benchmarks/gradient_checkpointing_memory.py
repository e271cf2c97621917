"""Peak memory and step time of LoRA training with and without `train.gradient_checkpointing`, side
by side in one run.

Each variant runs in its own fresh process (so one's peak cannot hide the other's): the embedded
SmolLM2-135M-Instruct in the dtype and precision `auto` picks on this machine, LoRA r=16 on every
linear layer, `--steps` optimizer steps on rows of `--max-length` tokens (the shipped training
examples packed, so every row is full and activations dominate). Peak memory is the process's
maximum resident set size (`ru_maxrss`); on CPU that is where activations live.

Usage:  python benchmarks/gradient_checkpointing_memory.py [--steps 3] [--batch-size 8] [--max-length 512]
Writes: benchmarks/results/gradient_checkpointing_memory.json (or --out), naming the CPU.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one(gc: bool, steps: int, batch_size: int, max_length: int) -> dict:
    from tuneforge.data.seed import load_examples
    from tuneforge.models import load_model
    from tuneforge.tokenisation import batch_stream, encode_examples
    from tuneforge.train.adapters import AdapterConfig, apply_adapter
    from tuneforge.train.loop import TrainConfig, train_loop
    from tuneforge.train.sft import SFT

    model, tok = load_model()
    encs, _ = encode_examples(load_examples("seed:train"), tok, max_length)
    model = apply_adapter(model, AdapterConfig(method="lora", r=16))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cfg = TrainConfig(
        steps=steps, batch_size=batch_size, max_length=max_length, packing=True, warmup_ratio=0.0, log_every=steps,
        gradient_checkpointing=gc,
    )  # fmt: skip
    start = time.perf_counter()
    result = train_loop(model, batch_stream(encs, batch_size, tok.pad_token_id, pack_length=max_length), SFT, cfg)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "gradient_checkpointing": gc,
        "peak_rss_mib": round(peak / 1024, 1),
        "peak_rss_during_training_growth_mib": round((peak - before) / 1024, 1),
        "seconds_per_step": round(seconds / steps, 2),
        "losses": [round(x, 4) for x in result.losses],
    }


def main() -> None:
    from tuneforge.hardware import describe_environment, resolve_precision

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--variant", choices=["off", "on"], help=argparse.SUPPRESS)  # one child process
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gradient_checkpointing_memory.json")
    ap.add_argument("--smoke", action="store_true", help="1 step of 2 short rows, JSON to a temporary file (CI)")
    a = ap.parse_args()
    if a.smoke and not a.variant:  # every line runs; the measured results stay untouched
        a.steps, a.batch_size, a.max_length = 1, 2, 64
        a.out = Path(tempfile.mkdtemp(prefix="tuneforge-smoke-")) / "gradient_checkpointing_memory.json"
    if a.variant:
        print(json.dumps(one(a.variant == "on", a.steps, a.batch_size, a.max_length)))
        return
    rows = {}
    for variant in ("off", "on"):
        args = [sys.executable, __file__, "--variant", variant, "--steps", str(a.steps), "--batch-size",
                str(a.batch_size), "--max-length", str(a.max_length)]  # fmt: skip
        proc = subprocess.run(args, capture_output=True, text=True, check=True)
        rows[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(variant, rows[variant], flush=True)
    env = describe_environment(measure=False)
    out = {
        "cpu": env["model"],
        "flags": list(env["flags"]),
        "precision": resolve_precision("auto", "cpu"),
        "args": {"steps": a.steps, "batch_size": a.batch_size, "max_length": a.max_length},
        "rows": rows,
        "peak_growth_ratio_on_over_off": round(
            rows["on"]["peak_rss_during_training_growth_mib"]
            / max(rows["off"]["peak_rss_during_training_growth_mib"], 1e-9),
            3,
        ),
        "step_time_ratio_on_over_off": round(rows["on"]["seconds_per_step"] / rows["off"]["seconds_per_step"], 3),
        "same_losses": rows["on"]["losses"] == rows["off"]["losses"],
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2))
    print(json.dumps({k: v for k, v in out.items() if k != "rows"}, indent=2))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
