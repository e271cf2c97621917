"""LLM-as-a-judge over stored generations: single-answer ratings (1–10) and pairwise comparison
run in both orders.

- Greedy decoding (temperature 0); every judgment goes through the request cache of the caller's
  `CachedLLM`, so a rerun repeats no call.
- Model text is escaped (`llm.verdicts.escape`) before it goes inside the tagged judge prompt, so an
  answer cannot close its tag and address the judge.
- Parsing is strict (`Rating: N`; `[[A]]`, `[[B]]` or `[[C]]` for a tie). A reply that does not
  parse is a *parse failure*: counted, listed with the reply, and left out of the aggregate —
  never silently scored.
- Pairwise: each item is judged with (A = first model, B = second) and with the order swapped; the
  two verdicts decide together — both for the same model is a win, a disagreement is a tie (it
  was position bias, not preference). The share of items whose two verdicts agree is reported
  as the judge's position consistency.
"""

from __future__ import annotations

from tuneforge.intervals import mean_ci
from tuneforge.llm.client import LLM, Sampling
from tuneforge.llm.verdicts import JUDGE_SYSTEM as SYSTEM
from tuneforge.llm.verdicts import combine, escape, pairwise_prompt, parse_choice, parse_rating
from tuneforge.records import Generation


def single_prompt(g: Generation, with_reference: bool = True) -> list[dict]:
    ref = f"<reference>\n{escape(g.references[0])}\n</reference>\n\n" if with_reference and g.references else ""
    return [
        {"role": "system", "content": SYSTEM},
        {
            "role": "user",
            "content": "Rate the assistant's answer to the question for helpfulness, correctness, relevance and safety, "
            "on a scale from 1 (worst) to 10 (best)"
            + (", using the reference answer as a guide" if ref else "")
            + ". Reply exactly in the form 'Rating: N'.\n\n"
            f"<question>\n{escape(g.instruction)}\n</question>\n\n{ref}<answer>\n{escape(g.generation)}\n</answer>",
        },
    ]


def judge_single(
    llm: LLM,
    gens: list[Generation],
    with_reference: bool = True,
    max_new_tokens: int = 16,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Per-item ratings (None where the verdict did not parse) and the mean rating with its
    bootstrap 95% CI over the parsed items."""
    replies = llm.chat([single_prompt(g, with_reference) for g in gens], Sampling(max_new_tokens=max_new_tokens))
    ratings = [parse_rating(r[0]) for r in replies]
    failed = [{"id": g.id, "reply": r[0][:300]} for g, r, v in zip(gens, replies, ratings) if v is None]
    parsed = [v for v in ratings if v is not None]
    return {
        "judge": llm.name,
        "n": len(gens),
        "parsed": len(parsed),
        "parse_failures": len(failed),
        "failed_examples": failed[:20],
        "score": sum(parsed) / len(parsed) if parsed else float("nan"),
        "ci": mean_ci(parsed, n_boot, seed) if n_boot else [float("nan")] * 2,
        "per_item": ratings,
        "signature": f"judge-single|{llm.name}|1-10|greedy|ref:{'yes' if with_reference else 'no'}",
    }


def judge_pairwise(
    llm: LLM,
    first: list[Generation],
    second: list[Generation],
    max_new_tokens: int = 8,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Compare two models' answers to the same items (matched by id) in both orders. The win rate
    of the second model (a tie counts half) comes with its bootstrap 95% CI over decided items."""
    by_id = {g.id: g for g in second}
    pairs = [(g, by_id[g.id]) for g in first if g.id in by_id]
    sampling = Sampling(max_new_tokens=max_new_tokens)
    ab = llm.chat([pairwise_prompt(a.instruction, a.generation, b.generation) for a, b in pairs], sampling)
    ba = llm.chat([pairwise_prompt(a.instruction, b.generation, a.generation) for a, b in pairs], sampling)
    outcomes, failed, consistent = [], [], 0
    for (a, _), r1, r2 in zip(pairs, ab, ba):
        v1, v2 = parse_choice(r1[0]), parse_choice(r2[0])
        verdict = combine(v1, v2)
        if verdict is None:
            failed.append({"id": a.id, "reply_ab": r1[0][:200], "reply_ba": r2[0][:200]})
        elif (
            v1
            and v2
            and {"A": "model1", "B": "model2", "C": "tie"}[v1] == {"A": "model2", "B": "model1", "C": "tie"}[v2]
        ):
            consistent += 1  # the two orders agree (a tie from disagreement is not agreement)
        outcomes.append(verdict)
    decided = [o for o in outcomes if o is not None]
    wins = {k: decided.count(k) for k in ("model1", "model2", "tie")}
    points = [{"model1": 0.0, "model2": 1.0, "tie": 0.5}[o] for o in decided]
    return {
        "judge": llm.name,
        "models": [first[0].model if first else "", second[0].model if second else ""],
        "n": len(pairs),
        "decided": len(decided),
        "parse_failures": len(failed),
        "failed_examples": failed[:20],
        "wins": wins,
        "win_rate_model2": sum(points) / len(points) if points else float("nan"),
        "win_rate_ci": mean_ci(points, n_boot, seed) if n_boot else [float("nan")] * 2,
        "position_consistency": consistent / len(decided) if decided else float("nan"),
        "per_item": outcomes,
        "ids": [a.id for a, _ in pairs],
        "signature": f"judge-pairwise|{llm.name}|both-orders|disagreement=tie|greedy",
    }
