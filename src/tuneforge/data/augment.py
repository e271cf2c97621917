"""Augmentation: Mosaic-style composition, LLM paraphrase, and token-level augmentation (g_aug).

1. **Mosaic composition** (after Mosaic-IT, Li et al. 2024): 2–3 single-turn records are joined
   into one instruction whose response is composed from theirs, without any model call:
   - `concatenate`: answer the listed instructions in order;
   - `interleave`: the instruction names an order (a permutation other than the listed one) and the
     response answers in that order — the model must track which answer goes where;
   - `format`: the instruction states a format rule (a heading, a tag or a label per answer) and
     the response follows it.
   Records are composed within one domain when it has enough records (the composite keeps that
   domain), otherwise across domains (domain `mixed`). Each composite names its parts in
   `meta.parents`.
2. **Paraphrase**: the LLM rewrites an instruction; the response is kept. A rewrite is rejected —
   and counted by reason — when it is empty, identical to the original (after normalising), much
   longer than the original (the model answered instead of rewriting), or copies the request.
3. **Token-level** g_aug(x): each content word of the instruction is, independently, replaced by a
   synonym with probability `synonym_prob` (a small table shipped here: no WordNet download is
   possible offline), and if not, by a mask token with probability `mask_prob`. The response is unchanged;
   a draw that changes nothing is not written.
Every augmented record has `source = "augment/<kind>"` and its parent ids, seed and parameters.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from tuneforge.config import SEED
from tuneforge.data.record_text import STOP_WORDS, words
from tuneforge.errors import ConfigError
from tuneforge.llm.client import LLM, Sampling
from tuneforge.records import Example, Message

MOSAIC_STRATEGIES = ("concatenate", "interleave", "format")
FORMAT_RULES = {
    "heading": ("Put each answer under a heading of the form '### Task N'.", "### Task {n}\n{answer}"),
    "tags": ("Wrap each answer in <answerN> and </answerN> tags.", "<answer{n}>\n{answer}\n</answer{n}>"),
    "label": ("Begin each answer with 'Answer N:' on its own line.", "Answer {n}:\n{answer}"),
}
# A small hand-written synonym table for g_aug: WordNet (nltk) needs a corpus download, which the
# offline default cannot do, and these words are the ones common in the shipped domain instructions.
SYNONYMS = {
    "explain": ["describe", "clarify"],
    "describe": ["explain", "outline"],
    "list": ["name", "enumerate"],
    "give": ["provide", "offer"],
    "provide": ["give", "supply"],
    "show": ["demonstrate", "illustrate"],
    "tell": ["inform", "let know"],
    "help": ["assist", "support"],
    "make": ["create", "produce"],
    "write": ["compose", "draft"],
    "create": ["make", "produce"],
    "find": ["locate", "identify"],
    "use": ["employ", "apply"],
    "need": ["require", "want"],
    "want": ["wish", "would like"],
    "buy": ["purchase", "acquire"],
    "get": ["obtain", "receive"],
    "start": ["begin", "commence"],
    "stop": ["end", "cease"],
    "choose": ["pick", "select"],
    "pick": ["choose", "select"],
    "compare": ["contrast", "weigh"],
    "improve": ["enhance", "better"],
    "reduce": ["lower", "decrease"],
    "increase": ["raise", "boost"],
    "avoid": ["prevent", "steer clear of"],
    "check": ["verify", "confirm"],
    "important": ["essential", "crucial"],
    "main": ["primary", "chief"],
    "simple": ["plain", "easy"],
    "quick": ["fast", "rapid"],
    "fast": ["quick", "rapid"],
    "big": ["large", "sizeable"],
    "small": ["little", "minor"],
    "good": ["sound", "solid"],
    "bad": ["poor", "harmful"],
    "common": ["frequent", "typical"],
    "typical": ["usual", "common"],
    "different": ["distinct", "various"],
    "difference": ["distinction", "contrast"],
    "benefits": ["advantages", "upsides"],
    "risks": ["dangers", "hazards"],
    "steps": ["stages", "actions"],
    "ways": ["methods", "approaches"],
    "tips": ["advice", "suggestions"],
    "example": ["instance", "illustration"],
    "problem": ["issue", "difficulty"],
    "question": ["query", "inquiry"],
    "answer": ["reply", "response"],
    "money": ["funds", "cash"],
    "doctor": ["physician", "clinician"],
    "medicine": ["medication", "drug"],
    "symptoms": ["signs", "indications"],
    "trip": ["journey", "travel"],
    "travel": ["journey", "trip"],
    "student": ["learner", "pupil"],
    "students": ["learners", "pupils"],
    "teacher": ["instructor", "educator"],
    "lawyer": ["attorney", "solicitor"],
    "contract": ["agreement", "deal"],
    "rights": ["entitlements", "protections"],
    "rules": ["regulations", "norms"],
    "safe": ["secure", "protected"],
    "usually": ["normally", "generally"],
    "often": ["frequently", "regularly"],
    "briefly": ["concisely", "in short"],
    "short": ["brief", "concise"],
    "cost": ["price", "expense"],
}


@dataclass
class AugmentConfig:
    mosaic: int = field(default=0, metadata={"help": "composite records to make (0 = off)", "ge": 0})
    mosaic_sizes: list[int] = field(
        default_factory=lambda: [2, 3], metadata={"help": "instructions per composite", "ge": 2, "min_len": 1}
    )
    mosaic_strategies: list[str] = field(
        default_factory=lambda: list(MOSAIC_STRATEGIES),
        metadata={"help": "concatenate | interleave | format", "min_len": 1},
    )
    paraphrase: int = field(
        default=0, metadata={"help": "records whose instruction the LLM paraphrases (0 = off)", "ge": 0}
    )
    paraphrase_max_ratio: float = field(
        default=2.5, metadata={"help": "reject paraphrases longer than this × the original", "gt": 0}
    )
    token: int = field(default=0, metadata={"help": "records given token-level augmentation (0 = off)", "ge": 0})
    mask_prob: float = field(
        default=0.1, metadata={"help": "per content word: replace with the mask token", "ge": 0, "le": 1}
    )
    synonym_prob: float = field(
        default=0.3, metadata={"help": "per content word: swap for a synonym", "ge": 0, "le": 1}
    )
    mask_token: str = field(default="[MASK]", metadata={"help": "what a masked word becomes"})
    temperature: float = field(default=0.7, metadata={"help": "paraphrase sampling temperature", "ge": 0})
    max_new_tokens: int = field(default=128, metadata={"help": "tokens per paraphrase", "ge": 1})
    seed: int = field(default=0, metadata={"help": "choice and sampling seed", **SEED})

    def __post_init__(self):
        bad = [s for s in self.mosaic_strategies if s not in MOSAIC_STRATEGIES]
        if bad or not self.mosaic_strategies:
            raise ConfigError(f"augment.mosaic_strategies {bad or '[]'}: use some of {', '.join(MOSAIC_STRATEGIES)}")
        if not self.mosaic_sizes or any(k < 2 for k in self.mosaic_sizes):
            raise ConfigError(f"augment.mosaic_sizes must be ≥ 2 each, got {self.mosaic_sizes}")
        for name in ("mask_prob", "synonym_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"augment.{name} must be in [0, 1], got {getattr(self, name)}")


def _single_turn(records: list[Example]) -> list[Example]:
    """The records augmentation rewrites: one user turn and one plain answer. Conversations, and
    records with tools, calls or a trace (their text alone is not the record), are left as they are
    (counted in the report's `pool`)."""
    return [
        r
        for r in records
        if len(r.messages) == 2
        and r.messages[0].role == "user"
        and not r.tools
        and not (r.messages[1].tool_calls or r.messages[1].reasoning)
    ]


def compose(
    parts: list[Example], strategy: str, order: list[int] | None = None, rule: str = "heading"
) -> tuple[str, str]:
    """(instruction, response) of one composite. `order`: the answer order for `interleave`
    (0-based indices into `parts`); `rule`: a FORMAT_RULES key for `format`."""
    n = len(parts)
    listed = "\n".join(f"{i + 1}. {p.instruction.strip()}" for i, p in enumerate(parts))
    if strategy == "concatenate":
        head = f"Answer each of the following {n} instructions, in order, numbering your answers."
        body = "\n\n".join(f"{i + 1}. {p.response.strip()}" for i, p in enumerate(parts))
    elif strategy == "interleave":
        order = order or list(range(n))[::-1]
        names = ", ".join(str(i + 1) for i in order)
        head = f"Answer the following {n} instructions in this order: {names}. Number each answer as its instruction."
        body = "\n\n".join(f"{i + 1}. {parts[i].response.strip()}" for i in order)
    elif strategy == "format":
        ask, template = FORMAT_RULES[rule]
        head = f"Answer each of the following {n} instructions, in order. {ask}"
        body = "\n\n".join(template.format(n=i + 1, answer=p.response.strip()) for i, p in enumerate(parts))
    else:
        raise ConfigError(f"unknown mosaic strategy '{strategy}'; use one of {', '.join(MOSAIC_STRATEGIES)}")
    return f"{head}\n\n{listed}", body


def mosaic(records: list[Example], count: int, cfg: AugmentConfig) -> tuple[list[Example], dict]:
    rng = random.Random(cfg.seed)
    pool = _single_turn(records)
    if count and len(pool) < min(cfg.mosaic_sizes):
        raise ConfigError(
            f"augment.mosaic needs at least {min(cfg.mosaic_sizes)} single-turn records, the sources gave {len(pool)}"
        )
    by_domain: dict[str, list[Example]] = {}
    for r in pool:
        by_domain.setdefault(r.domain, []).append(r)
    out: list = []
    strategies: dict[str, int] = {}
    for i in range(count):
        k = rng.choice(cfg.mosaic_sizes)
        domain = rng.choice(sorted(by_domain))
        group = by_domain[domain] if len(by_domain[domain]) >= k else pool
        parts = rng.sample(group, min(k, len(group)))
        strategy = rng.choice(cfg.mosaic_strategies)
        order = list(range(len(parts)))
        while strategy == "interleave" and order == sorted(order):
            rng.shuffle(order)
        rule = rng.choice(sorted(FORMAT_RULES))
        instruction, response = compose(parts, strategy, order, rule)
        strategies[strategy] = strategies.get(strategy, 0) + 1
        domains = {p.domain for p in parts}
        out.append(
            Example(
                messages=[Message("user", instruction), Message("assistant", response)],
                id=f"mosaic-{i}",
                domain=domains.pop() if len(domains) == 1 else "mixed",
                source="augment/mosaic",
                meta={
                    "parents": [p.id for p in parts],
                    "strategy": strategy,
                    **({"order": [j + 1 for j in order]} if strategy == "interleave" else {}),
                    **({"rule": rule} if strategy == "format" else {}),
                    "seed": cfg.seed,
                },
            )
        )
    return out, {"made": len(out), "by_strategy": strategies}


def paraphrase_prompt(instruction: str) -> list[dict]:
    return [
        {
            "role": "user",
            "content": "Rewrite the instruction below in different words. Keep its meaning and "
            "every detail. Reply with the rewritten instruction only, do not answer it.\n\n"
            f"Instruction: {instruction}",
        }
    ]


def paraphrase_problem(original: str, rewrite: str, max_ratio: float) -> str:
    """Why a paraphrase is rejected ('' = kept)."""
    if not rewrite.strip():
        return "empty"
    if words(rewrite) == words(original):
        return "identical to the original"
    if len(rewrite.split()) > max_ratio * max(len(original.split()), 4):
        return "much longer than the original (answered instead of rewriting?)"
    if "rewrite the instruction" in rewrite.lower() or "rewritten instruction" in rewrite.lower():
        return "copies the request"
    return ""


def _clean_paraphrase(text: str) -> str:
    text = text.strip().split("\n\n")[0].strip()
    text = re.sub(r"^(rewritten |new |paraphrased )?instruction\s*:\s*", "", text, flags=re.I)
    return text.strip().strip('"').strip()


def paraphrase(llm: LLM, records: list[Example], count: int, cfg: AugmentConfig) -> tuple[list[Example], dict]:
    pool = _single_turn(records)[:count]
    sampling = Sampling(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, seed=cfg.seed)
    outs = llm.chat([paraphrase_prompt(r.instruction) for r in pool], sampling) if pool else []
    kept: list = []
    rejected: dict[str, int] = {}
    for r, o in zip(pool, outs):
        text = _clean_paraphrase(o[0])
        why = paraphrase_problem(r.instruction, text, cfg.paraphrase_max_ratio)
        if why:
            rejected[why] = rejected.get(why, 0) + 1
            continue
        kept.append(
            Example(
                messages=[Message("user", text), Message("assistant", r.response)],
                id=f"paraphrase-{r.id}",
                domain=r.domain,
                task=r.task,
                source="augment/paraphrase",
                meta={"parents": [r.id], "generator": llm.name, "sampling": sampling.key()},
            )
        )
    return kept, {"asked": len(pool), "kept": len(kept), "rejected": rejected}


def token_augment_text(
    text: str, rng: random.Random, mask_prob: float, synonym_prob: float, mask_token: str = "[MASK]"
) -> str:
    """g_aug(x): each content word becomes a synonym with probability synonym_prob (when the table
    has one), otherwise the mask token with probability mask_prob; punctuation, spacing and stop
    words are kept."""

    def swap(m: re.Match) -> str:
        word = m.group(0)
        low = word.lower()
        if low in STOP_WORDS:
            return word
        if low in SYNONYMS and rng.random() < synonym_prob:
            new = rng.choice(SYNONYMS[low])
            return new[0].upper() + new[1:] if word[0].isupper() else new
        if rng.random() < mask_prob:
            return mask_token
        return word

    return re.sub(r"[A-Za-z]+", swap, text)


def token_augment(records: list[Example], count: int, cfg: AugmentConfig) -> tuple[list[Example], dict]:
    rng = random.Random(cfg.seed)
    pool = _single_turn(records)[:count]
    out, unchanged = [], 0
    for r in pool:
        text = token_augment_text(r.instruction, rng, cfg.mask_prob, cfg.synonym_prob, cfg.mask_token)
        if text == r.instruction:
            unchanged += 1
            continue
        out.append(
            Example(
                messages=[Message("user", text), Message("assistant", r.response)],
                id=f"token-{r.id}",
                domain=r.domain,
                task=r.task,
                source="augment/token",
                meta={
                    "parents": [r.id],
                    "mask_prob": cfg.mask_prob,
                    "synonym_prob": cfg.synonym_prob,
                    "seed": cfg.seed,
                },
            )
        )
    return out, {"asked": len(pool), "kept": len(out), "unchanged": unchanged}


def augment(records: list[Example], cfg: AugmentConfig, llm: LLM | None = None) -> tuple[list[Example], dict]:
    """All enabled augmentations of `records`; returns (new records, report)."""
    for key, count in (("mosaic", cfg.mosaic), ("paraphrase", cfg.paraphrase), ("token", cfg.token)):
        if count > 100 * len(records):  # as for mixing: a bound, not a run that never ends
            raise ConfigError(
                f"augment.{key}={count} is over 100× the {len(records)} input records. Ask for at most "
                f"{100 * len(records)}, or add records"
            )
    out: list[Example] = []
    report: dict = {}
    if cfg.mosaic or cfg.paraphrase or cfg.token:
        single = len(_single_turn(records))
        report["pool"] = {"single_turn": single, "left_as_they_are": len(records) - single}
    if cfg.mosaic:
        rows, report["mosaic"] = mosaic(records, cfg.mosaic, cfg)
        out += rows
    if cfg.paraphrase:
        if llm is None:
            raise ConfigError("augment.paraphrase needs an LLM (set llm.kind / llm.model)")
        rows, report["paraphrase"] = paraphrase(llm, records, cfg.paraphrase, cfg)
        out += rows
    if cfg.token:
        rows, report["token"] = token_augment(records, cfg.token, cfg)
        out += rows
    return out, report
