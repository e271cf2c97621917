"""LLM-judge quality scoring of training records, with a keep threshold.

The judge (any LLM client, temperature 0, answers cached) rates each (instruction, response) from
1 to 10 and must answer `Rating: N`. Parsing is strict: the first `Rating: N` with 1 ≤ N ≤ 10, or
a reply that is just a number in range; anything else is a parse failure. Failures are counted in
the report and, by default, the record is kept (an unreadable verdict is no evidence of a bad
record) — set `drop_unparsed` to remove them instead; either way each is listed.

The record's text is escaped before it goes into the judge prompt (`<` and `>` become `&lt;`/`&gt;`),
so a response cannot close the tag it sits in and speak to the judge as the prompt.
"""

from __future__ import annotations

from tuneforge.data.dedup import Removal
from tuneforge.llm.client import LLM, Sampling
from tuneforge.llm.verdicts import escape, parse_rating
from tuneforge.records import Example


def judge_prompt(record: Example) -> list[dict]:
    return [
        {"role": "system", "content": "You are a strict grader of training data for an assistant."},
        {
            "role": "user",
            "content": "Rate how well the response follows the instruction: is it correct, helpful, complete and safe? "
            "Use a scale from 1 (useless or harmful) to 10 (excellent). Reply exactly in the form "
            "'Rating: N' and nothing else.\n\n"
            f"<instruction>\n{escape(record.instruction)}\n</instruction>\n\n"
            f"<response>\n{escape(record.response)}\n</response>",
        },
    ]


def judge_quality(
    llm: LLM, records: list[Example], threshold: float = 6.0, drop_unparsed: bool = False, max_new_tokens: int = 16
) -> tuple[list[Example], list[Removal], dict]:
    """(kept records, removals, report). Each scored record gets `meta['quality']`."""
    replies = llm.chat([judge_prompt(r) for r in records], Sampling(max_new_tokens=max_new_tokens)) if records else []
    kept, removed, scores, failed = [], [], [], []
    for r, reply in zip(records, replies):
        score = parse_rating(reply[0])
        if score is None:
            failed.append({"id": r.id, "reply": reply[0][:200]})
            if drop_unparsed:
                removed.append(Removal(r.id, "judge verdict unparseable", detail=reply[0][:200]))
            else:
                kept.append(r)
            continue
        scores.append(score)
        r.meta["quality"] = {"score": score, "judge": llm.name}
        if score < threshold:
            removed.append(Removal(r.id, f"quality {score:g} < threshold {threshold:g}", score=score))
        else:
            kept.append(r)
    report = {
        "judged": len(records),
        "parsed": len(scores),
        "parse_failures": len(failed),
        "failed_examples": failed[:20],
        "threshold": threshold,
        "mean_score": round(sum(scores) / len(scores), 3) if scores else None,
        "below_threshold": sum(s < threshold for s in scores),
        "kept": len(kept),
    }
    return kept, removed, report
