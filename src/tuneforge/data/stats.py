"""`tuneforge data stats`: what a data file holds — record types, domains, sources, tasks, tool use
(tools declared, calls made, parallel calls, tool results, reasoning traces) and token lengths of
prompts and responses."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from tuneforge.data.io import detect_format, read_records
from tuneforge.records import EvalItem, Example, Generation, PreferencePair


def _texts(rec) -> tuple[str, str]:
    """(prompt text, response text) of any record type."""
    if isinstance(rec, Example):
        return "\n".join(m.content for m in rec.prompt), rec.response
    if isinstance(rec, PreferencePair):
        return "\n".join(m.content for m in rec.prompt), rec.chosen
    if isinstance(rec, EvalItem):
        return "\n".join(m.content for m in rec.messages), rec.references[0] if rec.references else ""
    if isinstance(rec, Generation):
        return "\n".join(m.content for m in rec.prompt), rec.generation
    raise TypeError(type(rec))


def _messages(rec) -> list:
    return rec.messages if isinstance(rec, (Example, EvalItem)) else rec.prompt


def tool_use_stats(records: list) -> dict:
    """How much tool use and reasoning the records hold (all zero for plain chat data)."""
    turns = [m for r in records for m in _messages(r)]
    calls = [len(m.tool_calls) for m in turns if m.tool_calls]
    names = Counter(c.name for m in turns for c in m.tool_calls)
    return {
        "records_with_tools": sum(bool(getattr(r, "tools", None)) for r in records),
        "tools_declared": len({t["function"]["name"] for r in records for t in getattr(r, "tools", [])}),
        "calls": sum(calls),
        "turns_with_calls": len(calls),
        "parallel_call_turns": sum(n > 1 for n in calls),
        "tool_results": sum(m.role == "tool" for m in turns),
        "reasoning_traces": sum(bool(m.reasoning) for m in turns),
        # calls or traces still written in the text (a Hermes file read as plain jsonl: --from hermes parses them)
        "turns_with_markup": sum(
            m.role == "assistant" and ("<tool_call>" in m.content or m.content.lstrip().startswith("<think>"))
            for m in turns
        ),
        "calls_per_tool": dict(names.most_common(10)),
    }


def _summary(values: list[int]) -> dict:
    a = np.asarray(values or [0])
    return {
        "min": int(a.min()),
        "mean": round(float(a.mean()), 1),
        "p50": int(np.percentile(a, 50)),
        "p95": int(np.percentile(a, 95)),
        "max": int(a.max()),
        "total": int(a.sum()),
    }


def dataset_stats(path: str | Path, tokenizer: str | None = None, format: str | None = None) -> dict:
    """Counts and length statistics; lengths in tokens of `tokenizer` (a model name), else words."""
    fmt = format or detect_format(path)
    records = read_records(path, fmt)
    if tokenizer:
        from tuneforge.models import load_tokenizer

        tok = load_tokenizer(tokenizer)
        count = lambda s: len(tok(s, add_special_tokens=False)["input_ids"])  # noqa: E731
    else:
        count = lambda s: len(s.split())  # noqa: E731
    prompts, responses = zip(*[_texts(r) for r in records]) if records else ((), ())
    p_len, r_len = [count(s) for s in prompts], [count(s) for s in responses]
    kinds = Counter(str(r.meta.get("kind")) for r in records if r.meta.get("kind"))
    return {
        "file": str(path),
        "format": fmt,
        "records": len(records),
        "types": dict(Counter(type(r).__name__ for r in records)),
        "domains": dict(Counter(r.domain or "(none)" for r in records)),
        "sources": dict(Counter(getattr(r, "source", "") or "(none)" for r in records)),
        "kinds": dict(kinds),
        "tasks": dict(Counter(r.task or "(none)" for r in records).most_common(10)),
        "tool_use": tool_use_stats(records),
        "unit": f"tokens ({tokenizer})" if tokenizer else "words",
        "prompt_length": _summary(p_len),
        "response_length": _summary(r_len),
        "total_length": _summary([a + b for a, b in zip(p_len, r_len)]),
    }


def format_stats(s: dict) -> str:
    lines = [f"{s['file']}: {s['records']} records ({s['format']})"]
    for key in ("types", "domains", "sources", "kinds", "tasks"):
        if s[key]:
            lines.append(f"  {key}: " + ", ".join(f"{k} {v}" for k, v in s[key].items()))
    t = s["tool_use"]
    if t["turns_with_markup"]:
        lines.append(
            f"  {t['turns_with_markup']} assistant turns hold <tool_call> or <think> markup as text: if this is a "
            "Hermes-style file, read it with --from hermes to parse them into calls and traces"
        )
    if t["calls"] or t["records_with_tools"] or t["reasoning_traces"] or t["tool_results"]:
        lines.append(
            f"  tool use: {t['records_with_tools']} records with tools ({t['tools_declared']} tools), "
            f"{t['calls']} calls in {t['turns_with_calls']} turns ({t['parallel_call_turns']} parallel), "
            f"{t['tool_results']} tool results, {t['reasoning_traces']} reasoning traces"
        )
        if t["calls_per_tool"]:
            lines.append("  calls per tool: " + ", ".join(f"{k} {v}" for k, v in t["calls_per_tool"].items()))
    lines.append(f"  lengths in {s['unit']}:")
    for key in ("prompt_length", "response_length", "total_length"):
        v = s[key]
        lines.append(
            f"    {key.split('_')[0]:<9} min {v['min']}  mean {v['mean']}  p50 {v['p50']}  "
            f"p95 {v['p95']}  max {v['max']}  total {v['total']}"
        )
    return "\n".join(lines)
