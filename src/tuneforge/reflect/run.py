"""`tuneforge reflect run CONFIG`: Algorithm 1 over a set of (documents, instruction) items, with a
trace, the alignment matrices, their heatmap, and the refined answers as SFT data.

    OUT/config.yaml        the resolved config
    OUT/trace.jsonl        every step of every iteration (retrieval, questions, replies, verdicts,
                           scores, convergence checks, reflections) — written as it happens
    OUT/alignment.json     per item: A (levels × iterations, null = not reached or not parsed),
                           iterations, converged_at, per-level convergence, parse failures
    OUT/alignment.png      heatmap of A (mean over items) + iterations to converge per level
    OUT/reflected.jsonl    the final answers as SFT records (TRL `messages`), source
                           `self-improve/reflect` — list it under `manual.files` of `data build`
    OUT/report.md, report.html

Every model call goes through the request cache OUT/llm_cache.sqlite: a rerun (or a run after a
crash) replays what was done and continues.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tuneforge.config import save_config
from tuneforge.errors import DataError, check_choices, suggest
from tuneforge.files import run_directory, write_text_atomic
from tuneforge.llm.config import LLMConfig, make_llm
from tuneforge.models import EMBEDDED_ENCODER
from tuneforge.paths import shipped as shipped_data
from tuneforge.records import Example, Message
from tuneforge.reflect.agents import StudentAgent, TeacherAgent
from tuneforge.reflect.passages import load_documents
from tuneforge.reflect.reflection import ItemResult, LoopConfig, ReflectItem, nan_to_none, reflect_items
from tuneforge.reflect.report import write_reflect_report

SOURCE = "self-improve/reflect"
EXPORT_ANSWERS = ("final", "best")
ITEM_KEYS = ("id", "instruction", "domain", "documents")


@dataclass
class ReflectRunConfig:
    output_dir: str = field(default="runs/reflect", metadata={"help": "run directory"})
    items: str = field(default="", metadata={"help": "items YAML ('' = the shipped data/reflect/items.yaml)"})
    documents_dir: str = field(
        default="", metadata={"help": "documents folder ('' = the shipped data/reflect/documents)"}
    )
    limit: int = field(default=0, metadata={"help": "first N items only (0 = all)", "ge": 0})
    teacher: LLMConfig = field(default_factory=LLMConfig)
    student: LLMConfig = field(default_factory=LLMConfig)
    encoder: str = field(default=EMBEDDED_ENCODER, metadata={"help": "sentence encoder for sim() and embedding search"})
    loop: LoopConfig = field(default_factory=LoopConfig)
    question_tokens: int = field(default=48, metadata={"help": "teacher: tokens per question", "ge": 1})
    verdict_tokens: int = field(default=64, metadata={"help": "teacher: tokens per verdict", "ge": 1})
    verdict: str = field(
        default="text",
        metadata={
            "help": "text (the teacher writes 'Rating: N', any client) | probability (expected digit under a local "
            "teacher's next-token distribution, G-Eval style)"
        },
    )
    min_rating_mass: float = field(
        default=0.0,
        metadata={
            "help": "probability verdicts: below this P(next token is a digit) the verdict counts as a failure",
            "ge": 0,
            "le": 1,
        },
    )
    answer_tokens: int = field(default=160, metadata={"help": "student: tokens per answer / reflection", "ge": 1})
    reply_tokens: int = field(default=96, metadata={"help": "student: tokens per reply to a question", "ge": 1})
    export_converged_only: bool = field(default=False, metadata={"help": "export only items that converged"})
    export_answer: str = field(
        default="final",
        metadata={
            "help": "final (Algorithm 1's output: the last evaluated answer) | best (the evaluated answer whose "
            "round has the highest mean alignment — a guard against rewrites that got worse)"
        },
    )

    def __post_init__(self):
        check_choices([self.export_answer], EXPORT_ANSWERS, "export_answer")


def shipped(name: str) -> Path:
    return shipped_data("reflect", name)


def load_items(path: str | Path) -> list[ReflectItem]:
    """Items from a YAML list; errors name the file, the item's line and the key."""
    from tuneforge.config import read_yaml

    path = Path(path)
    rows, node = read_yaml(path, "reflect items file")
    if not isinstance(rows, list) or not rows:
        raise DataError("expected a non-empty YAML list of items (- id: …, instruction: …)", path=str(path))
    items, seen = [], set()
    for child, row in zip(getattr(node, "value", []), rows):
        line = child.start_mark.line + 1
        if not isinstance(row, dict):
            raise DataError("an item must be a mapping with id and instruction", path=str(path), line=line)
        for key in row:
            if key not in ITEM_KEYS:
                raise DataError(
                    f"unknown key '{key}'.{suggest(key, ITEM_KEYS)} Keys: {', '.join(ITEM_KEYS)}",
                    path=str(path),
                    line=line,
                    field=str(key),
                )
        for key in ("id", "instruction"):
            if not str(row.get(key) or "").strip():
                raise DataError(f"the item has no {key}", path=str(path), line=line, field=key)
        if row["id"] in seen:
            raise DataError(f"duplicate item id '{row['id']}'", path=str(path), line=line, field="id")
        seen.add(row["id"])
        docs = row.get("documents") or []
        if not isinstance(docs, list):
            raise DataError(
                "documents must be a list of file names ([] = all)", path=str(path), line=line, field="documents"
            )
        items.append(
            ReflectItem(
                str(row["id"]), str(row["instruction"]).strip(), str(row.get("domain", "")), [str(d) for d in docs]
            )
        )
    return items


def chosen_round(r: ItemResult, answer: str = "final") -> int:
    """The round whose answer is exported: the last one, or the one with the highest mean A (ties: earliest;
    rounds whose cells are all empty are skipped; none scored → the last)."""
    if answer == "final":
        return r.iterations - 1
    means = [np.nanmean(r.matrix[:, t]) if not np.isnan(r.matrix[:, t]).all() else -np.inf for t in range(r.iterations)]
    return int(np.argmax(means)) if max(means) > -np.inf else r.iterations - 1


def export_records(
    results: list[ItemResult], teacher: str, student: str, converged_only: bool = False, answer: str = "final"
) -> list[Example]:
    """The refined answers as SFT records: the user turn holds the retrieved context + instruction."""
    rows = []
    for r in results:
        if converged_only and r.converged_at is None:
            continue
        t = chosen_round(r, answer)
        last = r.matrix[:, t]
        rows.append(
            Example(
                messages=[
                    Message("user", f"Context:\n{r.context}\n\nInstruction: {r.item.instruction}"),
                    Message("assistant", r.answers[t]),
                ],
                id=f"reflect-{r.item.id}",
                domain=r.item.domain,
                task="reflect",
                source=SOURCE,
                meta={
                    "generator": student,
                    "teacher": teacher,
                    "step": "reflect",
                    "iterations": r.iterations,
                    "exported_round": t,
                    "converged_at": r.converged_at,
                    "alignment": None if np.isnan(last).all() else float(np.nanmean(last)),
                    "parse_failures": r.parse_failures,
                    "initial_answer": r.answers[0],
                    "passages": [f"{p.doc}#{p.index}" for p in r.passages],
                },
            )
        )
    return rows


def reflect_run(cfg: ReflectRunConfig, teacher_llm=None, student_llm=None, encoder=None) -> Path:
    """Run the loop over the items of `cfg`; clients and encoder may be passed in (tests, notebooks)."""
    out = Path(cfg.output_dir)
    items = load_items(cfg.items or shipped("items.yaml"))[: cfg.limit or None]
    docs_dir = Path(cfg.documents_dir) if cfg.documents_dir else shipped("documents")
    cache = {}

    def passages(item):
        key = tuple(item.documents)
        if key not in cache:
            cache[key] = load_documents(docs_dir, item.documents, cfg.loop.passage_words)
        return cache[key]

    for it in items:  # fail on a missing document before any model call or file written
        passages(it)
    with run_directory(out, "reflect"):
        save_config(cfg, out / "config.yaml")
        if teacher_llm is None:
            teacher_llm = make_llm(cfg.teacher, out / "llm_cache.sqlite", "teacher")
        if student_llm is None:
            student_llm = (
                teacher_llm
                if cfg.student == cfg.teacher
                else make_llm(cfg.student, out / "llm_cache.sqlite", "student")
            )
        if encoder is None:
            from tuneforge.evaluate.scoring import make_encoder

            encoder = make_encoder(cfg.encoder)
        teacher = TeacherAgent(teacher_llm, cfg.question_tokens, cfg.verdict_tokens, cfg.verdict, cfg.min_rating_mass)
        student = StudentAgent(student_llm, cfg.answer_tokens, cfg.reply_tokens)
        with open(out / "trace.jsonl", "w", encoding="utf-8") as f:

            def trace(row):
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                f.flush()

            results = reflect_items(items, passages, teacher, student, encoder, cfg.loop, trace)
        summary = summarise(results, cfg.loop.levels, cfg.loop.max_iterations, cfg.loop.epsilon)
        summary["teacher"], summary["student"], summary["verdict"] = teacher_llm.name, student_llm.name, cfg.verdict
        summary["ratings"] = _rating_stats(out / "trace.jsonl")
        write_text_atomic(out / "alignment.json", json.dumps(summary, indent=2))
        records = export_records(
            results, teacher_llm.name, student_llm.name, cfg.export_converged_only, cfg.export_answer
        )
        with open(out / "reflected.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in records)
        write_reflect_report(summary, out)
        return out


def _rating_stats(trace_path: Path) -> dict:
    """How the teacher's ratings spread (a judge that gives every reply the same score measures nothing)."""
    rows = [json.loads(x) for x in trace_path.read_text(encoding="utf-8").splitlines()]
    ratings = [r["rating"] for r in rows if r["step"] == "evaluate" and r["rating"] is not None]
    masses = [r["rating_mass"] for r in rows if r["step"] == "evaluate" and r.get("rating_mass") is not None]
    out: dict[str, Any] = {"n": len(ratings)}
    if ratings:
        out |= {"mean": float(np.mean(ratings)), "sd": float(np.std(ratings)), "min": min(ratings), "max": max(ratings)}
    if masses:
        out["digit_mass_mean"] = float(np.mean(masses))
    return out


def summarise(results: list[ItemResult], levels: list[str], T: int, eps: float) -> dict:
    import warnings

    def cells(m):
        return [nan_to_none(np.round(row, 4)) for row in m]

    with warnings.catch_warnings():  # a cell no item reached stays NaN ("mean of empty slice")
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(np.stack([r.matrix for r in results]), axis=0)
    level_iters = {lv: [r.level_converged_at[j] for r in results] for j, lv in enumerate(levels)}
    return {
        "levels": levels,
        "max_iterations": T,
        "epsilon": eps,
        "n_items": len(results),
        "converged": sum(r.converged_at is not None for r in results),
        "parse_failures": sum(r.parse_failures for r in results),
        "verdicts": sum(int(r.iterations) * len(levels) for r in results),
        "mean_matrix": cells(mean),
        "level_converged_at": level_iters,
        "items": {
            r.item.id: {
                "domain": r.item.domain,
                "instruction": r.item.instruction,
                "matrix": cells(r.matrix),
                "iterations": r.iterations,
                "converged_at": r.converged_at,
                "level_converged_at": dict(zip(levels, r.level_converged_at)),
                "parse_failures": r.parse_failures,
            }
            for r in results
        },
    }
