"""Preference pairs from feedback (RLAIF): sample the policy k times per prompt, score the samples,
pair the best with the worst.

Scorers (`PreferenceConfig.scorer`):
- `judge_pairwise` — an LLM judge compares every two distinct samples in both orders (k·(k−1)
  calls per prompt); the two orders decide together (`llm.verdicts.combine`: a disagreement is a
  tie). A sample's score is its share of points (win 1, tie ½) over its decided comparisons.
- `judge_rating` — the judge rates each sample 1–10 (`Rating: N`, the data-quality prompt).
- `reward` — a reward model's scalar (`tuneforge train configs/reward.yaml`), via `score_fn`.
- `rule` — a Python function by dotted path (`data/rules.py`: exact_match, brevity, …) against
  the prompt's source record.

Nothing is guessed: a verdict that does not parse leaves that comparison (or rating) out and is
counted; a prompt whose best and worst samples score the same (or differ by no more than
`min_margin`) is a *tie* and gives no pair; a prompt with fewer than two distinct scored samples
gives none either. Every pair keeps in `meta` the sampling settings, every sample, every score and
every raw verdict, so a pair can be audited back to the judge's words. Output records use TRL's
`prompt` / `chosen` / `rejected` keys, so `tuneforge train configs/dpo.yaml data.train=OUT/preferences.jsonl`
trains on them unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from itertools import combinations

from tuneforge.config import SEED
from tuneforge.data.quality import judge_prompt
from tuneforge.data.rules import Rule
from tuneforge.errors import ConfigError, suggest
from tuneforge.llm.client import LLM, Sampling
from tuneforge.llm.config import LLMConfig
from tuneforge.llm.verdicts import combine, pairwise_prompt, parse_choice, parse_rating
from tuneforge.records import Example, Message, PreferencePair

SCORERS = ("judge_pairwise", "judge_rating", "reward", "rule")
ScoreFn = Callable[[list[list[Message]], list[str]], list[float]]


@dataclass
class PreferenceConfig:
    prompts: str = field(default="", metadata={"help": "records whose prompts are sampled ('' = off)"})
    limit: int = field(default=0, metadata={"help": "use the first N prompts (0 = all)", "ge": 0})
    k: int = field(default=4, metadata={"help": "samples per prompt", "ge": 2})
    temperature: float = field(default=0.8, metadata={"help": "sampling temperature (> 0)", "gt": 0})
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling mass", "gt": 0, "le": 1})
    max_new_tokens: int = field(default=128, metadata={"help": "tokens per sample", "ge": 1})
    seed: int = field(default=0, metadata={"help": "sampling seed", **SEED})
    policy: LLMConfig = field(default_factory=LLMConfig, metadata={"help": "the model sampled (local or served)"})
    scorer: str = field(default="judge_pairwise", metadata={"help": "judge_pairwise | judge_rating | reward | rule"})
    judge: LLMConfig = field(default_factory=LLMConfig, metadata={"help": "judge_*: the judging model"})
    reward_model: str = field(default="", metadata={"help": "reward: a reward-model run directory"})
    rule: str = field(
        default="tuneforge.data.rules.exact_match", metadata={"help": "rule: dotted path of rule(answer, record)"}
    )
    min_margin: float = field(
        default=0.0, metadata={"help": "a pair needs best − worst > this, else it is a tie", "ge": 0}
    )

    def __post_init__(self):
        if self.scorer not in SCORERS:
            raise ConfigError(
                f"preferences.scorer '{self.scorer}' unknown.{suggest(self.scorer, SCORERS)} "
                f"Use one of {', '.join(SCORERS)}"
            )
        if self.k < 2:
            raise ConfigError(f"preferences.k must be ≥ 2 (a pair needs two samples), got {self.k}")
        if self.prompts and self.scorer == "reward" and not self.reward_model:
            raise ConfigError("preferences.scorer=reward needs preferences.reward_model (a reward-model run)")

    def sampling(self) -> Sampling:
        return Sampling(
            max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p, n=self.k, seed=self.seed
        )


def _distinct(samples: list[str]) -> list[int]:
    """Indices of the first occurrence of each distinct sample (identical samples are one answer)."""
    seen: dict[str, int] = {}
    for j, s in enumerate(samples):
        seen.setdefault(s.strip(), j)
    return sorted(seen.values())


def _pairwise_scores(judge: LLM, record: Example, samples: list[str], keep: list[int]) -> tuple[list, list[dict]]:
    """Per-sample share of points over decided comparisons (None: none decided) and every verdict."""
    pairs = list(combinations(keep, 2))
    q = record.instruction
    sampling = Sampling(max_new_tokens=8)
    ab = judge.chat([pairwise_prompt(q, samples[i], samples[j]) for i, j in pairs], sampling)
    ba = judge.chat([pairwise_prompt(q, samples[j], samples[i]) for i, j in pairs], sampling)
    points: dict[int, list[float]] = {j: [] for j in keep}
    verdicts = []
    for (i, j), r1, r2 in zip(pairs, ab, ba, strict=True):
        verdict = combine(parse_choice(r1[0]), parse_choice(r2[0]))
        verdicts.append({"a": i, "b": j, "reply_ab": r1[0], "reply_ba": r2[0], "verdict": verdict})
        if verdict is not None:
            win = {"model1": 1.0, "model2": 0.0, "tie": 0.5}[verdict]
            points[i].append(win)
            points[j].append(1.0 - win)
    scores = [sum(points[j]) / len(points[j]) if j in points and points[j] else None for j in range(len(samples))]
    return scores, verdicts


def _rating_scores(judge: LLM, record: Example, samples: list[str], keep: list[int]) -> tuple[list, list[dict]]:
    replies = judge.chat(
        [judge_prompt(Example(messages=[*record.prompt, Message("assistant", samples[j])])) for j in keep],
        Sampling(max_new_tokens=16),
    )
    scores: list[float | None] = [None] * len(samples)
    verdicts = []
    for j, reply in zip(keep, replies, strict=True):
        scores[j] = parse_rating(reply[0])
        verdicts.append({"sample": j, "reply": reply[0], "rating": scores[j]})
    return scores, verdicts


def build_preferences(
    records: list[Example],
    policy: LLM,
    cfg: PreferenceConfig,
    judge: LLM | None = None,
    score_fn: ScoreFn | None = None,
    rule: Rule | None = None,
) -> tuple[list[PreferencePair], dict]:
    """(pairs, report) from sampling `policy` on each record's prompt and scoring with `cfg.scorer`:
    `judge` for judge_*, `score_fn(prompts, answers)` for reward, `rule` for rule."""
    need = {"judge_pairwise": judge, "judge_rating": judge, "reward": score_fn, "rule": rule}[cfg.scorer]
    if need is None:
        raise ConfigError(f"preferences.scorer={cfg.scorer} was given nothing to score with")
    sampling = cfg.sampling()
    samples = policy.chat([[{"role": m.role, "content": m.content} for m in r.prompt] for r in records], sampling)
    if cfg.scorer == "reward":
        assert score_fn is not None
        flat = score_fn([r.prompt for r, s in zip(records, samples) for _ in s], [x for s in samples for x in s])
    pairs, unpaired = [], []
    counts = {"ties": 0, "too_few_scored": 0, "parse_failures": 0, "verdicts": 0}
    margins = []
    for n, (record, texts) in enumerate(zip(records, samples, strict=True)):
        keep = _distinct(texts)
        verdicts: list[dict] = []
        if cfg.scorer == "judge_pairwise":
            assert judge is not None
            scores, verdicts = (
                _pairwise_scores(judge, record, texts, keep) if len(keep) > 1 else ([None] * len(texts), [])
            )
            counts["parse_failures"] += sum(v["verdict"] is None for v in verdicts)
        elif cfg.scorer == "judge_rating":
            assert judge is not None
            scores, verdicts = _rating_scores(judge, record, texts, keep)
            counts["parse_failures"] += sum(v["rating"] is None for v in verdicts)
        elif cfg.scorer == "reward":
            scores = [flat[n * cfg.k + j] if j in keep else None for j in range(len(texts))]
        else:
            assert rule is not None
            scores = [float(rule(t, record)) if j in keep else None for j, t in enumerate(texts)]
        counts["verdicts"] += len(verdicts)
        scored = [j for j in keep if scores[j] is not None]
        if len(scored) < 2:
            counts["too_few_scored"] += 1
            unpaired.append({"id": record.id, "why": f"{len(scored)} distinct scored samples of {len(texts)}"})
            continue
        best = max(scored, key=lambda j: scores[j])  # the first of equal scores
        worst = min(scored, key=lambda j: scores[j])
        margin = scores[best] - scores[worst]
        if margin <= cfg.min_margin:
            counts["ties"] += 1
            unpaired.append({"id": record.id, "why": f"tie: best − worst = {margin:g} ≤ min_margin {cfg.min_margin:g}"})
            continue
        margins.append(margin)
        pairs.append(
            PreferencePair(
                prompt=record.prompt,
                chosen=texts[best],
                rejected=texts[worst],
                id=f"{record.id}-pref",
                domain=record.domain,
                task=record.task,
                source=f"preferences/{policy.name}",
                meta={
                    "prompt_id": record.id,
                    "policy": policy.name,
                    "sampling": asdict(sampling),
                    "scorer": cfg.scorer,
                    "judge": judge.name if judge is not None and cfg.scorer.startswith("judge") else None,
                    "rule": cfg.rule if cfg.scorer == "rule" else None,
                    "reward_model": cfg.reward_model if cfg.scorer == "reward" else None,
                    "samples": texts,
                    "scores": scores,
                    "chosen_index": best,
                    "rejected_index": worst,
                    "margin": margin,
                    "verdicts": verdicts,
                },
            )
        )
    report = {
        "prompts": len(records),
        "samples": sum(len(s) for s in samples),
        "distinct_samples": sum(len(_distinct(s)) for s in samples),
        "pairs": len(pairs),
        **counts,
        "mean_margin": sum(margins) / len(margins) if margins else None,
        "scorer": cfg.scorer,
        "policy": policy.name,
        "sampling": asdict(sampling),
        "unpaired": unpaired[:50],
    }
    return pairs, report
