"""Instruction synthesis at an equal teacher budget (issue 34 (c); seed 002's comparison): IDEA-MCTS
vs Self-Instruct vs DS²-Instruct, the embedded SmolLM2-135M-Instruct as the teacher of all three.

Each generator gets exactly `--budget` teacher completions: its LLM is wrapped so that the completion
after the budget is not generated (it comes back empty, which every generator drops like a failed
answer) and is counted as refused. Each is sized to finish its pipeline within the budget, as a user
would size it: Self-Instruct asks for budget/4 instructions (finding one costs about a completion,
answering it two), DS²-Instruct connects budget/6 keyword pairs (one instruction each, then 3
self-consistency answers), IDEA-MCTS gets budget/seeds completions per seed tree. All three work on the healthcare domain: Self-Instruct and
IDEA-MCTS start from the healthcare instructions of `seed:train`, DS²-Instruct from its domain and
task description. Measured for each: completions used, instructions kept, their diversity (mean
pairwise ROUGE-L F1 among kept instructions — lower is more diverse — and distinct word bigrams per
instruction word) after the filters a data build applies to every generator (length and format, exact
and near dedup, decontamination against seed:test), and the held-out effect of training on them: LoRA r=16 for the same number of steps
on each set, the loss per target token on the healthcare items of `seed:test`, Δ against the base
model and against Self-Instruct with paired bootstrap 95% CIs. Writes
benchmarks/results/instruction_search.json (naming the CPU); `--smoke` runs a tiny random model in a
temporary folder (CI).

Usage:  python benchmarks/instruction_search.py [--budget 96] [--steps 40] [--out runs/instruction_search] [--smoke]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARMS = ("self_instruct", "ds2", "idea_mcts")


class BudgetLLM:
    """An LLM that generates at most `budget` completions (a request for n completions costs n); the
    rest come back empty and are counted in `refused` (an experiment harness: never a product path)."""

    def __init__(self, llm, budget: int):
        self.llm, self.name, self.left, self.used, self.refused = llm, llm.name, budget, 0, 0

    def chat(self, conversations, sampling):
        allowed = [i for i in range(len(conversations)) if self._take(sampling.n)]
        replies = self.llm.chat([conversations[i] for i in allowed], sampling) if allowed else []
        out = [[""] * sampling.n for _ in conversations]
        for i, reply in zip(allowed, replies):
            out[i] = reply
        return out

    def _take(self, n: int) -> bool:
        if self.left >= n:
            self.left, self.used = self.left - n, self.used + n
            return True
        self.refused += n
        return False


def _generate(arm: str, teacher, seeds: list, budget: int, smoke: bool) -> tuple[list, dict]:
    from tuneforge.errors import TuneforgeError

    tokens = 16 if smoke else 160
    llm = BudgetLLM(teacher, budget)
    try:
        records, report = _run_generator(arm, llm, seeds, budget, tokens)
    except TuneforgeError as exc:  # a generator that yields nothing usable says so: reported, kept 0
        records, report = [], {"error": str(exc)}
    return records, {"used": llm.used, "refused": llm.refused, "report": _jsonable(report)}


def _run_generator(arm: str, llm, seeds: list, budget: int, tokens: int) -> tuple[list, dict]:
    from tuneforge.data.ds2 import DS2Config, ds2_instruct
    from tuneforge.data.idea_mcts import IdeaMCTSConfig, idea_mcts
    from tuneforge.data.self_instruct import SelfInstructConfig, self_instruct

    if arm == "self_instruct":
        # each kept instruction costs 2 completions (classification + instance) after ~1 to find it
        cfg = SelfInstructConfig(
            num_instructions=max(1, budget // 4), requests_per_round=4, max_rounds=budget, max_new_tokens=tokens
        )
        records, report = self_instruct(llm, seeds, cfg)
    elif arm == "ds2":
        cfg2 = DS2Config(domain="healthcare", task="answer patients' questions accurately and say when to see a "
                         "professional", keywords=6, max_keywords=8, pairs=max(1, budget // 6), samples=3, threshold=0.4,
                         agreement=0.5, temperature=0.3, max_new_tokens=tokens, repetition_penalty=1.3)  # fmt: skip
        records, report = ds2_instruct(llm, cfg2)
    else:
        per_seed = max(2, budget // len(seeds))
        cfg3 = IdeaMCTSConfig(budget=per_seed, max_new_tokens=tokens)
        records, report = idea_mcts(llm, seeds, cfg3)
    return records, report


def _jsonable(x):
    return json.loads(json.dumps(x, default=str))


def diversity(instructions: list[str]) -> dict:
    """Mean pairwise ROUGE-L F1 (lower = more diverse) and distinct word bigrams ÷ words."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    pairs = list(itertools.combinations(instructions, 2))
    mean_rouge = sum(scorer.score(a, b)["rougeL"].fmeasure for a, b in pairs) / len(pairs) if pairs else None
    words = [w for t in instructions for w in t.lower().split()]
    bigrams = {tuple(t.lower().split()[i : i + 2]) for t in instructions for i in range(len(t.split()) - 1)}
    return {"mean_pairwise_rouge_l": mean_rouge, "distinct_2": len(bigrams) / len(words) if words else None}


def _train(arm: str, data: Path, out: Path, base: list[str], steps: int) -> Path:
    from tuneforge.config import load_config
    from tuneforge.train.run import train_model
    from tuneforge.train.run_config import TrainRunConfig

    run = out / f"train-{arm}"
    if not (run / "train_summary.json").exists():
        train_model(load_config(TrainRunConfig, None, [*base, f"output_dir={run}", f"data.train={data}",
                                                       f"train.steps={steps}"]))  # fmt: skip
    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, default=Path("runs/instruction_search"))
    p.add_argument("--budget", type=int, default=96, help="teacher completions per generator")
    p.add_argument("--steps", type=int, default=40, help="training steps on each generated set (batch 1)")
    p.add_argument("--teacher", default="smollm2-135m-instruct", help="the teacher of all three (a hub id or dir)")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "instruction_search.json")
    p.add_argument("--smoke", action="store_true", help="a tiny random model, a small budget, a temporary folder")
    a = p.parse_args(argv)
    from tuneforge.data.build_config import FilterConfig
    from tuneforge.data.filters import apply_filters
    from tuneforge.data.io import read_records, write_records
    from tuneforge.data.seed import load_examples
    from tuneforge.hardware import hardware_summary
    from tuneforge.intervals import paired_ratio_delta
    from tuneforge.llm.local import LocalLLM

    tmp = Path(tempfile.mkdtemp(prefix="tuneforge-smoke-")) if a.smoke else None
    out, budget, steps = (tmp / "exp", 12, 2) if tmp else (a.out, a.budget, a.steps)
    model = _smoke_model(tmp) if tmp else "smollm2-135m-instruct"
    test = str(tmp / "test.jsonl") if tmp else "seed:test:healthcare"
    seeds = load_examples("seed:train:healthcare")[: 6 if tmp else 12]
    teacher = LocalLLM.load(model if tmp else a.teacher, dtype="float32" if tmp else "auto", batch_size=16)
    base = [f"model.name={model}", "model.attn_implementation=eager", f"data.eval={test}", "adapter.method=lora",
            "adapter.r=16", "adapter.alpha=32", "adapter.dropout=0.0", "adapter.target_modules=[all-linear]",
            "train.batch_size=1", "train.lr=3e-4", "train.log_every=10"]  # fmt: skip
    if tmp:
        base += ["model.dtype=float32", "train.precision=fp32", "adapter.r=4"]
    arms = {}
    for arm in ARMS:
        data = out / f"{arm}.jsonl"
        if not data.exists():
            records, calls = _generate(arm, teacher, seeds, budget, bool(tmp))
            write_records([replace(r, source=arm) for r in records], data)
            (out / f"{arm}.calls.json").write_text(json.dumps(calls, indent=1))
        generated = read_records(data) if data.stat().st_size else []
        calls = json.loads((out / f"{arm}.calls.json").read_text())
        # the filters a data build applies to any generator: length/format, dedup, decontamination vs seed:test
        records, removed, _ = apply_filters(generated, FilterConfig()) if generated else ([], [], {})
        if records:
            write_records(records, out / f"{arm}.filtered.jsonl")
        arms[arm] = {"generated": len(generated), "kept": len(records),
                     "removed_by_filter": dict(Counter(f for f, _ in removed)), "calls_used": calls["used"], "calls_refused": calls["refused"],
                     "diversity": diversity([r.instruction for r in records]), "generator_report": calls["report"]}  # fmt: skip
        if records:
            arms[arm]["run"] = str(_train(arm, out / f"{arm}.filtered.jsonl", out, base, steps))
    _effects(arms, paired_ratio_delta)
    result = {"teacher": model if tmp else a.teacher, "budget": budget, "steps": steps, "seeds": len(seeds), "held_out": test, "arms": arms,
              "hardware": hardware_summary("cpu"), "smoke": bool(tmp)}  # fmt: skip
    print(_markdown(result))
    results = tmp / "tuneforge-smoke-instruction_search.json" if tmp else a.results
    results.write_text(json.dumps(result, indent=1))
    print(f"wrote {results}")
    return 0


def _effects(arms: dict, paired_ratio_delta) -> None:
    """Held-out loss of each trained arm, Δ against the base and against Self-Instruct (paired)."""
    per = {}
    for arm, t in arms.items():
        if "run" in t:
            pe = json.loads((Path(t["run"]) / "train_summary.json").read_text())["eval"]["per_example"]
            per[arm] = pe
            t["heldout_loss"] = sum(pe["tuned"]) / sum(pe["units"])
            t["base_loss"] = sum(pe["base"]) / sum(pe["units"])
            t["vs_base"] = paired_ratio_delta(pe["base"], pe["tuned"], pe["units"], 2000)
    ref = per.get("self_instruct")
    for arm, pe in per.items():
        if ref is not None and arm != "self_instruct":
            arms[arm]["vs_self_instruct"] = paired_ratio_delta(ref["tuned"], pe["tuned"], pe["units"], 2000)


def _markdown(r: dict) -> str:
    fmt = lambda d: f"{d['delta']:+.4f} [{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}]" if d else "—"  # noqa: E731
    lines = [f"Budget: {r['budget']} teacher completions per generator; {r['steps']} training steps on each set; "
             f"held-out {r['held_out']}. CPU: {r['hardware']['cpu']}.", "",
             "| generator | completions used (refused) | generated | after filters | mean pairwise ROUGE-L | distinct-2 | "
             "held-out loss | Δ vs base [95% CI] | Δ vs Self-Instruct |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for arm, t in r["arms"].items():
        d = t["diversity"]
        rl = "—" if d["mean_pairwise_rouge_l"] is None else f"{d['mean_pairwise_rouge_l']:.3f}"
        d2 = "—" if d["distinct_2"] is None else f"{d['distinct_2']:.3f}"
        loss = f"{t['heldout_loss']:.4f}" if "heldout_loss" in t else "— (nothing kept)"
        lines.append(f"| {arm} | {t['calls_used']} ({t['calls_refused']}) | {t['generated']} | {t['kept']} | {rl} | {d2} | {loss} | "
                     f"{fmt(t.get('vs_base'))} | {fmt(t.get('vs_self_instruct'))} |")  # fmt: skip
    return "\n".join(lines)


def _smoke_model(tmp: Path) -> str:
    from tuneforge.data.io import write_records
    from tuneforge.data.seed import load_examples
    from tuneforge.models import tiny_model, tiny_tokenizer

    tok = tiny_tokenizer()
    tiny_model(tok, hidden=32, layers=2).save_pretrained(tmp / "model")
    tok.save_pretrained(tmp / "model")
    write_records(load_examples("seed:test:healthcare")[:4], tmp / "test.jsonl")
    return str(tmp / "model")


if __name__ == "__main__":
    sys.exit(main())
