"""DS²-Instruct: domain-specific instruction synthesis for a named domain, in three stages.

1. **Task-informed keywords** — the model lists key concepts of the domain for the target task,
   then `expansion_rounds` rounds ask, for each new keyword, for its prerequisite and its more
   advanced concepts (deduplicated, capped at `max_keywords`).
2. **Bloom-level instructions** — one instruction per keyword × each of the six levels of Bloom's
   taxonomy (remember, understand, apply, analyse, evaluate, create), plus instructions that
   connect `pairs` random keyword pairs (at the analyse and evaluate levels).
3. **Self-consistency validation** — k answers are sampled per instruction and grouped (two answers
   agree when their normalised text is equal or their ROUGE-L F ≥ `agreement`); an instruction is
   kept when the largest group holds ≥ `threshold` of the k answers, with that group's first answer
   as the target.

No silent fallback: a stage that produces nothing raises a DataError that says which stage, for
which domain, with the model's answer, and what to change.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from tuneforge.config import SEED
from tuneforge.data.self_instruct import parse_instructions
from tuneforge.errors import DataError
from tuneforge.llm.client import LLM, Sampling
from tuneforge.records import Example, Message

BLOOM = {
    "remember": "recall a fact, term or basic concept",
    "understand": "explain an idea or concept in one's own words",
    "apply": "use the concept in a new, concrete situation",
    "analyse": "break the concept into parts and examine how they relate",
    "evaluate": "justify a decision or judge between options",
    "create": "produce a new plan, proposal or piece of work",
}


@dataclass
class DS2Config:
    domain: str = field(default="healthcare", metadata={"help": "the domain to synthesise for"})
    task: str = field(
        default="answer the questions of the public accurately and safely",
        metadata={"help": "the target task, which informs the keywords"},
    )
    keywords: int = field(default=8, metadata={"help": "keywords asked for in the first round", "ge": 1})
    expansion_rounds: int = field(default=1, metadata={"help": "prerequisite/advanced expansion rounds", "ge": 0})
    max_keywords: int = field(default=16, metadata={"help": "cap on keywords after expansion", "ge": 1})
    levels: list[str] = field(default_factory=lambda: list(BLOOM), metadata={"help": "Bloom levels used", "min_len": 1})
    pairs: int = field(default=4, metadata={"help": "keyword pairs to connect", "ge": 1})
    samples: int = field(default=5, metadata={"help": "k answers sampled per instruction", "ge": 1})
    threshold: float = field(default=0.5, metadata={"help": "keep when the majority share ≥ this", "ge": 0, "le": 1})
    agreement: float = field(default=0.7, metadata={"help": "two answers agree at ROUGE-L F ≥ this", "ge": 0, "le": 1})
    temperature: float = field(default=0.7, metadata={"help": "sampling temperature of the k answers", "ge": 0})
    max_new_tokens: int = field(default=200, metadata={"help": "tokens per answer", "ge": 1})
    seed: int = field(default=0, metadata={"help": "pair choice and sampling seed", **SEED})
    repetition_penalty: float = field(
        default=1.0,
        metadata={"help": "for the keyword/instruction stages (1.3 keeps a small local model from looping)", "gt": 0},
    )

    def __post_init__(self):
        unknown = [lv for lv in self.levels if lv not in BLOOM]
        if unknown:
            raise DataError(f"unknown Bloom level(s) {unknown}; use {', '.join(BLOOM)}")


def _norm(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


# headings that echo the request ("Advanced concepts building on it:"), not concepts
_ECHO = re.compile(r"\b(concepts?|prerequisites?|building on|builds on)\b", re.I)


def parse_keywords(text: str) -> list[str]:
    """Concepts from a list answer: a few words each, with letters (numbering and junk dropped)."""
    out = []
    for line in parse_instructions(text.replace(",", "\n")):
        kw = re.sub(r"^[\d.\s]+", "", line).strip(" .:;\"'*")
        kw = re.split(r"\s[-–—]\s|[:;(]", kw)[0].strip(" .*\"'")  # the concept, not its explanation
        if 0 < len(kw.split()) <= 6 and re.search(r"[^\W\d_]{3}", kw) and not _ECHO.search(kw):
            out.append(kw)
    return out


def clean_instruction(text: str) -> str:
    """The instruction itself, without a 'The user asks:' / 'Question:' lead-in or quotes."""
    lines = parse_instructions(text)
    line = lines[0] if lines else ""
    line = re.sub(r"^(the user (might )?asks?|user|question|instruction|q|a)\s*:\s*", "", line, flags=re.I)
    return line.strip().strip('"“”').strip()


def keyword_prompt(cfg: DS2Config, n: int) -> list[dict]:
    return [
        {
            "role": "user",
            "content": f"List {n} key concepts an assistant for the {cfg.domain} domain must master "
            f"to {cfg.task}. One concept per line, a few words each, no explanations. For example, for personal "
            "finance:\nCompound interest\nCredit score\nEmergency fund\n\nNow the concepts for "
            f"{cfg.domain}:",
        }
    ]


def expansion_prompt(cfg: DS2Config, keyword: str) -> list[dict]:
    return [
        {
            "role": "user",
            "content": f"In the {cfg.domain} domain, list two prerequisite concepts needed to "
            f"understand '{keyword}' and two more advanced concepts that build on it. One per line, a few words each.",
        }
    ]


def instruction_prompt(cfg: DS2Config, keywords: list[str], level: str) -> list[dict]:
    about = " and ".join(f"'{k}'" for k in keywords)
    return [
        {
            "role": "user",
            "content": f"Write one question or instruction a user of a {cfg.domain} assistant "
            f"might ask about {about}. It must test the Bloom's taxonomy level '{level}': {BLOOM[level]}. "
            "Answer with the instruction only.",
        }
    ]


def majority(answers: list[str], agreement: float) -> tuple[str, int]:
    """(first answer of the largest group of agreeing answers, that group's size)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    groups: list[list[str]] = []
    for a in answers:
        for g in groups:
            if _norm(a) == _norm(g[0]) or scorer.score(g[0], a)["rougeL"].fmeasure >= agreement:
                g.append(a)
                break
        else:
            groups.append([a])
    best = max(groups, key=len) if groups else [""]
    return best[0], len(best) if groups else 0


def ds2_instruct(llm: LLM, cfg: DS2Config) -> tuple[list[Example], dict]:
    rng = random.Random(cfg.seed)
    greedy = Sampling(max_new_tokens=cfg.max_new_tokens, repetition_penalty=cfg.repetition_penalty)
    first = llm.chat([keyword_prompt(cfg, cfg.keywords)], greedy)[0][0]
    keywords = list(dict.fromkeys(parse_keywords(first)))[: cfg.max_keywords]
    if not keywords:
        raise DataError(
            f"DS² stage 1 (keywords) produced no keyword for domain '{cfg.domain}'. The model answered: "
            f"{first[:200]!r}. Use a stronger generator or rephrase ds2.task"
        )
    report = {"domain": cfg.domain, "keywords_initial": len(keywords)}
    frontier = list(keywords)
    for _ in range(cfg.expansion_rounds):
        answers = llm.chat([expansion_prompt(cfg, k) for k in frontier], greedy)
        new = [k for a in answers for k in parse_keywords(a[0]) if _norm(k) not in {_norm(x) for x in keywords}]
        new = list(dict.fromkeys(new))[: max(0, cfg.max_keywords - len(keywords))]
        keywords += new
        frontier = new
    report["keywords"] = keywords
    tasks = [([k], lv) for k in keywords for lv in cfg.levels]
    pairs = [rng.sample(keywords, 2) for _ in range(cfg.pairs)] if len(keywords) >= 2 else []
    tasks += [(p, rng.choice(["analyse", "evaluate"])) for p in pairs]
    raw = llm.chat([instruction_prompt(cfg, kws, lv) for kws, lv in tasks], greedy)
    candidates = [(kws, lv, clean_instruction(r[0])) for (kws, lv), r in zip(tasks, raw)]
    instructions = [c for c in candidates if len(c[2].split()) >= 3]
    report["instructions"] = len(instructions)
    report["instructions_unusable"] = len(candidates) - len(instructions)
    if not instructions:
        raise DataError(
            f"DS² stage 2 (instructions) produced no usable instruction for domain '{cfg.domain}' from "
            f"{len(tasks)} requests. Use a stronger generator or fewer levels"
        )
    sampling = Sampling(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, n=cfg.samples, seed=cfg.seed)
    samples = llm.chat([[{"role": "user", "content": ins}] for _, _, ins in instructions], sampling)
    records, shares = [], []
    for i, ((kws, level, ins), outs) in enumerate(zip(instructions, samples)):
        target, size = majority(outs, cfg.agreement)
        share = size / max(len(outs), 1)
        shares.append(share)
        if share < cfg.threshold or not target.strip():
            continue
        records.append(
            Example(
                messages=[Message("user", ins), Message("assistant", target.strip())],
                id=f"ds2-{cfg.domain}-{i}",
                domain=cfg.domain,
                source="ds2",
                meta={
                    "generator": llm.name,
                    "keywords": kws,
                    "bloom": level,
                    "consistency": round(share, 3),
                    "samples": len(outs),
                    "seed": cfg.seed,
                },
            )
        )
    report.update(
        validated=len(records),
        rejected_inconsistent=len(instructions) - len(records),
        by_level={lv: sum(1 for r in records if r.meta["bloom"] == lv) for lv in BLOOM},
    )
    if not records:
        raise DataError(
            f"DS² stage 3 (self-consistency) kept none of {len(instructions)} instructions for domain "
            f"'{cfg.domain}' at threshold {cfg.threshold}. Lower ds2.threshold or ds2.agreement, or "
            "use a stronger generator"
        )
    return records, report
