"""Deterministic rewrites of a task's instruction into named prompt forms, for phrasing robustness
(seed 004's instruction forms and the survey's Table V prompt-engineering techniques).

Each form is a function (task, input) -> prompt built only from the task's definition, its first
positive example and the input — no model call, so the same form always gives the same prompt:

- `instruction` — the definition, then the input (the plain form);
- `instruction_example` — the definition, one positive example, then the input;
- `template` — a fixed slot template: "Task: … | Input: … | Answer:";
- `abstract` — only the first sentence of the definition (the gist), then the input;
- `declarative` — "The following is an example of <task>. <definition> …";
- `question` — the definition turned into a question ("Can you … ?");
- `role` — role-based: "You are an expert annotator. …";
- `chain_of_thought` — asks to think step by step, then give the answer after "Answer:";
- `few_shot` — two positive examples before the input;
- `output_format` — output-format control ("Reply with only the answer, no explanation.");
- `contextual_grounding` — the input placed first as context, then the instruction.
"""

from __future__ import annotations

import re

from tuneforge.errors import UnknownNameError, suggest
from tuneforge.multitask.superni import SuperNITask, encode


def _first_sentence(text: str) -> str:
    m = re.match(r"(.+?[.!?])(\s|$)", text.strip(), re.S)
    return (m.group(1) if m else text).strip()


def _task_name(task: SuperNITask) -> str:
    return task.name.split("_", 1)[-1].replace("_", " ")


def _question(definition: str) -> str:
    first = _first_sentence(definition).rstrip(".!?")
    first = re.sub(
        r"^(In this task,?\s*)?(you (are|will be) given|you need to|you have to|your task is to)\s*",
        "",
        first,
        flags=re.I,
    )
    return f"Can you do the following: {first[0].lower() + first[1:] if first else first}?"


FORMS = {
    "instruction": lambda t, x: encode(t, x, 0),
    "instruction_example": lambda t, x: encode(t, x, 1),
    "template": lambda t, x: f"Task: {t.definition} | Input: {x} | Answer:",
    "abstract": lambda t, x: encode(t, x, 0, definition=_first_sentence(t.definition)),
    "declarative": lambda t, x: (
        f"The following is an example of {_task_name(t)}. {t.definition}\n\n{x}\n\nThe answer is:"
    ),
    "question": lambda t, x: f"{_question(t.definition)}\n\nInput: {x}\nOutput:",
    "role": lambda t, x: f"You are an expert annotator for the task '{_task_name(t)}'.\n\n" + encode(t, x, 0),
    "chain_of_thought": lambda t, x: (
        encode(t, x, 0).rsplit("Output:", 1)[0]
        + "Think step by step, then give the final answer after 'Answer:'.\nOutput:"
    ),
    "few_shot": lambda t, x: encode(t, x, 2),
    "output_format": lambda t, x: (
        encode(t, x, 0).rsplit("Output:", 1)[0] + "Reply with only the answer, no explanation.\nOutput:"
    ),
    "contextual_grounding": lambda t, x: f"Context:\n{x}\n\nUsing only the context above: {t.definition}\nOutput:",
}


def rewrite(task: SuperNITask, text: str, form: str) -> str:
    if form not in FORMS:
        raise UnknownNameError(f"unknown phrasing form '{form}'.{suggest(form, FORMS)} Available: {', '.join(FORMS)}")
    return FORMS[form](task, text)
