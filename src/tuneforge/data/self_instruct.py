"""Self-Instruct (Wang et al., 2023): bootstrap new instructions from a seed pool,
D_{t+1} = D_t ∪ {(x, M_t(x))}, as published:

1. each request shows 8 in-context instructions — 6 from the human seed tasks and 2 from those
   generated so far (seeds only until 2 exist) — and asks the model for more;
2. a candidate is kept only if its ROUGE-L F against every instruction in the pool is ≤ the
   threshold (0.7), it has 3–150 words, does not start with punctuation or a non-ASCII character,
   and mentions none of the keywords a text model cannot act on (image, graph, file, draw, ...);
3. the model says whether the task is classification; instances are then generated output-first
   for classification (a label, then an input for it — so labels are not skewed) and input-first
   otherwise;
4. the instruction and its instance become an SFT record with provenance (generator model,
   round, seed, sampling, the ROUGE-L of its nearest neighbour).

Every rejected candidate is counted by reason in the report: nothing is dropped silently.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from tqdm.auto import tqdm

from tuneforge.config import SEED
from tuneforge.errors import DataError
from tuneforge.llm.client import LLM, Sampling
from tuneforge.records import Example, Message

BLACKLIST = (
    "image",
    "images",
    "graph",
    "graphs",
    "picture",
    "pictures",
    "file",
    "files",
    "map",
    "maps",
    "draw",
    "plot",
    "go to",
    "video",
    "audio",
    "music",
    "flowchart",
    "diagram",
)


@dataclass
class SelfInstructConfig:
    num_instructions: int = field(default=20, metadata={"help": "new instructions to keep", "ge": 1})
    seed_in_prompt: int = field(default=6, metadata={"help": "human seed instructions per request", "ge": 1})
    generated_in_prompt: int = field(default=2, metadata={"help": "machine instructions per request", "ge": 0})
    rouge_threshold: float = field(
        default=0.7, metadata={"help": "reject when ROUGE-L to the pool > this", "ge": 0, "le": 1}
    )
    min_words: int = field(default=3, metadata={"help": "shortest instruction kept", "ge": 0})
    max_words: int = field(default=150, metadata={"help": "longest instruction kept", "ge": 1})
    requests_per_round: int = field(default=4, metadata={"help": "generation requests per round", "ge": 1})
    max_rounds: int = field(default=50, metadata={"help": "stop after this many rounds even if short", "ge": 1})
    temperature: float = field(default=0.7, metadata={"help": "sampling temperature for new instructions", "ge": 0})
    max_new_tokens: int = field(default=256, metadata={"help": "tokens per generation request", "ge": 1})
    seed: int = field(default=0, metadata={"help": "prompt sampling seed", **SEED})


class RougeNovelty:
    """ROUGE-L F of a candidate against a growing pool (rouge-score, no stemming, as published)."""

    def __init__(self, pool: list[str]):
        from rouge_score import rouge_scorer

        self.scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
        self.pool = list(pool)

    def nearest(self, text: str) -> float:
        return max((self.scorer.score(p, text)["rougeL"].fmeasure for p in self.pool), default=0.0)

    def add(self, text: str) -> None:
        self.pool.append(text)


def instruction_problem(text: str, cfg: SelfInstructConfig) -> str:
    """Why a candidate instruction is rejected by the heuristics ('' = it passes)."""
    n = len(text.split())
    if n < cfg.min_words:
        return "too short"
    if n > cfg.max_words:
        return "too long"
    lowered = text.lower()
    if any(re.search(rf"\b{re.escape(k)}\b", lowered) for k in BLACKLIST):
        return "needs a modality a text model lacks (keyword)"
    if not text[0].isascii() or not text[0].isalnum():
        return "starts with punctuation or a non-ASCII character"
    if lowered.startswith("write a program"):
        return "program-writing task (as in the paper)"
    return ""


def generation_prompt(instructions: list[str]) -> list[dict]:
    listed = "\n".join(f"Task {i + 1}: {t}" for i, t in enumerate(instructions))
    return [
        {
            "role": "user",
            "content": "Come up with a series of new, diverse tasks. Answer with the new tasks "
            f"only, one per line, numbered from Task {len(instructions) + 1}.\n\n{listed}\n",
        }
    ]


def parse_instructions(text: str) -> list[str]:
    """Instructions from a numbered answer ('Task 9: ...', '9. ...', '- ...')."""
    out = []
    for line in text.splitlines():
        line = re.sub(r"^\s*(?:Task\s*\d+\s*[:.)-]|\d+\s*[:.)-]|[-*•])\s*", "", line).strip()
        if line:
            out.append(line)
    return out


def classification_prompt(instruction: str) -> list[dict]:
    return [
        {
            "role": "user",
            "content": "Can the following task be regarded as a classification task with a small, "
            f"finite set of output labels? Answer Yes or No.\n\nTask: {instruction}",
        }
    ]


def instance_prompt(instruction: str, classification: bool) -> list[dict]:
    if classification:  # output-first: pick a label, then write an input that has it
        ask = (
            "Given the classification task definition, first state one class label, then generate an input "
            "that belongs to it. Answer in the form:\nOutput: <label>\nInput: <input>"
        )
    else:  # input-first
        ask = (
            "Come up with an example for the task. If the task needs no input, leave Input empty. Answer in "
            "the form:\nInput: <input or empty>\nOutput: <the correct response>"
        )
    return [{"role": "user", "content": f"{ask}\n\nTask: {instruction}"}]


def parse_instance(text: str) -> tuple[str, str] | None:
    """(input, output) from an 'Input: ... Output: ...' answer in either order; None if malformed."""
    inp = re.search(r"Input:[ \t]*(.*?)(?=\n\s*Output:|\Z)", text, re.S)
    out = re.search(r"Output:[ \t]*(.*?)(?=\n\s*Input:|\Z)", text, re.S)
    if not out or not out.group(1).strip():
        return None
    return (inp.group(1).strip() if inp else ""), out.group(1).strip()


def self_instruct(llm: LLM, seeds: list[Example], cfg: SelfInstructConfig) -> tuple[list[Example], dict]:
    """Bootstrap `cfg.num_instructions` new instructions with instances; returns (records, report)."""
    seed_texts = [s.instruction for s in seeds if s.instruction]
    if len(seed_texts) < cfg.seed_in_prompt:
        raise DataError(f"self-instruct needs at least {cfg.seed_in_prompt} seed instructions, got {len(seed_texts)}")
    rng = random.Random(cfg.seed)
    novelty = RougeNovelty(seed_texts)
    machine: list[tuple[str, float, int]] = []  # (instruction, nearest ROUGE-L, round)
    report: dict[str, Any] = {"candidates": 0, "kept": 0, "rejected": {}, "rounds": 0, "instances_malformed": 0}
    sampling = Sampling(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, seed=cfg.seed)
    bar = tqdm(total=cfg.num_instructions, desc="self-instruct: new instructions", unit="instr")
    for rnd in range(cfg.max_rounds):
        if len(machine) >= cfg.num_instructions:
            break
        report["rounds"] = rnd + 1
        bar.set_postfix(round=f"{rnd + 1}/{cfg.max_rounds}", candidates=report["candidates"])
        prompts = []
        for _ in range(cfg.requests_per_round):
            shown = rng.sample(seed_texts, cfg.seed_in_prompt)
            if len(machine) >= cfg.generated_in_prompt:
                shown += rng.sample([m[0] for m in machine], cfg.generated_in_prompt)
            prompts.append(generation_prompt(shown))
        sampling.seed = cfg.seed * 1000 + rnd  # a new draw every round (and a distinct cache key)
        for answer in llm.chat(prompts, sampling):
            for cand in parse_instructions(answer[0]):
                report["candidates"] += 1
                why = instruction_problem(cand, cfg)
                score = novelty.nearest(cand) if not why else 0.0
                if not why and score > cfg.rouge_threshold:
                    why = f"ROUGE-L > {cfg.rouge_threshold} to the pool"
                if why:
                    report["rejected"][why] = report["rejected"].get(why, 0) + 1
                    continue
                if len(machine) >= cfg.num_instructions:
                    report["rejected"]["over the requested number"] = (
                        report["rejected"].get("over the requested number", 0) + 1
                    )
                    continue
                novelty.add(cand)
                machine.append((cand, score, rnd + 1))
                bar.update(1)
    bar.close()
    greedy = Sampling(max_new_tokens=cfg.max_new_tokens)
    kinds = llm.chat([classification_prompt(m[0]) for m in machine], Sampling(max_new_tokens=4))
    answers = [k[0].strip().lower() for k in kinds]
    is_cls = [a.startswith("yes") for a in answers]
    # neither yes nor no: taken as "not classification" (input-first), and counted so it shows
    report["classification_unparsed"] = sum(not a.startswith(("yes", "no")) for a in answers)
    instances = llm.chat([instance_prompt(m[0], c) for m, c in zip(machine, is_cls)], greedy)
    records = []
    params = {k: v for k, v in asdict(cfg).items() if k != "num_instructions"}
    for i, ((instruction, score, rnd), cls, inst) in enumerate(zip(machine, is_cls, instances)):
        parsed = parse_instance(inst[0])
        if parsed is None:
            report["instances_malformed"] += 1
            continue
        inp, out = parsed
        user = f"{instruction}\n\n{inp}" if inp else instruction
        meta = {
            "generator": llm.name,
            "round": rnd,
            "rouge_l_nearest": round(score, 4),
            "is_classification": cls,
            "params": params,
        }
        if inp:
            meta["input"] = inp
        records.append(
            Example(
                messages=[Message("user", user), Message("assistant", out)],
                id=f"self-instruct-{cfg.seed}-{i}",
                source="self_instruct",
                meta=meta,
            )
        )
    report["instructions"] = len(machine)
    report["kept"] = len(records)
    return records, report
