"""Size, memory and speed of one model as deployed, measured in a fresh process (`python -m
tuneforge.compress.measure SPEC PROMPTS.json --tokens N`), so the peak resident memory is this model's
alone and no other model's pages or caches are counted.

- A `.gguf` file runs on llama.cpp (llama-cpp-python, the engine its quantisations are for);
- anything else on transformers (`generate`, greedy, batch 1), as `tuneforge eval` answers with it.
Both on `--threads` threads (default: the CPUs this process may use).

Speed is new tokens per second of wall time over the prompts (prompt processing included, after one
unmeasured warm-up prompt), the median of `--rounds` passes. Prints one JSON object."""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    """This process's peak resident memory (VmHWM). Not getrusage's ru_maxrss: Linux carries into it the
    high-water mark of the address space a fork copied, so a child of a big parent reports the parent's."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: KiB on most systems


def _gguf(path: str, tokens: int, threads: int) -> tuple[Callable[[list], int], str]:
    """(answer(messages) → new tokens, engine) for a GGUF on llama.cpp."""
    from llama_cpp import Llama

    llm = Llama(model_path=path, n_ctx=1024, n_threads=threads, n_batch=512, verbose=False, seed=0)

    def answer(messages: list) -> int:
        r: Any = llm.create_chat_completion(messages=messages, max_tokens=tokens, temperature=0.0)
        return int(r["usage"]["completion_tokens"])

    return answer, f"llama.cpp (llama-cpp-python, {threads} threads)"


def _hf(spec: str, tokens: int, dtype: str) -> tuple[Callable[[list], int], str]:
    """(answer(messages) → new tokens, engine) for a model transformers loads (greedy, batch 1)."""
    import torch

    from tuneforge.evaluate.model_spec import load_eval_model

    model, tok, _ = load_eval_model(spec, dtype, "cpu")

    def answer(messages: list) -> int:
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=tokens, do_sample=False, pad_token_id=tok.pad_token_id)
        return int(out.shape[1] - ids["input_ids"].shape[1])

    dt = str(next(model.parameters()).dtype).removeprefix("torch.")
    return answer, f"transformers ({dt}, {torch.get_num_threads()} threads)"


def measure(spec: str, prompts: list[list[dict]], tokens: int, dtype: str, threads: int, rounds: int = 3) -> dict:
    """Load the model, answer one warm-up prompt, then time `rounds` passes over the other prompts;
    tokens/s is the median pass's (a shared VM's noise moves single passes by ±15%)."""
    before = _rss_mb()
    start = time.perf_counter()
    answer, engine = _gguf(spec, tokens, threads) if spec.endswith(".gguf") else _hf(spec, tokens, dtype)
    answer(prompts[0])
    rates, new = [], 0
    for _ in range(rounds):
        t0 = time.perf_counter()
        new = sum(answer(m) for m in prompts[1:])
        rates.append(new / (time.perf_counter() - t0))
    return {
        "engine": engine,
        "new_tokens": new,  # per pass (greedy: the same every pass)
        "tokens_per_s": statistics.median(rates),
        "tokens_per_s_passes": [round(r, 1) for r in rates],
        "peak_rss_mb": round(_peak_mb(), 1),
        "model_rss_mb": round(_peak_mb() - before, 1),  # the peak above what the process held before loading
        "wall_seconds": round(time.perf_counter() - start, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tuneforge.compress.measure")
    p.add_argument("spec")
    p.add_argument("prompts", type=Path, help="JSON list of chat message lists")
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--dtype", default="auto")
    p.add_argument("--rounds", type=int, default=3, help="timed passes over the prompts (the median is kept)")
    p.add_argument(
        "--threads", type=int, default=len(os.sched_getaffinity(0)), help="default: the CPUs this process may use"
    )
    a = p.parse_args(argv)
    if not a.spec.endswith(".gguf"):  # llama.cpp needs no torch: its peak memory is llama.cpp's alone
        import torch

        torch.set_num_threads(a.threads)
    prompts = json.loads(a.prompts.read_text(encoding="utf-8"))
    print(json.dumps(measure(a.spec, prompts, a.tokens, a.dtype, a.threads, a.rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
