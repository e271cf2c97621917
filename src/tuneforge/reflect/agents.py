"""The teacher and the student of Algorithm 1, each a thin layer of prompts over any client of the
LLM protocol (`tuneforge.llm.client`) — a local model, an OpenAI-compatible server, the same model
for both roles — usually wrapped in `CachedLLM`, so a rerun replays every call from the cache.

Every method takes a batch (lists) so that a local model answers many items in one generate call.
Model text placed inside a teacher prompt is escaped (`verdicts.escape`): an answer cannot close
the tag it sits in and pose as the teacher's instructions.

Two verdict modes:
- `text` (any client): the teacher writes `Rating: N` (1–10) and `Feedback: …`. A reply without a
  parsable rating is a parse failure: `Verdict.rating` is None and the raw reply is kept.
- `probability` (a local model): the rating is the expected digit under the teacher's next-token
  distribution after its answer has been started with "Rating: " — Σ d·p(d) / Σ p(d) over d = 1…9
  (G-Eval's probability-weighted score). Small models that never write the format still give a
  score; `mass` = Σ p(d) says how much the model meant to write a digit, and a verdict under
  `min_mass` counts as a failure. Feedback still comes from the written reply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tuneforge.llm.client import Sampling
from tuneforge.llm.verdicts import escape, parse_rating

LEVELS = {  # difficulty level → what a question at that level asks for (Bloom-style)
    "basic": "recall a fact that the answer states or should state",
    "intermediate": "explain why or how a step of the answer works",
    "advanced": "apply the answer to a new, concrete case",
    "expert": "judge the limits, risks or trade-offs of the answer",
}


def level_description(level: str) -> str:
    return LEVELS.get(level, f"test the answer at the '{level}' level")


VERDICTS = ("text", "probability")
DIGITS = [str(d) for d in range(1, 10)]


@dataclass
class Verdict:
    rating: float | None  # on [low, high]; None when the reply did not parse
    feedback: str
    raw: str
    low: float = 1.0
    high: float = 10.0
    mass: float | None = None  # probability mode: P(the next token is a digit)

    @property
    def parsed(self) -> bool:
        return self.rating is not None


_FEEDBACK = re.compile(r"feedback\s*[:=]\s*(.+)", re.I | re.S)


def parse_verdict(text: str) -> Verdict:
    rating = parse_rating(text)
    m = _FEEDBACK.search(text)
    feedback = m.group(1).strip() if m else re.sub(r"(?im)^\s*rating\s*[:=].*$", "", text).strip()
    return Verdict(rating, " ".join(feedback.split())[:500], text)


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


class TeacherAgent:
    def __init__(
        self, llm, question_tokens: int = 48, verdict_tokens: int = 64, verdict: str = "text", min_mass: float = 0.0
    ):
        from tuneforge.errors import ConfigError

        if verdict not in VERDICTS:
            raise ConfigError(f"verdict '{verdict}' unknown; use one of {', '.join(VERDICTS)}")
        self.llm, self.verdict, self.min_mass = llm, verdict, min_mass
        self.high = 10 if verdict == "text" else 9
        self.q_sampling = Sampling(max_new_tokens=question_tokens, repetition_penalty=1.1)
        self.v_sampling = Sampling(max_new_tokens=verdict_tokens, repetition_penalty=1.1)

    def generate_questions(self, rows: list[tuple[str, str, str]]) -> list[str]:
        """TeacherAgent.GenerateQuestion(I, l_j, R_t) for each (instruction, level, answer)."""
        prompts = [
            _user(
                f"You are a teacher checking a student's answer at the {level} level "
                f"(a {level} question asks the student to {level_description(level)}).\n\n"
                f"Instruction: {escape(instruction)}\n\nStudent's answer:\n<answer>{escape(answer)}</answer>\n\n"
                f"Ask one {level} question about this answer. Reply with the question only."
            )
            for instruction, level, answer in rows
        ]
        return [a[0].strip() for a in self.llm.chat(prompts, self.q_sampling)]

    def evaluate(self, rows: list[tuple[str, str, str, str]]) -> list[Verdict]:
        """TeacherAgent.Evaluate for each (context, level, question, reply): a rating + feedback."""
        high = self.high
        prompts = [
            _user(
                f"Context:\n<context>{escape(context)}</context>\n\n"
                f"A student answered this {level} question: {escape(question)}\n"
                f"Student's reply:\n<reply>{escape(reply)}</reply>\n\n"
                f"Rate the reply from 1 to {high} ({high} = correct, complete and supported by the context, "
                f"as expected at the {level} level). Write exactly two lines:\n"
                "Rating: N\nFeedback: one sentence on what the student should improve."
            )
            for context, level, question, reply in rows
        ]
        written = [parse_verdict(a[0]) for a in self.llm.chat(prompts, self.v_sampling)]
        if self.verdict == "text":
            return written
        out = []
        for v, probs in zip(written, self.llm.choice_probs(prompts, "Rating: ", DIGITS)):
            mass = float(sum(probs))
            rating = (
                sum((d + 1) * p for d, p in enumerate(probs)) / mass if mass > 0 and mass >= self.min_mass else None
            )
            out.append(Verdict(rating, v.feedback, v.raw, 1.0, 9.0, mass))
        return out


class StudentAgent:
    def __init__(self, llm, answer_tokens: int = 160, reply_tokens: int = 96):
        self.llm = llm
        self.a_sampling = Sampling(max_new_tokens=answer_tokens, repetition_penalty=1.1)
        self.r_sampling = Sampling(max_new_tokens=reply_tokens, repetition_penalty=1.1)

    def generate(self, rows: list[tuple[str, str]]) -> list[str]:
        """GENERATE: a first answer to each (context, instruction)."""
        prompts = [
            _user(f"Use the context to follow the instruction.\n\nContext:\n{context}\n\nInstruction: {instruction}")
            for context, instruction in rows
        ]
        return [a[0].strip() for a in self.llm.chat(prompts, self.a_sampling)]

    def answer(self, rows: list[tuple[str, str, str, str]]) -> list[str]:
        """StudentAgent.Answer for each (context, instruction, current answer, teacher's question)."""
        prompts = [
            _user(
                f'Context:\n{context}\n\nYou answered the instruction "{instruction}" with:\n{answer}\n\n'
                f"Your teacher asks: {question}\nAnswer the teacher's question briefly."
            )
            for context, instruction, answer, question in rows
        ]
        return [a[0].strip() for a in self.llm.chat(prompts, self.r_sampling)]

    def reflect(self, rows: list[tuple[str, str, str, list[tuple[str, str]]]]) -> list[str]:
        """StudentAgent.Reflect for each (context, instruction, current answer, [(level, feedback)])."""
        prompts = []
        for context, instruction, answer, feedback in rows:
            notes = "\n".join(f"- ({level}) {text}" for level, text in feedback) or "- (none parsed)"
            prompts.append(
                _user(
                    f"Context:\n{context}\n\nInstruction: {instruction}\n\nYour previous answer:\n{answer}\n\n"
                    f"Your teacher's feedback:\n{notes}\n\nWrite an improved answer to the instruction that "
                    "uses the feedback and the context. Reply with the answer only."
                )
            )
        return [a[0].strip() for a in self.llm.chat(prompts, self.a_sampling)]
