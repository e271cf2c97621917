"""Algorithm 1 of seed 001: reflective teacher–student learning, run for many items in lockstep.

For each item (documents, instruction I):
    PREPROCESS documents into passages; RETRIEVE the top-k for I; AGGREGATE them into a context C
    R_0 = GENERATE(C, I)
    for t = 0 … T−1:
        for each level l_j:                                 (all items × levels in one batch)
            q   = TeacherAgent.GenerateQuestion(I, l_j, R_t)
            r   = StudentAgent.Answer(C, I, R_t, q)
            v   = TeacherAgent.Evaluate(C, l_j, q, r)        (rating 1–10 + feedback; may not parse)
            A[j, t] = COMPUTEALIGNMENT(r, I, v)              (eq. 31, see alignment.py)
        if CHECKCONVERGENCE(A, t): stop                     (eq. 32; t ≥ 1)
        if t < T−1: R_{t+1} = StudentAgent.Reflect(C, I, R_t, all parsed feedback of iteration t)
The final answer is the last evaluated one (R_t at the stopping iteration): a reflection after the
last evaluation would leave an answer nobody checked.

Batching: every step runs for all still-active items (× levels) in one call of the client, so a
local model answers them in a few generate batches; items that converge drop out. Every step is
written to the trace as it happens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from tuneforge.errors import ConfigError
from tuneforge.reflect.agents import StudentAgent, TeacherAgent
from tuneforge.reflect.alignment import alignment, converged, level_convergence, quality, similarity
from tuneforge.reflect.passages import RETRIEVERS, Passage, aggregate, retrieve


@dataclass
class ReflectItem:
    id: str
    instruction: str
    domain: str = ""
    documents: list[str] = field(default_factory=list)  # document names ([] = every document)


@dataclass
class LoopConfig:
    levels: list[str] = field(
        default_factory=lambda: ["basic", "intermediate", "advanced", "expert"],
        metadata={"help": "difficulty levels l_j, easiest first", "min_len": 1},
    )
    max_iterations: int = field(default=3, metadata={"help": "T: evaluation rounds at most", "ge": 1})
    epsilon: float = field(default=0.05, metadata={"help": "ε of eq. 32 (‖A[:,t] − A[:,t−1]‖₂ < ε stops)", "gt": 0})
    retriever: str = field(default="bm25", metadata={"help": f"{' | '.join(RETRIEVERS)}"})
    top_k: int = field(default=3, metadata={"help": "passages retrieved per instruction", "ge": 1})
    passage_words: int = field(default=80, metadata={"help": "PREPROCESS: words per passage at most", "ge": 1})

    def __post_init__(self):
        if not self.levels:
            raise ConfigError("loop.levels must name at least one difficulty level")
        if self.max_iterations < 1 or self.top_k < 1 or self.epsilon <= 0:
            raise ConfigError("loop.max_iterations and loop.top_k must be ≥ 1 and loop.epsilon > 0")
        if self.retriever not in RETRIEVERS:
            raise ConfigError(f"loop.retriever '{self.retriever}' unknown; use one of {', '.join(RETRIEVERS)}")


@dataclass
class ItemResult:
    item: ReflectItem
    context: str
    passages: list[Passage]
    answers: list[str]  # answers[t] is the answer evaluated at iteration t
    matrix: np.ndarray  # A, (levels, T); NaN where not reached or not parsed
    iterations: int  # evaluation rounds run
    converged_at: int | None  # t where eq. 32 held, None when stopped at T
    level_converged_at: list[int | None]
    parse_failures: int

    @property
    def final_answer(self) -> str:
        return self.answers[self.iterations - 1]


def reflect_items(
    items: list[ReflectItem],
    passages: Callable[[ReflectItem], list[Passage]],
    teacher: TeacherAgent,
    student: StudentAgent,
    encoder,
    cfg: LoopConfig,
    trace: Callable[[dict], None] = lambda row: None,
) -> list[ItemResult]:
    """Run Algorithm 1 for `items`; `passages(item)` gives each item's preprocessed documents."""
    levels, T = cfg.levels, cfg.max_iterations
    bar = tqdm(total=1 + 4 * T, desc=f"reflect ({len(items)} items)", unit="step")
    retrieved = {it.id: retrieve(passages(it), it.instruction, cfg.top_k, cfg.retriever, encoder) for it in items}
    context = {it.id: aggregate(retrieved[it.id]) for it in items}
    first = student.generate([(context[it.id], it.instruction) for it in items])
    answers = {it.id: [a] for it, a in zip(items, first)}
    bar.update()
    for it in items:
        trace(
            {
                "item": it.id,
                "iteration": 0,
                "step": "generate",
                "retrieved": [f"{p.doc}#{p.index}" for p in retrieved[it.id]],
                "context": context[it.id],
                "answer": answers[it.id][0],
            }
        )
    A = {it.id: np.full((len(levels), T), np.nan) for it in items}
    stop: dict[str, tuple[int, int | None]] = {}  # id → (iterations run, converged_at)
    failures = {it.id: 0 for it in items}
    inst_vec = {it.id: v for it, v in zip(items, np.asarray(encoder([it.instruction for it in items])))}
    active = list(items)
    for t in range(T):
        if not active:
            break
        bar.set_postfix(round=t, active=len(active))
        cells = [(it, j) for it in active for j in range(len(levels))]
        questions = teacher.generate_questions([(it.instruction, levels[j], answers[it.id][t]) for it, j in cells])
        bar.update()
        replies = student.answer(
            [(context[it.id], it.instruction, answers[it.id][t], q) for (it, _), q in zip(cells, questions)]
        )
        bar.update()
        verdicts = teacher.evaluate(
            [(context[it.id], levels[j], q, r) for (it, j), q, r in zip(cells, questions, replies)]
        )
        bar.update()
        sims = similarity(np.asarray(encoder(replies)), np.stack([inst_vec[it.id] for it, _ in cells]))
        feedback: dict[str, list[tuple[str, str]]] = {it.id: [] for it in active}
        for (it, j), q, r, v, s in zip(cells, questions, replies, verdicts, sims):
            A[it.id][j, t] = alignment(s, v.rating, v.low, v.high)
            failures[it.id] += not v.parsed
            if v.parsed and v.feedback:
                feedback[it.id].append((levels[j], v.feedback))
            trace(
                {
                    "item": it.id,
                    "iteration": t,
                    "step": "evaluate",
                    "level": levels[j],
                    "question": q,
                    "reply": r,
                    "verdict": v.raw,
                    "rating": v.rating,
                    "feedback": v.feedback,
                    "parse_failure": not v.parsed,
                    "rating_scale": [v.low, v.high],
                    "rating_mass": v.mass,
                    "similarity": float(s),
                    "quality": None if v.rating is None else quality(v.rating, v.low, v.high),
                    "alignment": None if np.isnan(A[it.id][j, t]) else float(A[it.id][j, t]),
                }
            )
        still, to_reflect = [], []
        for it in active:
            done = converged(A[it.id], t, cfg.epsilon)
            delta = float(np.linalg.norm(A[it.id][:, t] - A[it.id][:, t - 1])) if t else None
            trace(
                {
                    "item": it.id,
                    "iteration": t,
                    "step": "check",
                    "column": nan_to_none(A[it.id][:, t]),
                    "delta_norm": None if delta is None or np.isnan(delta) else delta,
                    "converged": done,
                }
            )
            if done or t == T - 1:
                stop[it.id] = (t + 1, t if done else None)
            else:
                still.append(it)
                to_reflect.append(it)
        if to_reflect:
            new = student.reflect(
                [(context[it.id], it.instruction, answers[it.id][t], feedback[it.id]) for it in to_reflect]
            )
            for it, a in zip(to_reflect, new):
                answers[it.id].append(a)
                trace({"item": it.id, "iteration": t, "step": "reflect", "feedback": feedback[it.id], "answer": a})
        bar.update()
        active = still
    bar.close()
    results = []
    for it in items:
        n, at = stop[it.id]
        results.append(
            ItemResult(
                it,
                context[it.id],
                retrieved[it.id],
                answers[it.id][:n],
                A[it.id],
                n,
                at,
                level_convergence(A[it.id], n, cfg.epsilon),
                failures[it.id],
            )
        )
    return results


def nan_to_none(values) -> list[float | None]:
    """JSON-ready floats: NaN (not reached / not parsed) becomes null."""
    return [None if np.isnan(x) else float(x) for x in values]
