"""Tool-use examples from tool schemas alone: a teacher writes the questions, then answers them.

For every tool set (each distinct `tools` list of the records `tool_synth.tools` names), the teacher
is shown one tool's definition at a time and asked for questions a user might put that the tool
answers, with concrete values (`per_tool` samples per tool), and shown the set's names to ask for
questions none of them answers (`no_tool`). Each question is then put to the teacher *with the
tools* — `teacher.distill`, the same path as distillation — and kept only when every call it makes
parses and satisfies its schema. The report counts the questions written, rejected (empty, too
long, a copy of another, the prompt echoed) and the answers rejected by reason; `called_intended`
says how many answers to a tool's questions call that tool (a weak teacher often calls another).

Hand-written: no kept library generates tool-use data from schemas offline (distilabel's tasks call
hosted models and are not a dependency here); the prompts are a few lines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from tuneforge.config import SEED
from tuneforge.data.seed import load_spec
from tuneforge.data.teacher import distill
from tuneforge.errors import ConfigError
from tuneforge.llm.client import LLM, Sampling
from tuneforge.records import EvalItem, Example, Message


@dataclass
class ToolSynthConfig:
    enabled: bool = field(
        default=False, metadata={"help": "write tool-use questions from tool schemas, then answer them"}
    )
    tools: str = field(
        default="seed:tools:train", metadata={"help": "records whose `tools` lists are the tool sets (any format)"}
    )
    per_tool: int = field(default=2, metadata={"help": "questions asked for per tool", "ge": 1})
    no_tool: int = field(default=1, metadata={"help": "questions per tool set that need no tool", "ge": 0})
    max_question_words: int = field(default=60, metadata={"help": "drop longer questions", "ge": 1})
    temperature: float = field(default=0.8, metadata={"help": "sampling temperature of the questions", "gt": 0})
    max_new_tokens: int = field(default=64, metadata={"help": "tokens per question", "ge": 1})
    seed: int = field(default=0, metadata={"help": "sampling seed", **SEED})


def question_prompt(tool: dict) -> list[dict]:
    fn = tool["function"]
    return [{"role": "user", "content": (
        "An assistant can call this function:\n"
        f"{json.dumps(fn, ensure_ascii=False)}\n\n"
        "Write one question a user might ask that this function answers. Use concrete values "
        f"(names, places, numbers) for its arguments. Reply with the question only.")}]  # fmt: skip


def no_tool_prompt(tools: list[dict], domain: str) -> list[dict]:
    names = ", ".join(t["function"]["name"] for t in tools)
    about = f" about {domain}" if domain else ""
    return [{"role": "user", "content": (
        f"Write one general question{about} that an assistant answers from its own knowledge, without any "
        f"of these functions: {names}. Reply with the question only.")}]  # fmt: skip


def clean_question(text: str) -> str:
    """The question in a reply: its first non-empty line, without a label or quotes."""
    line = next((x.strip() for x in text.strip().splitlines() if x.strip()), "")
    for label in ("question:", "user:", "q:"):
        if line.lower().startswith(label):
            line = line[len(label) :].strip()
    return line.strip('"').strip()


def tool_sets(spec: str) -> list[tuple[list[dict], str, str]]:
    """(tools, domain, system turn) of each distinct tool list among the records of `spec`."""
    seen: dict[str, tuple[list[dict], str, str]] = {}
    for r in load_spec(spec):
        if isinstance(r, (Example, EvalItem)) and r.tools:
            system = next((m.content for m in r.messages if m.role == "system"), "")
            seen.setdefault(json.dumps(r.tools, sort_keys=True), (r.tools, r.domain, system))
    if not seen:
        raise ConfigError(f"tool_synth.tools={spec} holds no record with tools. Give records that declare `tools`")
    return list(seen.values())


def tool_synth(llm: LLM, cfg: ToolSynthConfig, answer_tokens: int = 200) -> tuple[list[Example], dict]:
    """Questions written from the tool schemas, answered with the tools; returns (records, report)."""
    asks: list[tuple[list[dict], str, str, str]] = []  # (tools, domain, system, intended tool or "")
    prompts: list[list[dict]] = []
    for tools, domain, system in tool_sets(cfg.tools):
        for t in tools:
            asks.append((tools, domain, system, t["function"]["name"]))
            prompts.append(question_prompt(t))
        if cfg.no_tool:
            asks.append((tools, domain, system, ""))
            prompts.append(no_tool_prompt(tools, domain))
    counts = [cfg.per_tool if intended else cfg.no_tool for *_, intended in asks]
    sampling = Sampling(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, seed=cfg.seed,
                        n=max(counts))  # fmt: skip
    replies = llm.chat(prompts, sampling)
    rejected = {"empty": 0, "too long": 0, "duplicate": 0, "echoes the prompt": 0}
    items: list[Example | EvalItem] = []
    seen: set[str] = set()
    for (tools, domain, system, intended), prompt, outs, n in zip(asks, prompts, replies, counts):
        for k, text in enumerate(outs[:n]):
            q = clean_question(text)
            why = (
                "empty" if not q
                else "too long" if len(q.split()) > cfg.max_question_words
                else "duplicate" if q.lower() in seen
                else "echoes the prompt" if q[:40] in prompt[0]["content"]
                else ""
            )  # fmt: skip
            if why:
                rejected[why] += 1
                continue
            seen.add(q.lower())
            turns = ([Message("system", system)] if system else []) + [Message("user", q)]
            pattern = "synth_call" if intended else "synth_no_tool"
            item_id = f"tool-synth-{domain or 'any'}-{intended or 'none'}-{len(items)}-{k}"
            items.append(EvalItem(messages=turns, references=[""], id=item_id, domain=domain, tools=tools,
                                  meta={"pattern": pattern, "intended_tool": intended}))  # fmt: skip
    records, report = distill(llm, items, Sampling(max_new_tokens=answer_tokens)) if items else ([], {})
    meta = {f"distill-{i.id}": i.meta for i in items}
    for r in records:
        r.source = "tool_synth"
        r.meta.update(meta[r.id])
    meant = [r for r in records if r.meta.get("intended_tool")]
    return records, {
        "tool_sets": len({json.dumps(a[0], sort_keys=True) for a in asks}),
        "questions_asked_for": sum(counts),
        "questions_kept": len(items),
        "questions_rejected": rejected,
        "answers": report,
        "called_intended": sum(any(c.name == r.meta["intended_tool"] for c in r.response_calls) for r in meant),
        "answered_intended_questions": len(meant),
    }
