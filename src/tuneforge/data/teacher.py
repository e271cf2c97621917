"""Distillation data: D_distill = {(x, M_teacher(x))} — a teacher's answers to a set of prompts.

Any LLM client is a teacher (the embedded model offline, or a server/hosted API through
`OpenAIChatLLM`); wrap it in `CachedLLM` and a rerun repeats no call. Empty answers — common with
weak teachers — are not written as training data, and are counted in the report, never silent.
"""

from __future__ import annotations

from dataclasses import asdict

from tuneforge.llm.client import LLM, Sampling
from tuneforge.records import EvalItem, Example, Message


def distill(
    llm: LLM, prompts: list[Example | EvalItem], sampling: Sampling | None = None, min_words: int = 1
) -> tuple[list[Example], dict]:
    """Teacher answers for each prompt (the turns before an Example's response, or an EvalItem's
    messages); returns (records, report)."""
    sampling = sampling or Sampling()
    turns = [p.prompt if isinstance(p, Example) else p.messages for p in prompts]
    answers = llm.chat([[{"role": m.role, "content": m.content} for m in t] for t in turns], sampling)
    records, empty = [], []
    for p, t, outs in zip(prompts, turns, answers):
        text = outs[0].strip()
        if len(text.split()) < min_words:
            empty.append(p.id)
            continue
        records.append(
            Example(
                messages=[*t, Message("assistant", text)],
                id=f"distill-{p.id}",
                domain=p.domain,
                task=p.task,
                source="distill",
                meta={"generator": llm.name, "sampling": asdict(sampling), "prompt_id": p.id},
            )
        )
    return records, {
        "prompts": len(prompts),
        "kept": len(records),
        "empty_answers": len(empty),
        "empty_ids": empty[:50],
    }
