"""Super-NaturalInstructions task files as per-task datasets, with the seen/unseen split by task.

A task directory holds `taskNNN_*.json` files in the SuperNI schema (Definition, Positive
Examples, Instances, Categories, ...). Point `load_tasks` at a full clone's `tasks/` folder with
the default split lists, or at a folder with `train/` and `test/` sub-folders (as
../shared/data/superni): tasks under `train/` (or in train_tasks.txt) are *seen*, those under
`test/` (test_tasks.txt) *unseen* — the split is by task, never by instance, so no unseen task
contributes a single training example.

Prompts follow SuperNI's encoding: the definition, then 0–k positive examples, then the instance
("Definition: … Positive Example 1 – Input: … Output: … Now complete the following example –
Input: … Output:"); `phrasing.py` rewrites the instruction into other forms.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tuneforge.errors import DataError, read_text
from tuneforge.records import EvalItem, Example, Message


@dataclass
class SuperNITask:
    name: str
    definition: str
    categories: list[str]
    positive_examples: list[dict]
    instances: list[dict]
    split: str  # "seen" | "unseen"
    domains: list[str] = field(default_factory=list)

    @property
    def category(self) -> str:
        return self.categories[0] if self.categories else "Unknown"


def read_task(path: str | Path, split: str) -> SuperNITask:
    path = Path(path)
    try:
        raw = json.loads(read_text(path, "SuperNI task file"))
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc.msg}", path=str(path), line=exc.lineno) from None
    for key in ("Definition", "Instances"):
        if key not in raw:
            raise DataError(f"a SuperNI task file needs '{key}'", path=str(path), field=key)
    definition = " ".join(raw["Definition"]) if isinstance(raw["Definition"], list) else str(raw["Definition"])
    instances = []
    for i, inst in enumerate(raw["Instances"]):
        out = inst.get("output")
        out = [out] if isinstance(out, str) else out
        if not isinstance(inst.get("input"), str) or not out:
            raise DataError(f"Instances[{i}] needs a string 'input' and a non-empty 'output'", path=str(path))
        instances.append({"id": inst.get("id", f"{path.stem}-{i}"), "input": inst["input"], "output": list(out)})
    return SuperNITask(
        name=path.stem,
        definition=definition.strip(),
        categories=list(raw.get("Categories", [])),
        positive_examples=[e for e in raw.get("Positive Examples", []) if "input" in e and "output" in e],
        instances=instances,
        split=split,
        domains=list(raw.get("Domains", [])),
    )


def load_tasks(root: str | Path, max_instances: int = 0) -> list[SuperNITask]:
    """Seen tasks (train) and unseen tasks (test) from `root` (train/ + test/, or tasks/ + splits/)."""
    root = Path(root)
    if not root.exists():
        raise DataError("SuperNI directory not found", path=str(root))
    if (root / "train").is_dir() and (root / "test").is_dir():
        files = [(p, "seen") for p in sorted((root / "train").glob("task*.json"))] + [
            (p, "unseen") for p in sorted((root / "test").glob("task*.json"))
        ]
    elif (root / "tasks").is_dir() and (root / "splits" / "default").is_dir():
        names = {
            s: [x.strip() for x in (root / "splits" / "default" / f"{s}_tasks.txt").read_text().split() if x.strip()]
            for s in ("train", "test")
        }
        files = [(root / "tasks" / f"{n}.json", "seen") for n in names["train"]] + [
            (root / "tasks" / f"{n}.json", "unseen") for n in names["test"]
        ]
    else:
        raise DataError(
            "expected train/ and test/ folders of task files, or a natural-instructions clone with "
            "tasks/ and splits/default/",
            path=str(root),
        )
    tasks = [read_task(p, s) for p, s in files]
    if max_instances:
        for t in tasks:
            t.instances = t.instances[:max_instances]
    if not tasks:
        raise DataError("no taskNNN_*.json files found", path=str(root))
    return tasks


def encode(task: SuperNITask, text: str, k_examples: int = 0, definition: str | None = None) -> str:
    """SuperNI's prompt: definition, k positive examples, then the instance."""
    parts = [f"Definition: {task.definition if definition is None else definition}"]
    for j, ex in enumerate(task.positive_examples[:k_examples], 1):
        parts.append(f"Positive Example {j} -\nInput: {ex['input']}\nOutput: {ex['output']}")
    parts.append(f"Now complete the following example -\nInput: {text}\nOutput:")
    return "\n\n".join(parts)


def task_examples(task: SuperNITask, k_examples: int = 0, limit: int = 0) -> list[Example]:
    """Training examples (first reference as the target), with task and category kept."""
    rows = task.instances[:limit] if limit else task.instances
    return [
        Example(
            messages=[
                Message("user", encode(task, inst["input"], k_examples)),
                Message("assistant", inst["output"][0]),
            ],
            id=inst["id"],
            task=task.name,
            domain=task.category,
            source="superni",
            meta={"split": task.split, "category": task.category},
        )
        for inst in rows
    ]


def task_eval_items(task: SuperNITask, k_examples: int = 0, limit: int = 0, prompt=None) -> list[EvalItem]:
    """Evaluation items with every reference; `prompt(task, input) -> str` overrides the encoding."""
    rows = task.instances[:limit] if limit else task.instances
    return [
        EvalItem(
            messages=[
                Message("user", prompt(task, inst["input"]) if prompt else encode(task, inst["input"], k_examples))
            ],
            references=inst["output"],
            id=inst["id"],
            task=task.name,
            domain=task.category,
            meta={"split": task.split},
        )
        for inst in rows
    ]
