"""Distillation data: D_distill = {(x, M_teacher(x))} — a teacher's answers to a set of prompts.

Any LLM client is a teacher (the embedded model offline, or a server/hosted API through
`OpenAIChatLLM`); wrap it in `CachedLLM` and a rerun repeats no call. Empty answers — common with
weak teachers — are not written as training data, and are counted in the report, never silent.

A prompt that declares tools is asked with them (`tools=`), and the answer is read back into its
trace, words and calls (`tool_text.parse_turn`). An answer is kept only when every call it makes
parses and satisfies its tool's schema; the others are rejected and counted by reason
(`malformed`: a call block that is not a JSON object with a name; `schema`: a call to an undeclared
tool or with arguments its schema refuses), with the first ids, in the report the manifest keeps.
"""

from __future__ import annotations

from tuneforge.llm.client import LLM, Sampling, chat_with_tools
from tuneforge.records import EvalItem, Example, Message
from tuneforge.tool_text import parse_turn
from tuneforge.tool_use import ToolCall, schema_problem


def distill(
    llm: LLM, prompts: list[Example | EvalItem], sampling: Sampling | None = None, min_words: int = 1
) -> tuple[list[Example], dict]:
    """Teacher answers for each prompt (the turns before an Example's response, or an EvalItem's
    messages); returns (records, report)."""
    sampling = sampling or Sampling()
    turns = [p.prompt if isinstance(p, Example) else p.messages for p in prompts]
    answers = chat_with_tools(llm, [[m.to_openai() for m in t] for t in turns], [p.tools for p in prompts], sampling)
    records, empty = [], []
    rejected: dict[str, list[str]] = {"malformed": [], "schema": []}
    for p, t, outs in zip(prompts, turns, answers):
        text = outs[0].strip()
        reply = Message("assistant", text)
        if p.tools:
            turn = parse_turn(text)
            if turn.malformed:
                rejected["malformed"].append(p.id)
                continue
            if any(schema_problem(c, p.tools) for c in turn.calls):
                rejected["schema"].append(p.id)
                continue
            calls = tuple(ToolCall(c.name, c.arguments, f"call_{k}") for k, c in enumerate(turn.calls))
            reply = Message("assistant", turn.content, calls, turn.reasoning)
        if not reply.tool_calls and len(reply.content.split()) < min_words:
            empty.append(p.id)
            continue
        records.append(
            Example(
                messages=[*t, reply],
                id=f"distill-{p.id}",
                domain=p.domain,
                task=p.task,
                source="distill",
                meta={"generator": llm.name, "sampling": sampling.key(), "prompt_id": p.id},
                tools=p.tools,
            )
        )
    report = {"prompts": len(prompts), "kept": len(records), "empty_answers": len(empty), "empty_ids": empty[:50]}
    if any(p.tools for p in prompts):
        report["tool_calls"] = {
            "answers_with_calls": sum(bool(r.response_calls) for r in records),
            "calls_kept": sum(len(r.response_calls) for r in records),
            "rejected": {reason: len(ids) for reason, ids in rejected.items()},
            "rejected_ids": {reason: ids[:50] for reason, ids in rejected.items() if ids},
        }
    return records, report
