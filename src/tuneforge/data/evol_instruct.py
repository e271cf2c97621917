"""Evol-Instruct (Xu et al., 2023, WizardLM): rewrite instructions into harder (in-depth) or new
(in-breadth) ones, answer them, and eliminate failed evolutions by the paper's four rules:

1. no information gain — the model judges the evolved instruction equal to the original;
2. the answer apologises ("sorry") and is short (< 80 words): the instruction became unanswerable;
3. the answer is only punctuation and stop words;
4. the evolved instruction copies words of the evolving prompt ("given prompt", "rewritten prompt"...).

In-depth operators: add constraints, deepen, concretise, increase reasoning steps, complicate the
input; in-breadth: a new, rarer instruction of the same domain. A failed evolution puts its parent
back in the pool for the next round, as in the paper. Every elimination is counted by rule.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

from tuneforge.config import SEED
from tuneforge.data.record_text import STOP_WORDS
from tuneforge.llm.client import LLM, Sampling
from tuneforge.records import Example, Message

DEPTH = {
    "add_constraints": "Add one more constraint or requirement to it.",
    "deepen": "If it asks about a topic, increase the depth and breadth of the question.",
    "concretize": "Replace general concepts with more specific ones.",
    "reasoning": "If it can be solved with a few simple steps, rewrite it to explicitly require multiple-step reasoning.",
    "complicate_input": "Add a piece of input data (a table, a short text or numbers) that the task must use.",
}
BREADTH = "Draw inspiration from it to create a brand new instruction in the same domain but rarer, of similar length and difficulty."
COPIED = (
    "given prompt",
    "rewritten prompt",
    "created prompt",
    "#given prompt#",
    "#rewritten prompt#",
    "#created prompt#",
)


@dataclass
class EvolConfig:
    rounds: int = field(default=1, metadata={"help": "evolution rounds (each evolves the whole pool)", "ge": 1})
    operators: list[str] = field(
        default_factory=lambda: [*DEPTH, "breadth"],
        metadata={"help": "operators drawn uniformly at random", "min_len": 1},
    )
    temperature: float = field(default=0.7, metadata={"help": "sampling temperature of the rewrites", "ge": 0})
    max_new_tokens: int = field(default=256, metadata={"help": "tokens per rewrite / answer", "ge": 1})
    seed: int = field(default=0, metadata={"help": "operator choice and sampling seed", **SEED})


def evolve_prompt(instruction: str, operator: str) -> list[dict]:
    if operator == "breadth":
        ask = f"I want you to act as a prompt creator. {BREADTH}"
    else:
        ask = (
            "I want you to act as a prompt rewriter: rewrite the given prompt into a more complex version that "
            f"a person can still understand and answer. {DEPTH[operator]} Add at most 20 words."
        )
    return [{"role": "user", "content": f"{ask} Answer with the new prompt only.\n\n#Given Prompt#:\n{instruction}"}]


def equality_prompt(first: str, second: str) -> list[dict]:
    return [
        {
            "role": "user",
            "content": "Here are two instructions. Do they have the same constraints and "
            "requirements, and the same depth and breadth of inquiry? Answer Equal or Not Equal.\n\n"
            f"First: {first}\nSecond: {second}",
        }
    ]


def elimination_reason(original: str, evolved: str, answer: str, judged_equal: bool) -> str:
    """Which of the four rules eliminates this evolution ('' = it survives)."""
    if judged_equal or evolved.strip().lower() == original.strip().lower():
        return "1: no information gain"
    words = answer.split()
    if "sorry" in answer.lower() and len(words) < 80:
        return "2: answer says sorry and is short"
    tokens = re.findall(r"\w+", answer.lower())
    if not tokens or all(t in STOP_WORDS for t in tokens):
        return "3: answer is only punctuation and stop words"
    if any(c in evolved.lower() for c in COPIED):
        return "4: copies words from the evolving prompt"
    return ""


def evol_instruct(llm: LLM, seeds: list[Example], cfg: EvolConfig) -> tuple[list[Example], dict]:
    rng = random.Random(cfg.seed)
    pool = [(s.instruction, s.id, 0) for s in seeds if s.instruction]
    records: list[Example] = []
    report: dict[str, Any] = {"evolved": 0, "kept": 0, "eliminated": {}, "by_operator": {}}
    for rnd in range(1, cfg.rounds + 1):
        ops = [rng.choice(cfg.operators) for _ in pool]
        sampling = Sampling(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, seed=cfg.seed * 1000 + rnd)
        evolved = [o[0].strip() for o in llm.chat([evolve_prompt(p[0], op) for p, op in zip(pool, ops)], sampling)]
        answers = [
            a[0]
            for a in llm.chat(
                [[{"role": "user", "content": e}] for e in evolved], Sampling(max_new_tokens=cfg.max_new_tokens)
            )
        ]
        verdicts = [
            v[0]
            for v in llm.chat([equality_prompt(p[0], e) for p, e in zip(pool, evolved)], Sampling(max_new_tokens=4))
        ]
        next_pool = []
        for (orig, pid, _), op, ev, ans, verdict in zip(pool, ops, evolved, answers, verdicts):
            report["evolved"] += 1
            report["by_operator"][op] = report["by_operator"].get(op, 0) + 1
            verdict = verdict.strip().lower()
            equal = verdict.startswith("equal")
            if not verdict.startswith(("equal", "not")):  # read as "not equal"; counted so it shows
                report["verdicts_unparsed"] = report.get("verdicts_unparsed", 0) + 1
            why = elimination_reason(orig, ev, ans, equal)
            if why:
                report["eliminated"][why] = report["eliminated"].get(why, 0) + 1
                next_pool.append((orig, pid, rnd))  # the parent goes back into the pool
                continue
            rid = f"evol-{rnd}-{len(records)}"
            records.append(
                Example(
                    messages=[Message("user", ev), Message("assistant", ans.strip())],
                    id=rid,
                    source="evol_instruct",
                    meta={"generator": llm.name, "round": rnd, "operator": op, "parent": pid, "seed": cfg.seed},
                )
            )
            next_pool.append((ev, rid, rnd))
        pool = next_pool
    report["kept"] = len(records)
    return records, report
