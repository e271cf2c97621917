"""Generation throughput: tuneforge's `generate_answers` vs Hugging Face `generate`, side by side.

Same model (the embedded SmolLM2-135M-Instruct, in the dtype `auto` picks on this machine unless
`--dtype` says otherwise), same prompts (the shipped test split, chat template applied), greedy
decoding, the same `max_new_tokens`, stopping at the end-of-turn token:

  hf_one_at_a_time  `model.generate` on one prompt at a time — what a script written from the
                    model card does.
  hf_batched        `model.generate` on batches of `--batch-size` prompts in the file's order,
                    left padding (what a careful user writes by hand).
  tuneforge         `tuneforge.generation.generate_answers`: length-sorted batches, left padding,
                    the same batch size (what `eval run`, `safety run` and the demo use).
  llama_cpp         the yardstick users compare with: the same weights written as an f16 GGUF by
                    tuneforge's exporter (`export --gguf`'s writer), decoded by llama.cpp through
                    llama-cpp-python (the build `scripts/install_server.sh` makes), one prompt at a
                    time as its server and Ollama answer a single user, on the same threads.
                    Skipped, with the reason in the JSON, where llama-cpp-python is not installed.

Real tokens/s counts the new tokens of each answer up to and including its stop token (padding
after a finished answer is not counted). Each variant runs in this one process, one after the
other, after one warm-up call; `--rounds` repeats the sequence to spread the VM's noise.

Usage:  python benchmarks/generation_throughput.py [--prompts 32] [--max-new-tokens 64] [--batch-size 32] [--smoke]
Writes: benchmarks/results/generation_throughput.json (or --out), naming the CPU, ISA and dtype.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _prompts(tok, n: int) -> tuple[list, list[str]]:
    from tuneforge.data.seed import load_examples
    from tuneforge.records import EvalItem

    items = [EvalItem.from_example(e) for e in load_examples("seed:test")][:n]
    texts = [
        tok.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in it.messages], tokenize=False, add_generation_prompt=True
        )
        for it in items
    ]
    return items, texts


def _real_new_tokens(new_ids, stop_ids: set[int], pad_id: int) -> int:
    """New tokens up to and including the first stop token of each row (B, T_new)."""
    total = 0
    for row in new_ids.tolist():
        n = 0
        for t in row:
            n += 1
            if t in stop_ids:
                break
        total += n
    return total


def hf_generate(model, tok, texts: list[str], max_new: int, batch_size: int) -> tuple[int, float]:
    """(real new tokens, seconds) for plain `model.generate` over `texts` in batches of `batch_size`."""
    import torch

    from tuneforge.chat_template import stop_token_ids

    stops = stop_token_ids(tok, model)
    stop_set = set(stops if isinstance(stops, list) else [stops])
    tok.padding_side = "left"
    tokens, start = 0, time.perf_counter()
    with torch.inference_mode():
        for s in range(0, len(texts), batch_size):
            enc = tok(texts[s : s + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
            out = model.generate(
                **enc, max_new_tokens=max_new, do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=stops
            )
            tokens += _real_new_tokens(out[:, enc["input_ids"].shape[1] :], stop_set, tok.pad_token_id)
    return tokens, time.perf_counter() - start


def tuneforge_generate(model, tok, items, max_new: int, batch_size: int) -> tuple[int, float]:
    from tuneforge.generation import GenerationConfig, generate_answers

    start = time.perf_counter()
    gens = generate_answers(
        model,
        tok,
        items,
        GenerationConfig(max_new_tokens=max_new, batch_size=batch_size),
        "bench",
        None,
        desc="tuneforge",
    )
    seconds = time.perf_counter() - start
    return sum(g.meta["new_tokens"] for g in gens), seconds


def llama_cpp_generate(model, tok, texts: list[str], max_new: int, workdir: Path) -> tuple[int, float]:
    """(completion tokens, seconds) of llama.cpp on `texts`, greedy, one prompt at a time."""
    import llama_cpp

    from tuneforge.hardware import cpu_info
    from tuneforge.train.gguf_export import source_gguf, write_gguf

    gguf = write_gguf(model, tok, source_gguf("smollm2-135m-instruct"), workdir / "model-f16.gguf", "f16")
    threads = __import__("torch").get_num_threads() or cpu_info().physical_cores
    llm = llama_cpp.Llama(str(gguf), n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False)
    llm.create_completion(texts[0], max_tokens=2, temperature=0.0)  # warm-up
    tokens, start = 0, time.perf_counter()
    for text in texts:
        out = llm.create_completion(text, max_tokens=max_new, temperature=0.0, top_k=1)
        n = out["usage"]["completion_tokens"]
        tokens += n + (out["choices"][0]["finish_reason"] == "stop")  # the stop token, as the others count it
    return tokens, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--dtype", default="auto", help="auto | bfloat16 | float32")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "generation_throughput.json"))
    ap.add_argument("--smoke", action="store_true", help="2 prompts, 4 tokens, JSON to a temporary file (CI)")
    args = ap.parse_args()
    if args.smoke:  # every line of the benchmark runs, in seconds; the measured results stay untouched
        args.prompts, args.max_new_tokens, args.batch_size, args.rounds = 2, 4, 2, 1
        args.out = str(Path(tempfile.mkdtemp(prefix="tuneforge-smoke-")) / "generation_throughput.json")

    from tuneforge.hardware import hardware_summary, matmul_gflops, resolve_dtype, set_threads
    from tuneforge.models import load_model

    set_threads()
    dtype = resolve_dtype(args.dtype, "cpu")
    model, tok = load_model("smollm2-135m-instruct", dtype, "sdpa", "cpu")
    items, texts = _prompts(tok, args.prompts)
    variants = {
        "hf_one_at_a_time": lambda: hf_generate(model, tok, texts, args.max_new_tokens, 1),
        "hf_batched": lambda: hf_generate(model, tok, texts, args.max_new_tokens, args.batch_size),
        "tuneforge": lambda: tuneforge_generate(model, tok, items, args.max_new_tokens, args.batch_size),
    }
    skipped = {}
    try:
        import llama_cpp  # noqa: F401

        workdir = Path(tempfile.mkdtemp(prefix="tuneforge-bench-gguf-"))
        variants["llama_cpp"] = lambda: llama_cpp_generate(model, tok, texts, args.max_new_tokens, workdir)
    except ImportError as exc:
        skipped["llama_cpp"] = f"llama-cpp-python is not installed ({exc}); bash scripts/install_server.sh .venv"
        print(f"llama_cpp skipped: {skipped['llama_cpp']}", file=sys.stderr)
    hf_generate(model, tok, texts[:2], 8, 2)  # warm-up: kernel selection, allocator
    runs: dict[str, list[dict]] = {k: [] for k in variants}
    for r in range(args.rounds):
        for name, fn in variants.items():
            tokens, seconds = fn()
            runs[name].append({"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds})
            print(
                f"round {r + 1} {name:17s} {tokens:6d} tokens in {seconds:6.1f} s = {tokens / seconds:7.1f} tok/s",
                file=sys.stderr,
                flush=True,
            )
    summary = {k: statistics.median(x["tokens_per_s"] for x in v) for k, v in runs.items()}
    out = {
        "benchmark": "generation_throughput",
        "model": "smollm2-135m-instruct",
        "dtype": dtype,
        "precision": "bf16" if dtype == "bfloat16" else "fp32",
        **hardware_summary("cpu"),
        "matmul_gflops_of_dtype": matmul_gflops(dtype, 1024, 0.5),
        "prompts": len(texts),
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "tokens_per_s": summary,
        "ratio_tuneforge_over_hf_one_at_a_time": summary["tuneforge"] / summary["hf_one_at_a_time"],
        "ratio_tuneforge_over_hf_batched": summary["tuneforge"] / summary["hf_batched"],
        "ratio_tuneforge_over_llama_cpp": summary["tuneforge"] / summary["llama_cpp"]
        if "llama_cpp" in summary
        else None,
        "skipped": skipped,
        "runs": runs,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(
        f"CPU {out['cpu']} ({' '.join(out['isa'])}), dtype {dtype}, {len(texts)} prompts x "
        f"{args.max_new_tokens} new tokens max"
    )
    for k, v in summary.items():
        print(f"{k:17s} {v:7.1f} tok/s")
    print(
        f"ratio tuneforge / HF one prompt at a time: {out['ratio_tuneforge_over_hf_one_at_a_time']:.2f}x; "
        f"tuneforge / HF batched: {out['ratio_tuneforge_over_hf_batched']:.2f}x"
        + (f"; tuneforge / llama.cpp: {out['ratio_tuneforge_over_llama_cpp']:.2f}x" if "llama_cpp" in summary else "")
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
