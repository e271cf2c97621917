"""Training throughput: tuneforge's loop vs TRL's SFTTrainer, side by side in one run.

Same model (the embedded SmolLM2-135M-Instruct), same data (the shipped train split,
completion-only loss), same adapter (LoRA r=8, alpha 16, no dropout, on every linear layer), about
2,000 real tokens per optimizer step for both:

  tuneforge  batches of 16 length-grouped examples (right padding), eager attention, the fused
             LoRA forward, logits only at target positions, `dtype: auto` / `precision: auto`
             (bf16 where this CPU runs it natively, else fp32) — `configs/lora.yaml`'s engine.
  trl        SFTTrainer with its best CPU settings: packing (best-fit decreasing) with padding-free
             batches of 4 rows × 512 tokens, SDPA attention (faster than eager for TRL here), fp32
             adapter weights as TRL keeps them, and the faster precision *for TRL on this CPU*:
             where bf16 is native both bf16 and fp32 are run and the faster counts; where bf16 is
             emulated (~70x slower than fp32) only fp32 is run.

Each framework runs in its own child process (so peak RSS is its own), alternating order over
`--rounds` to spread the VM's noise; the matmul peak of the dtype each child computes in is
measured in the parent before it. Throughput counts real (non-padding) tokens over the timed steps
after `--warmup` steps. The JSON names the CPU, its ISA flags and each run's precision.

"Fraction of the bound" = tokens/s × 4·N / matmul peak *of the dtype used*, where N counts the weights of every
linear layer including the LM head (forward 2N + backward through activations 2N FLOPs per token;
LoRA's own FLOPs and attention are left out, so it is a lower bound, the same for both).

Usage:  python benchmarks/train_throughput.py [--rounds 2] [--steps 8] [--warmup 2] [--compile]
        (--compile adds a third run with train.compile=true; its compile time is reported apart)
Writes: benchmarks/results/train_throughput.json (or --out)
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LORA = {"r": 8, "alpha": 16, "dropout": 0.0}


def _auto_precision() -> str:
    from tuneforge.hardware import auto_precision

    return auto_precision("cpu").precision


PRECISION_AUTO = _auto_precision()


def matmul_peak_gflops(dtype: str = "bfloat16", n: int = 2048, reps: int = 10, trials: int = 5) -> float:
    """Best sustained GEMM rate of this process in `dtype` (GFLOP/s)."""
    import torch

    if dtype == "bfloat16" and PRECISION_AUTO != "bf16":
        n, reps, trials = 512, 1, 1  # emulated bf16: one small product tells the (tiny) rate
    a, b = torch.randn(n, n, dtype=getattr(torch, dtype)), torch.randn(n, n, dtype=getattr(torch, dtype))
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(trials):
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = max(best, reps * 2 * n**3 / (time.perf_counter() - t))
    return best / 1e9


def cpu_times() -> tuple[int, int]:
    """(total, steal) jiffies from /proc/stat (zeros where unavailable)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return sum(fields[:8]), fields[7]
    except (OSError, IndexError, ValueError):
        return 0, 0


def linear_weights(model) -> int:
    import torch

    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def load_data():
    from tuneforge.data.seed import load_examples

    return load_examples("seed:train")


ABLATIONS = {
    "no_fused_lora": "PEFT's own LoRA forward instead of the fused one",
    "full_logits": "logits at every position instead of only where a target is predicted",
    "no_length_grouping": "random batches instead of length-grouped ones (more padding)",
    "sdpa": "SDPA attention instead of eager",
}


def worker_tuneforge(
    steps: int, warmup: int, precision: str = "auto", compile_: bool = False, ablate: str = ""
) -> dict:
    """tuneforge's loop as `configs/lora.yaml` runs it; `ablate` turns one of its speed-ups off."""
    import random

    import tuneforge.tokenisation as sft  # encoding, batching and the target counts the SFT loss uses
    from tuneforge.hardware import resolve_precision
    from tuneforge.models import load_model
    from tuneforge.train.adapters import AdapterConfig, apply_adapter
    from tuneforge.train.loop import Objective, TrainConfig, train_loop
    from tuneforge.train.sft import SFT

    precision = resolve_precision(precision, "cpu")
    attn = "sdpa" if ablate == "sdpa" else "eager"
    model, tok = load_model("smollm2-135m-instruct", "bfloat16" if precision == "bf16" else "float32", attn, "cpu")
    n_linear = linear_weights(model)
    enc, _ = sft.encode_examples(load_data(), tok, 512, "assistant")
    model = apply_adapter(model, AdapterConfig(method="lora", target_modules=["all-linear"], **LORA))
    objective = SFT
    if ablate == "no_fused_lora":
        from peft.tuners.lora.layer import Linear

        for m in model.modules():
            if type(m) is Linear:
                del m.forward  # back to PEFT's own forward
    elif ablate == "full_logits":
        import torch

        def full_logits_loss(m, batch):
            logits = m(**sft.model_inputs(batch)).logits[:, :-1]  # (B, T-1, V)
            return torch.nn.functional.cross_entropy(
                logits.float().transpose(1, 2), batch["labels"][:, 1:], ignore_index=sft.IGNORE, reduction="sum"
            )

        objective = Objective("sft", full_logits_loss, sft.count_targets)
    elif ablate == "no_length_grouping":

        def random_batches(encoded, batch_size, seed, epoch):
            order = list(encoded)
            random.Random(seed * 100_003 + epoch).shuffle(order)
            return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]

        sft.length_grouped_batches = random_batches
    cfg = TrainConfig(
        steps=warmup + steps,
        batch_size=16,
        lr=2e-4,
        warmup_ratio=0.0,
        max_length=512,
        log_every=1,
        precision=precision,
        compile=compile_,
    )
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log.jsonl"
        result = train_loop(model, sft.batch_stream(enc, 16, tok.pad_token_id, seed=0), objective, cfg, log_path=log)
        rows = [json.loads(line) for line in log.read_text().splitlines()]
    start, end = rows[warmup - 1], rows[-1]
    tokens = end["tokens_seen"] - start["tokens_seen"]
    seconds = end["elapsed_s"] - start["elapsed_s"]
    return {
        "tokens_per_s": tokens / seconds,
        "timed_tokens": tokens,
        "timed_seconds": seconds,
        "warmup_seconds": start["elapsed_s"],
        "tokens_per_step": tokens / steps,
        "first_loss": result.losses[0],
        "last_loss": result.losses[-1],
        "n_linear": n_linear,
        "precision": precision,
        "settings": f"batch 16 length-grouped examples, eager, fused LoRA, precision auto -> {precision}"
        + (", train.compile=true (compile time is in warmup_seconds)" if compile_ else "")
        + (f"; ablation: {ABLATIONS[ablate]}" if ablate else ""),
    }


def worker_trl(steps: int, warmup: int, precision: str = "bf16") -> dict:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from tuneforge.models import load_model

    bf16 = precision == "bf16"
    model, tok = load_model("smollm2-135m-instruct", "bfloat16" if bf16 else "float32", "sdpa", "cpu")
    n_linear = linear_weights(model)
    rows = [
        {
            "prompt": [{"role": m.role, "content": m.content} for m in ex.messages[:-1]],
            "completion": [{"role": "assistant", "content": ex.messages[-1].content}],
        }
        for ex in load_data()
    ]

    class Clock(TrainerCallback):
        def __init__(self):
            self.seconds, self.losses = [], []

        def on_step_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.seconds.append(time.perf_counter() - self.t)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                self.losses.append(logs["loss"])

    clock, step_tokens = Clock(), []
    args = SFTConfig(
        output_dir=tempfile.mkdtemp(),
        max_steps=warmup + steps,
        per_device_train_batch_size=4,
        max_length=512,
        packing=True,
        bf16=bf16,
        use_cpu=True,
        learning_rate=2e-4,
        lr_scheduler_type="constant",
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        dataloader_num_workers=0,
        seed=0,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows * 8),
        processing_class=tok,
        peft_config=LoraConfig(
            r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
        ),
        callbacks=[clock],
    )
    collator = trainer.data_collator

    def counting_collator(features):
        batch = collator(features)
        mask = batch.get("attention_mask")
        step_tokens.append(int(mask.sum()) if mask is not None else int(batch["input_ids"].numel()))
        return batch

    trainer.data_collator = counting_collator
    trainer.train()
    assert "position_ids" in collator([trainer.train_dataset[0]]), "TRL did not use padding-free batches"
    timed = clock.seconds[warmup:]
    tokens = sum(step_tokens[warmup : warmup + len(timed)])
    return {
        "tokens_per_s": tokens / sum(timed),
        "timed_tokens": tokens,
        "timed_seconds": sum(timed),
        "tokens_per_step": tokens / len(timed),
        "first_loss": clock.losses[0],
        "last_loss": clock.losses[-1],
        "n_linear": n_linear,
        "precision": precision,
        "settings": f"packing bfd, padding-free 4 x 512, sdpa, {precision}",
    }


WORKERS = {
    "tuneforge": worker_tuneforge,
    "trl_bf16": lambda steps, warmup: worker_trl(steps, warmup, "bf16"),
    "trl_fp32": lambda steps, warmup: worker_trl(steps, warmup, "fp32"),
    "tuneforge_compile": lambda steps, warmup: worker_tuneforge(steps, warmup, compile_=True),
    **{f"ablate_{a}": functools.partial(worker_tuneforge, ablate=a) for a in ABLATIONS},
}
DTYPE_OF = {"bf16": "bfloat16", "fp32": "float32"}


def run_worker(name: str, args) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    total0, steal0 = cpu_times()
    t = time.time()
    env = dict(os.environ)
    if name == "tuneforge_compile":  # a cold inductor cache: report the compile time a first run pays
        env["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-")
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--worker",
            name,
            "--result",
            out,
            "--steps",
            str(args.steps),
            "--warmup",
            str(args.warmup),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        sys.exit(f"{name} worker failed:\n{proc.stderr[-3000:]}")
    total1, steal1 = cpu_times()
    result = json.loads(Path(out).read_text())
    os.unlink(out)
    result["wall_s"] = time.time() - t
    result["cpu_steal_pct"] = 100 * (steal1 - steal0) / max(total1 - total0, 1)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds (each runs both frameworks)")
    ap.add_argument("--steps", type=int, default=8, help="timed optimizer steps per run")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--compile", action="store_true", help="also run tuneforge with train.compile=true")
    ap.add_argument(
        "--ablate",
        action="store_true",
        help="also run tuneforge with each speed-up turned off in turn (fused LoRA, target-only "
        "logits, length grouping, eager attention): does each one pay in this precision?",
    )
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "train_throughput.json"))
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--smoke", action="store_true", help="1 round of 1 timed step, JSON to a temporary file (CI)")
    args = ap.parse_args()
    if args.smoke and not args.worker:  # every line runs, TRL's side too; the measured results stay untouched
        args.rounds, args.steps, args.warmup = 1, 1, 1
        args.out = str(Path(tempfile.mkdtemp(prefix="tuneforge-smoke-")) / "train_throughput.json")
    if args.worker:
        result = WORKERS[args.worker](args.steps, args.warmup)
        result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        Path(args.result).write_text(json.dumps(result))
        return

    from tuneforge.hardware import hardware_summary

    hw = hardware_summary("cpu")
    trl_names = ["trl_bf16", "trl_fp32"] if PRECISION_AUTO == "bf16" else ["trl_fp32"]
    if args.smoke:  # one TRL worker runs every line of TRL's side; the second only changes its dtype (CI time)
        trl_names = trl_names[:1]
    names = (
        ["tuneforge", *trl_names]
        + (["tuneforge_compile"] if args.compile else [])
        + ([f"ablate_{a}" for a in ABLATIONS] if args.ablate else [])
    )
    runs: dict[str, list[dict]] = {name: [] for name in names}
    peaks: dict[str, list[float]] = {"bfloat16": [], "float32": []}
    for r in range(args.rounds):
        order = names if r % 2 == 0 else list(reversed(names))
        for name in order:
            dtype = (
                "float32"
                if name.endswith("fp32") or (not name.startswith("trl") and PRECISION_AUTO == "fp32")
                else "bfloat16"
            )
            peaks[dtype].append(matmul_peak_gflops(dtype))
            res = run_worker(name, args)
            res["round"], res["matmul_peak_gflops_before"] = r + 1, peaks[dtype][-1]
            runs[name].append(res)
            print(
                f"round {r + 1} {name:17s} {res['precision']} {res['tokens_per_s']:7.1f} tok/s  peak RSS "
                f"{res['peak_rss_mib']:6.0f} MiB  steal {res['cpu_steal_pct']:4.1f}%  loss {res['first_loss']:.3f}->"
                f"{res['last_loss']:.3f}",
                flush=True,
            )
    peak = {d: max(v) for d, v in peaks.items() if v}
    flops_per_token = 4 * runs["tuneforge"][0]["n_linear"]
    summary = {}
    for name, rs in runs.items():
        tps = statistics.median(x["tokens_per_s"] for x in rs)
        dtype = DTYPE_OF[rs[0]["precision"]]
        summary[name] = {
            "tokens_per_s": tps,
            "precision": rs[0]["precision"],
            "peak_rss_mib": max(x["peak_rss_mib"] for x in rs),
            "matmul_peak_gflops": peak[dtype],
            "fraction_of_matmul_bound": tps * flops_per_token / (peak[dtype] * 1e9),
            "settings": rs[0]["settings"],
        }
    best_trl = max(trl_names, key=lambda n: summary[n]["tokens_per_s"])
    paired = [a["tokens_per_s"] / b["tokens_per_s"] for a, b in zip(runs["tuneforge"], runs[best_trl])]
    out = {
        "benchmark": "train_throughput",
        "model": "smollm2-135m-instruct",
        "cpu": hw["cpu"],
        "isa": hw["isa"],
        "precision": summary["tuneforge"]["precision"],
        "auto_reason": hw["auto_reason"],
        "torch_threads": hw["torch_threads"],
        "torch": hw["torch"],
        "adapter": {"method": "lora", "target_modules": "all-linear", **LORA},
        "steps": args.steps,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "matmul_peak_gflops": peak,
        "matmul_peaks_gflops": peaks,
        "flops_per_token": flops_per_token,
        "trl_baseline": best_trl,
        "ratio_tuneforge_over_trl": summary["tuneforge"]["tokens_per_s"] / summary[best_trl]["tokens_per_s"],
        "ratio_per_round": paired,
        "summary": summary,
        "runs": runs,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "cpu_count": os.cpu_count(),
    }
    if args.ablate:  # > 1: the speed-up that variant turns off pays in this precision
        out["speedup_of_each_optimisation"] = {
            a: summary["tuneforge"]["tokens_per_s"] / summary[f"ablate_{a}"]["tokens_per_s"] for a in ABLATIONS
        }
    if args.compile:
        out["ratio_tuneforge_compile_over_trl"] = (
            summary["tuneforge_compile"]["tokens_per_s"] / summary[best_trl]["tokens_per_s"]
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nCPU {hw['cpu']} ({' '.join(hw['isa'])}); tuneforge precision auto -> {out['precision']}")
    print(
        f"matmul peak {', '.join(f'{d} {g:.0f}' for d, g in peak.items())} GFLOP/s; "
        f"{flops_per_token / 1e6:.0f} MFLOP per token"
    )
    for name, s in summary.items():
        print(
            f"{name:17s} {s['precision']} {s['tokens_per_s']:7.1f} tok/s (median)  "
            f"{100 * s['fraction_of_matmul_bound']:4.1f}% of the {s['precision']} matmul bound  "
            f"peak RSS {s['peak_rss_mib']:.0f} MiB"
        )
    print(
        f"ratio tuneforge/TRL ({best_trl}, TRL's faster setting here): {out['ratio_tuneforge_over_trl']:.2f}x "
        f"(per round: {', '.join(f'{x:.2f}' for x in paired)})"
    )
    for a, x in out.get("speedup_of_each_optimisation", {}).items():
        print(f"speed-up from what ablate_{a} turns off ({ABLATIONS[a]}): {x:.2f}x")
    if args.compile:
        print(f"ratio tuneforge (train.compile=true)/TRL: {out['ratio_tuneforge_compile_over_trl']:.2f}x")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
