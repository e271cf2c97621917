"""Size, memory and speed of one model as deployed, measured in a fresh process (`python -m
tuneforge.compress.measure SPEC PROMPTS.json --tokens N`), so the peak resident memory is this model's
alone and no other model's pages or caches are counted.

- A `.gguf` file runs on llama.cpp (llama-cpp-python, the engine its quantisations are for);
- anything else on transformers (`generate`, greedy, batch 1), as `tuneforge eval` answers with it.
Both on `--threads` threads (default: the CPUs this process may use).

Speed is new tokens per second of wall time over the prompts (prompt processing included, after one
unmeasured warm-up prompt). Prints one JSON object."""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _gguf(path: str, prompts: list, tokens: int, threads: int) -> dict:
    from llama_cpp import Llama

    llm = Llama(model_path=path, n_ctx=1024, n_threads=threads, n_batch=512, verbose=False, seed=0)
    new, seconds = 0, 0.0
    for i, messages in enumerate(prompts):
        start = time.perf_counter()
        r: Any = llm.create_chat_completion(messages=messages, max_tokens=tokens, temperature=0.0)
        if i:  # the first is a warm-up
            seconds += time.perf_counter() - start
            new += r["usage"]["completion_tokens"]
    return {"engine": f"llama.cpp (llama-cpp-python, {threads} threads)", "new_tokens": new, "seconds": seconds}


def _hf(spec: str, prompts: list[list[dict]], tokens: int, dtype: str) -> dict:
    import torch

    from tuneforge.evaluate.model_spec import load_eval_model

    model, tok, _ = load_eval_model(spec, dtype, "cpu")
    new, seconds = 0, 0.0
    with torch.inference_mode():
        for i, messages in enumerate(prompts):
            ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
            start = time.perf_counter()
            out = model.generate(**ids, max_new_tokens=tokens, do_sample=False, pad_token_id=tok.pad_token_id)
            if i:
                seconds += time.perf_counter() - start
                new += out.shape[1] - ids["input_ids"].shape[1]
    dt = next(model.parameters()).dtype
    return {"engine": f"transformers ({str(dt).removeprefix('torch.')}, {torch.get_num_threads()} threads)",
            "new_tokens": new, "seconds": seconds}  # fmt: skip


def measure(spec: str, prompts: list[list[dict]], tokens: int, dtype: str, threads: int) -> dict:
    before = _rss_mb()
    start = time.perf_counter()
    r = _gguf(spec, prompts, tokens, threads) if spec.endswith(".gguf") else _hf(spec, prompts, tokens, dtype)
    return {
        **r,
        "tokens_per_s": r["new_tokens"] / r["seconds"] if r["seconds"] else float("nan"),
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
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="default: the CPUs this process may use")
    a = p.parse_args(argv)
    if not a.spec.endswith(".gguf"):  # llama.cpp needs no torch: its peak memory is llama.cpp's alone
        import torch

        torch.set_num_threads(a.threads)
    prompts = json.loads(a.prompts.read_text(encoding="utf-8"))
    print(json.dumps(measure(a.spec, prompts, a.tokens, a.dtype, a.threads)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
