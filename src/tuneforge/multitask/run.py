"""`tuneforge multitask run CONFIG`: seed 004's Table 1 on SuperNI at laptop scale.

The untuned base model is scored first (row `base`). Then for each method (mixed, per_task_lora,
pcgrad, similarity_reg, pcgrad_similarity) the same base model gets a fresh LoRA adapter (plus one
small adapter per seen task for per_task_lora), trained on the seen tasks with the one loop
(per-task batches; conflict score logged every step); then answers held-out instances of the seen
tasks and instances of the unseen tasks (zero-shot: definition + input). Results per method: seen
and unseen ROUGE-L / exact match (means over tasks) and the generalisation gap with bootstrap 95%
CIs, unseen score per task category (Figure 3), and the mean gradient conflict score over
training. One model is also scored under every phrasing form on the unseen tasks (per-form score,
per-item worst case, spread — Figure 2). Task combinations (Figure 4): `combo_sets` random sets of
`combo_size` seen-task categories, a fresh adapter trained on each set's tasks, every set's
unseen-task scores drawn as one box.

    OUT/results.json, OUT/results.md, OUT/report.html (tables + inline SVG charts), OUT/methods.png,
    OUT/categories.png, OUT/phrasing.png, OUT/combinations.png,
    OUT/<method>/{train_log.jsonl, generations.jsonl}, OUT/phrasing/<form>.jsonl, OUT/combos/<k>/...

The bundled config is sized for 2 CPU cores (well under an hour); a GPU run would use the full
SuperNI train split (756 tasks × 100 instances), k = 2 positive examples, a 1–7B base model and
a few thousand steps.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from tuneforge.config import save_config
from tuneforge.errors import ConfigError, check_choices
from tuneforge.evaluate.model_spec import answer_with_model, check_model_spec, served_model
from tuneforge.files import run_directory, write_text_atomic
from tuneforge.generation import GenerationConfig, generate_answers
from tuneforge.models import EMBEDDED_ENCODER, load_model
from tuneforge.multitask.generalisation import generalisation, phrasing_summary
from tuneforge.multitask.objective import (
    METHODS,
    MultiTaskObjective,
    multitask_batches,
    task_similarity,
)
from tuneforge.multitask.phrasing import FORMS, rewrite
from tuneforge.multitask.report import results_markdown, write_experiment_report
from tuneforge.multitask.superni import load_tasks, task_eval_items, task_examples
from tuneforge.multitask.task_adapters import TaskAdapters
from tuneforge.train.adapters import AdapterConfig, apply_adapter
from tuneforge.train.config import ModelChoice, resolve_auto
from tuneforge.train.loop import TrainConfig, train_loop


@dataclass
class MultiTaskConfig:
    output_dir: str = field(default="runs/superni-multitask", metadata={"help": "experiment directory"})
    superni_dir: str = field(
        default="../shared/data/superni",
        metadata={"help": "train/ + test/ task folders, or a natural-instructions clone (tasks/ + splits/)"},
    )
    model: ModelChoice = field(default_factory=ModelChoice)
    methods: list[str] = field(
        default_factory=lambda: list(METHODS), metadata={"help": ", ".join(METHODS), "min_len": 1}
    )
    seen_tasks: int = field(
        default=6, metadata={"help": "seen (training) tasks used, first N by name (0 = all)", "ge": 0}
    )
    unseen_tasks: int = field(default=0, metadata={"help": "unseen tasks evaluated (0 = all)", "ge": 0})
    train_per_task: int = field(default=40, metadata={"help": "training instances per seen task", "ge": 1})
    eval_per_task: int = field(default=8, metadata={"help": "evaluated instances per task (seen: held out)", "ge": 1})
    k_examples: int = field(default=0, metadata={"help": "positive examples in each prompt", "ge": 0})
    tasks_per_step: int = field(default=0, metadata={"help": "tasks per step (0 = all seen tasks)", "ge": 0})
    temperature: float = field(default=1.0, metadata={"help": "task sampling ∝ n^(1/T)", "gt": 0})
    reg_weight: float = field(default=1.0, metadata={"help": "λ of the similarity regulariser", "ge": 0})
    task_adapter_r: int = field(
        default=4, metadata={"help": "rank of each task's own adapter (per_task_lora)", "ge": 1}
    )
    include_base: bool = field(default=True, metadata={"help": "score the untuned base model as a reference row"})
    base_served: str = field(
        default="",
        metadata={
            "help": "'' = the base row answers in process | openai:MODEL@URL: a served copy of `model` "
            "(vLLM, SGLang, llama.cpp server) answers it, through the eval client (resumable, cached)"
        },
    )
    combo_sets: int = field(
        default=0, metadata={"help": "category sets trained for the combinations box plot (0 = skip)", "ge": 0}
    )
    combo_size: int = field(default=2, metadata={"help": "seen-task categories per set", "ge": 1})
    combo_steps: int = field(default=15, metadata={"help": "optimizer steps per category set", "ge": 1})
    combo_method: str = field(default="mixed", metadata={"help": "method trained on each category set"})
    combo_eval_per_task: int = field(default=4, metadata={"help": "unseen instances per task for each set", "ge": 1})
    encoder: str = field(default=EMBEDDED_ENCODER, metadata={"help": "instruction encoder for task similarity"})
    phrasing_forms: list[str] = field(
        default_factory=lambda: [
            "instruction",
            "instruction_example",
            "template",
            "abstract",
            "declarative",
            "question",
            "role",
            "output_format",
        ],
        metadata={"help": f"forms scored on unseen tasks: {', '.join(FORMS)}"},
    )
    phrasing_method: str = field(default="mixed", metadata={"help": "whose model the phrasing forms are run on"})
    phrasing_per_task: int = field(default=4, metadata={"help": "instances per unseen task for phrasing", "ge": 1})
    bootstrap: int = field(default=500, metadata={"help": "bootstrap resamples for CIs", "ge": 0, "le": 100_000})
    adapter: AdapterConfig = field(default_factory=lambda: AdapterConfig(method="lora", r=8, alpha=16, dropout=0.0))
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(steps=30, batch_size=2, lr=3e-4, log_every=5, max_length=384)
    )
    generation: GenerationConfig = field(default_factory=lambda: GenerationConfig(max_new_tokens=16, batch_size=64))

    RENAMED: ClassVar[dict[str, str]] = {"dtype": "model.dtype", "device": "model.device"}  # until 2026-12

    def __post_init__(self):
        check_choices(self.methods, METHODS, "methods", allow_empty=False)
        check_choices(self.phrasing_forms, FORMS, "phrasing_forms")
        check_choices([self.combo_method], METHODS, "combo_method")
        if self.base_served and not served_model(self.base_served):
            raise ConfigError(
                f"base_served '{self.base_served}' is not a served model: write openai:MODEL@http://HOST:PORT/v1, "
                "or '' to answer with `model.name` in process"
            )
        if self.combo_sets and self.combo_size < 1:
            raise ConfigError(f"combo_size must be ≥ 1 (got {self.combo_size})")


def _load_base(cfg: MultiTaskConfig):
    return load_model(cfg.model.name, cfg.model.dtype, "eager", cfg.model.device)


def _train(cfg: MultiTaskConfig, method: str, by_task: dict, similarity: dict, log_path: Path, steps: int):
    """A fresh adapter on the base, trained with `method`; returns (model, tok, result, task_adapters)."""
    from dataclasses import replace

    import torch

    torch.manual_seed(cfg.train.seed)  # every method and category set starts from the same adapter init
    model, tok = _load_base(cfg)
    model = apply_adapter(model, cfg.adapter)
    adapters = (
        TaskAdapters(model, sorted(by_task), cfg.task_adapter_r, 2 * cfg.task_adapter_r)
        if method == "per_task_lora"
        else None
    )
    sims = {k: v for k, v in similarity.items() if k[0] in by_task and k[1] in by_task}
    obj = MultiTaskObjective(model, method, cfg.train.seed, sims, cfg.reg_weight, adapters)
    batches = multitask_batches(
        by_task,
        tok,
        cfg.train.batch_size,
        cfg.train.max_length,
        cfg.train.mask,
        cfg.train.seed,
        cfg.tasks_per_step,
        cfg.temperature,
    )
    result = train_loop(model, batches, obj.objective(), replace(cfg.train, steps=steps), log_path)
    return model, tok, result, adapters


def _answer(model, tok, items, cfg: MultiTaskConfig, name: str, path: Path, adapters=None, desc: str = ""):
    """Generations for `items`; with task adapters, each seen task's items go through its own adapter
    and all other items through the shared one."""
    if adapters is None:
        return generate_answers(model, tok, items, cfg.generation, name, path, desc=desc)
    groups: dict = {}
    for it in items:
        groups.setdefault(it.task if it.task in adapters.names else None, []).append(it)
    done = {}
    for task, group in groups.items():
        adapters.use(task)
        done.update(
            {
                g.id: g
                for g in generate_answers(
                    model, tok, group, cfg.generation, name, path, desc=f"{desc} ({task or 'shared'})"
                )
            }
        )
    adapters.use(None)
    return [done[it.id] for it in items]


def _conflict(log_path: Path) -> tuple[float, float]:
    log = [json.loads(x) for x in log_path.read_text().splitlines()]
    cos = [r["conflict_mean_cosine"] for r in log if "conflict_mean_cosine" in r]
    frac = [r["conflict_conflict_fraction"] for r in log if "conflict_conflict_fraction" in r]
    return (float(np.mean(cos)) if cos else float("nan"), float(np.mean(frac)) if frac else float("nan"))


def category_sets(tasks, size: int, count: int, seed: int = 0) -> list[tuple[str, ...]]:
    """`count` distinct sets of `size` categories of `tasks`, drawn uniformly (seeded)."""
    cats = sorted({t.category for t in tasks})
    if size > len(cats):
        raise ConfigError(f"combo_size={size} but the seen tasks have only {len(cats)} categories")
    every = list(itertools.combinations(cats, size))
    return sorted(random.Random(seed).sample(every, min(count, len(every))))


def _combinations(cfg: MultiTaskConfig, pool, unseen, similarity: dict, out: Path, base_gens) -> dict:
    items = [it for t in unseen for it in task_eval_items(t, cfg.k_examples, cfg.combo_eval_per_task)]
    ids = {it.id for it in items}
    sets = []
    for k, cats in enumerate(category_sets(pool, cfg.combo_size, cfg.combo_sets, cfg.train.seed)):
        chosen = [t for t in pool if t.category in cats]
        by_task = {t.name: task_examples(t, cfg.k_examples, cfg.train_per_task) for t in chosen}
        model, tok, result, adapters = _train(
            cfg, cfg.combo_method, by_task, similarity, out / "combos" / str(k) / "train_log.jsonl", cfg.combo_steps
        )
        gens = _answer(
            model,
            tok,
            items,
            cfg,
            f"{cfg.model.name}+combo{k}",
            out / "combos" / str(k) / "generations.jsonl",
            adapters,
            desc=f"set {k} answers",
        )
        tasks = generalisation(gens, 0)["tasks"]
        per_task = {t: v["rouge_l"] for t, v in tasks.items()}
        sets.append(
            {
                "categories": list(cats),
                "tasks": sorted(by_task),
                "unseen_per_task": per_task,
                "unseen_mean": float(np.mean(list(per_task.values()))),
                "final_loss": result.final_loss,
            }
        )
        del model
    base = None
    if base_gens is not None:
        base_tasks = generalisation([g for g in base_gens if g.id in ids], 0)["tasks"]
        base = float(np.mean([v["rouge_l"] for v in base_tasks.values()]))
    means = [s["unseen_mean"] for s in sets]
    return {
        "method": cfg.combo_method,
        "size": cfg.combo_size,
        "steps": cfg.combo_steps,
        "eval_per_task": cfg.combo_eval_per_task,
        "sets": sets,
        "base_unseen_mean": base,
        "unseen_mean_min": min(means),
        "unseen_mean_median": float(np.median(means)),
        "unseen_mean_max": max(means),
    }


def run_experiment(cfg: MultiTaskConfig) -> Path:
    out = Path(cfg.output_dir)
    cfg = resolve_auto(cfg, cfg.model.device)
    tasks = load_tasks(cfg.superni_dir)  # the task files and the served base are checked before anything is written
    if cfg.base_served and cfg.include_base:
        check_model_spec(cfg.base_served)
    pool = [t for t in tasks if t.split == "seen"]
    seen = pool[: cfg.seen_tasks or None]
    unseen = [t for t in tasks if t.split == "unseen"][: cfg.unseen_tasks or None]
    short = [t.name for t in pool if len(t.instances) < cfg.train_per_task + cfg.eval_per_task]
    if short:
        raise ConfigError(f"seen tasks {short} have fewer than train_per_task + eval_per_task instances")
    by_task = {t.name: task_examples(t, cfg.k_examples, cfg.train_per_task) for t in seen}
    with run_directory(out, "multitask"):
        save_config(cfg, out / "config.yaml")
        eval_items = []
        for t in seen:  # held-out instances of the seen tasks
            held = task_eval_items(t, cfg.k_examples)[cfg.train_per_task : cfg.train_per_task + cfg.eval_per_task]
            eval_items += held
        for t in unseen:
            eval_items += task_eval_items(t, cfg.k_examples, cfg.eval_per_task)
        similarity = {}
        if any("similarity" in m for m in [*cfg.methods, cfg.combo_method if cfg.combo_sets else ""]):
            from tuneforge.evaluate.scoring import make_encoder

            similarity = task_similarity({t.name: t.definition for t in pool}, make_encoder(cfg.encoder))
        results, models, base_gens = {}, {}, None
        if cfg.include_base:
            start = time.time()
            path = out / "base" / "generations.jsonl"
            if cfg.base_served:
                base_gens, _ = answer_with_model(
                    cfg.base_served, cfg.model.name, eval_items, cfg.generation, path, desc="base"
                )
            else:
                model, tok = _load_base(cfg)
                base_gens = generate_answers(
                    model, tok, eval_items, cfg.generation, cfg.model.name, path, desc="base answers"
                )
                del model
            results["base"] = {
                "generalisation": generalisation(base_gens, cfg.bootstrap, cfg.train.seed),
                "conflict_mean_cosine": float("nan"),
                "conflict_fraction": float("nan"),
                "first_loss": float("nan"),
                "final_loss": float("nan"),
                "seconds": round(time.time() - start, 1),
                "answered_by": cfg.base_served or cfg.model.name,
            }
        for method in cfg.methods:
            start = time.time()
            model, tok, result, adapters = _train(
                cfg, method, by_task, similarity, out / method / "train_log.jsonl", cfg.train.steps
            )
            gens = _answer(
                model,
                tok,
                eval_items,
                cfg,
                f"{cfg.model.name}+{method}",
                out / method / "generations.jsonl",
                adapters,
                desc=f"{method} answers",
            )
            cos, frac = _conflict(out / method / "train_log.jsonl")
            results[method] = {
                "generalisation": generalisation(gens, cfg.bootstrap, cfg.train.seed),
                "conflict_mean_cosine": cos,
                "conflict_fraction": frac,
                "first_loss": result.losses[0],
                "final_loss": result.final_loss,
                "seconds": round(time.time() - start, 1),
            }
            if method == cfg.phrasing_method:
                models[method] = (model, tok, adapters)
            del model
        phrasing = {}
        if cfg.phrasing_forms and cfg.phrasing_method in models:
            model, tok, adapters = models.pop(cfg.phrasing_method)
            by_form = {}
            for form in cfg.phrasing_forms:
                items = [
                    it
                    for t in unseen
                    for it in task_eval_items(
                        t, limit=cfg.phrasing_per_task, prompt=lambda task, x, f=form: rewrite(task, x, f)
                    )
                ]
                by_form[form] = _answer(
                    model,
                    tok,
                    items,
                    cfg,
                    f"{cfg.phrasing_method}:{form}",
                    out / "phrasing" / f"{form}.jsonl",
                    adapters,
                    desc=f"phrasing {form}",
                )
            phrasing = {m: phrasing_summary(by_form, m) for m in ("rouge_l", "exact_match")}
            del model
        combos = _combinations(cfg, pool, unseen, similarity, out, base_gens) if cfg.combo_sets else None
        summary = {
            "config": {
                "seen_tasks": [t.name for t in seen],
                "unseen_tasks": [t.name for t in unseen],
                "train_per_task": cfg.train_per_task,
                "eval_per_task": cfg.eval_per_task,
                "steps": cfg.train.steps,
                "model": cfg.model.name,
            },
            "methods": results,
            "phrasing": phrasing,
            "phrasing_method": cfg.phrasing_method,
            "combinations": combos,
        }
        write_text_atomic(out / "results.json", json.dumps(summary, indent=2))
        write_text_atomic(out / "results.md", results_markdown(summary))
        write_experiment_report(summary, out)
        return out
