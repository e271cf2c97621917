"""Tool-call metrics: the answer's calls, parsed back from its text (`tuneforge.tool_text`),
against the item's tools and reference calls. Each is ×100 and per item, so it gets the same
bootstrap CI, per-domain split and macro mean as every per-item metric; an item a metric does not
apply to is None (left out and counted). Items without tools are None for all of them.

- tool_valid     items where the answer attempts a call: every attempted call parses (a complete
                 <tool_call> block holding a JSON object with a name) and satisfies its tool's
                 schema, naming a declared tool. A malformed block counts against it, never dropped.
- tool_name      items whose reference calls: the answer calls the same tools (as a multiset).
- tool_exact     items whose reference calls: the same calls, no more, no fewer — name and
                 arguments compared as parsed JSON (key order does not matter; 1 and 1.0 do not
                 differ, "1" and 1 do), in any order (parallel calls have none).
- tool_arg_f1    items whose reference calls: F1 of the (tool, argument, value) triples of the
                 answer's calls against the reference's (1.0 when both have none).
- tool_abstain   items whose reference answers without a call: the answer attempts none.
"""

from __future__ import annotations

import json
from collections import Counter

from tuneforge.tool_text import parse_turn
from tuneforge.tool_use import ToolCall, schema_problem


def _key(call: ToolCall) -> str:
    return json.dumps([call.name, call.arguments], sort_keys=True, ensure_ascii=False)


def _triples(calls: list[ToolCall]) -> Counter:
    return Counter(
        (c.name, k, json.dumps(v, sort_keys=True, ensure_ascii=False)) for c in calls for k, v in c.arguments.items()
    )


def score_calls(text: str, tools: list[dict], reference: list[ToolCall] | None) -> dict[str, float | None]:
    """Every tool metric of one answer (None where it does not apply)."""
    out: dict[str, float | None] = dict.fromkeys(TOOL_METRICS)
    if reference is None:
        return out
    turn = parse_turn(text)
    attempted = bool(turn.calls or turn.malformed)
    if attempted:
        valid = not turn.malformed and all(schema_problem(c, tools) is None for c in turn.calls)
        out["tool_valid"] = 100.0 * valid
    if not reference:
        out["tool_abstain"] = 100.0 * (not attempted)
        return out
    out["tool_name"] = 100.0 * (Counter(c.name for c in turn.calls) == Counter(c.name for c in reference))
    out["tool_exact"] = 100.0 * (Counter(map(_key, turn.calls)) == Counter(map(_key, reference)))
    pred, ref = _triples(turn.calls), _triples(reference)
    hit = sum((pred & ref).values())
    if not pred and not ref:
        f1 = 1.0
    else:
        p = hit / sum(pred.values()) if pred else 0.0
        r = hit / sum(ref.values()) if ref else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
    out["tool_arg_f1"] = 100.0 * f1
    return out


def _metric(name: str):
    def metric(predictions: list[str], tool_use: list[tuple[list[dict], list[ToolCall] | None]], **_) -> dict:
        per_item = [score_calls(p, tools, ref)[name] for p, (tools, ref) in zip(predictions, tool_use)]
        scored = [v for v in per_item if v is not None]
        return {
            "score": sum(scored) / len(scored) if scored else float("nan"),
            "per_item": per_item,
            "signature": f"{name}|parser:hermes|args:json|x100",
        }

    metric.__name__ = name
    metric.__doc__ = f"`{name}` of the answers (see `tuneforge.evaluate.metrics.tool_calls`)."
    return metric


TOOL_METRICS = ("tool_valid", "tool_name", "tool_exact", "tool_arg_f1", "tool_abstain")
tool_valid, tool_name, tool_exact, tool_arg_f1, tool_abstain = (_metric(n) for n in TOOL_METRICS)
