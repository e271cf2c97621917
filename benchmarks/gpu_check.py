"""GPU check: does the training and generation path work on this accelerator, and how fast?

Sized to finish in a few minutes on one GPU with no internet (the embedded SmolLM2-135M-Instruct,
the shipped seed data). Each row trains `--steps` optimizer steps in the one loop with
`precision: auto` and reports tokens/s and the peak accelerator memory of that row:

  lora            LoRA r=16 on every linear layer
  lora+gc         the same with train.gradient_checkpointing (peak memory should drop)
  full            full fine-tuning (fp32 master weights)
  full+gc         the same with gradient checkpointing
  qlora           LoRA over a 4-bit NF4 base (only where bitsandbytes is installed; else "skipped")
  generate        batched greedy generation of the shipped test prompts (new tokens/s)

A row that fails records its error and the others still run. CPU works too (slowly), so the
script itself is tested in CI with `--steps 1 --prompts 2`.

Usage:  python benchmarks/gpu_check.py [--steps 20] [--batch-size 8] [--max-length 256] [--prompts 64]
Writes: benchmarks/results/gpu_check.json (or --out): device name, torch/CUDA versions, the rows.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _peak_reset(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib(device: str) -> float | None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        return round(torch.cuda.max_memory_allocated() / 1024**3, 3)
    return None


def train_row(method: str, gc: bool, device: str, args) -> dict:
    from tuneforge.data.seed import load_examples
    from tuneforge.models import load_model
    from tuneforge.tokenisation import batch_stream, encode_examples
    from tuneforge.train.adapters import AdapterConfig, apply_adapter
    from tuneforge.train.loop import TrainConfig, train_loop
    from tuneforge.train.sft import SFT

    model, tok = load_model(device=device, load_in_4bit=method == "qlora")
    encs, _ = encode_examples(load_examples("seed:train"), tok, args.max_length)
    model = apply_adapter(model, AdapterConfig(method=method, r=16))
    cfg = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        max_length=args.max_length,
        warmup_ratio=0.0,
        log_every=max(1, args.steps),
        gradient_checkpointing=gc,
    )
    _peak_reset(device)
    start = time.perf_counter()
    result = train_loop(model, batch_stream(encs, args.batch_size, tok.pad_token_id), SFT, cfg)
    seconds = time.perf_counter() - start
    return {
        "steps": result.steps,
        "loss_first": round(result.losses[0], 4),
        "loss_last": round(result.losses[-1], 4),
        "tokens_per_s": round(result.tokens / seconds, 1),
        "seconds": round(seconds, 2),
        "peak_gib": _peak_gib(device),
        "trainable_params": result.trainable_params,
    }


def generate_row(device: str, args) -> dict:
    from tuneforge.data.seed import load_examples
    from tuneforge.generation import GenerationConfig, generate_answers
    from tuneforge.models import load_model
    from tuneforge.records import EvalItem

    model, tok = load_model(device=device)
    items = [EvalItem.from_example(e) for e in load_examples("seed:test")][: args.prompts]
    _peak_reset(device)
    start = time.perf_counter()
    gens = generate_answers(
        model, tok, items, GenerationConfig(max_new_tokens=args.max_new_tokens, batch_size=args.prompts), "base"
    )
    seconds = time.perf_counter() - start
    new_tokens = sum(len(tok(g.generation, add_special_tokens=False)["input_ids"]) for g in gens)
    return {
        "answers": len(gens),
        "new_tokens_per_s": round(new_tokens / seconds, 1),
        "seconds": round(seconds, 2),
        "peak_gib": _peak_gib(device),
    }


def main() -> None:
    import torch

    from tuneforge.hardware import resolve_precision
    from tuneforge.models import default_device

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu_check.json")
    ap.add_argument("--smoke", action="store_true", help="1 step, 2 prompts, JSON to a temporary file (CI)")
    args = ap.parse_args()
    if args.smoke:  # every row runs on whatever device there is; the measured results stay untouched
        args.steps, args.batch_size, args.max_length, args.prompts, args.max_new_tokens = 1, 2, 64, 2, 8
        args.out = Path(tempfile.mkdtemp(prefix="tuneforge-smoke-")) / "gpu_check.json"
    device = default_device() if args.device == "auto" else args.device
    out = {
        "device": torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "precision": resolve_precision("auto", device),
        "bitsandbytes": importlib.util.find_spec("bitsandbytes") is not None,
        "args": {k: v for k, v in vars(args).items() if k != "out"},
        "rows": {},
    }
    plan = [("lora", False), ("lora", True), ("full", False), ("full", True), ("qlora", False)]
    for method, gc in plan:
        name = method + ("+gc" if gc else "")
        if method == "qlora" and not out["bitsandbytes"]:
            out["rows"][name] = {"skipped": "bitsandbytes is not installed"}
            continue
        try:
            out["rows"][name] = train_row(method, gc, device, args)
        except Exception as exc:  # a failed row is recorded, the others still run
            out["rows"][name] = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-2000:]}
        print(name, json.dumps(out["rows"][name])[:300], flush=True)
    try:
        out["rows"]["generate"] = generate_row(device, args)
    except Exception as exc:
        out["rows"]["generate"] = {"error": f"{type(exc).__name__}: {exc}"}
    print("generate", json.dumps(out["rows"]["generate"]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
