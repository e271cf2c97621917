"""`tuneforge multitask run CONFIG`: seed 004's Table 1 on SuperNI at laptop scale.

For each method (mixed, pcgrad, similarity_reg, pcgrad_similarity) the same base model gets a fresh
LoRA adapter, trained on the seen tasks with the one loop (per-task batches; conflict score
logged every step); then answers held-out instances of the seen tasks and instances of the unseen
tasks (zero-shot: definition + input). Results per method: seen and unseen ROUGE-L / exact match
(means over tasks) and the generalisation gap with bootstrap 95% CIs, unseen score per task
category, and the mean gradient conflict score over training. One model is also scored under
every phrasing form on the unseen tasks (per-form score, per-item worst case, spread).

    OUT/results.json, OUT/results.md, OUT/methods.png, OUT/phrasing.png, OUT/<method>/{train_log.jsonl,
    generations.jsonl}, OUT/phrasing/<form>.jsonl

The bundled config is sized for 2 CPU cores (well under an hour); a GPU run would use the full
SuperNI train split (756 tasks × 100 instances), k = 2 positive examples, a 1–7B base model and
a few thousand steps.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tuneforge.config import save_config
from tuneforge.errors import ConfigError, check_choices
from tuneforge.generation import GenerationConfig, generate_answers
from tuneforge.models import EMBEDDED_ENCODER, EMBEDDED_MODEL, load_model
from tuneforge.multitask.generalisation import generalisation, phrasing_summary
from tuneforge.multitask.objective import (
    METHODS,
    MultiTaskObjective,
    multitask_batches,
    task_similarity,
)
from tuneforge.multitask.phrasing import FORMS, rewrite
from tuneforge.multitask.superni import load_tasks, task_eval_items, task_examples
from tuneforge.train.adapters import AdapterConfig, apply_adapter
from tuneforge.train.loop import TrainConfig, train_loop


@dataclass
class MultiTaskConfig:
    output_dir: str = field(default="runs/superni-multitask", metadata={"help": "experiment directory"})
    superni_dir: str = field(default="../shared/data/superni", metadata={
        "help": "train/ + test/ task folders, or a natural-instructions clone (tasks/ + splits/)"})
    model: str = field(default=EMBEDDED_MODEL, metadata={"help": "base model"})
    dtype: str = field(default="bfloat16", metadata={"help": "base model dtype"})
    methods: list[str] = field(default_factory=lambda: list(METHODS), metadata={"help": ", ".join(METHODS)})
    seen_tasks: int = field(default=6, metadata={"help": "seen (training) tasks used, first N by name (0 = all)"})
    unseen_tasks: int = field(default=0, metadata={"help": "unseen tasks evaluated (0 = all)"})
    train_per_task: int = field(default=40, metadata={"help": "training instances per seen task"})
    eval_per_task: int = field(default=8, metadata={"help": "evaluated instances per task (seen: held out)"})
    k_examples: int = field(default=0, metadata={"help": "positive examples in each prompt"})
    tasks_per_step: int = field(default=0, metadata={"help": "tasks per step (0 = all seen tasks)"})
    temperature: float = field(default=1.0, metadata={"help": "task sampling ∝ n^(1/T)"})
    reg_weight: float = field(default=1.0, metadata={"help": "λ of the similarity regulariser"})
    encoder: str = field(default=EMBEDDED_ENCODER, metadata={"help": "instruction encoder for task similarity"})
    phrasing_forms: list[str] = field(default_factory=lambda: ["instruction", "instruction_example", "template",
                                                               "abstract", "declarative", "question", "role",
                                                               "output_format"],
                                      metadata={"help": f"forms scored on unseen tasks: {', '.join(FORMS)}"})
    phrasing_method: str = field(default="mixed", metadata={"help": "whose model the phrasing forms are run on"})
    phrasing_per_task: int = field(default=4, metadata={"help": "instances per unseen task for phrasing"})
    bootstrap: int = field(default=500, metadata={"help": "bootstrap resamples for CIs"})
    adapter: AdapterConfig = field(default_factory=lambda: AdapterConfig(method="lora", r=8, alpha=16, dropout=0.0))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=30, batch_size=2, lr=3e-4, log_every=5,
                                                                   max_length=384))
    generation: GenerationConfig = field(default_factory=lambda: GenerationConfig(max_new_tokens=16, batch_size=64))

    def __post_init__(self):
        check_choices(self.methods, METHODS, "methods", allow_empty=False)
        check_choices(self.phrasing_forms, FORMS, "phrasing_forms")


def run_experiment(cfg: MultiTaskConfig) -> Path:
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    tasks = load_tasks(cfg.superni_dir)
    seen = [t for t in tasks if t.split == "seen"][: cfg.seen_tasks or None]
    unseen = [t for t in tasks if t.split == "unseen"][: cfg.unseen_tasks or None]
    short = [t.name for t in seen if len(t.instances) < cfg.train_per_task + cfg.eval_per_task]
    if short:
        raise ConfigError(f"seen tasks {short} have fewer than train_per_task + eval_per_task instances")
    by_task = {t.name: task_examples(t, cfg.k_examples, cfg.train_per_task) for t in seen}
    eval_items = []
    for t in seen:  # held-out instances of the seen tasks
        held = task_eval_items(t, cfg.k_examples)[cfg.train_per_task: cfg.train_per_task + cfg.eval_per_task]
        eval_items += held
    for t in unseen:
        eval_items += task_eval_items(t, cfg.k_examples, cfg.eval_per_task)
    similarity = {}
    if any("similarity" in m for m in cfg.methods):
        from tuneforge.evaluate.runner import make_encoder

        similarity = task_similarity({t.name: t.definition for t in seen}, make_encoder(cfg.encoder))
    results, models = {}, {}
    for method in cfg.methods:
        start = time.time()
        model, tok = load_model(cfg.model, cfg.dtype, "eager", "cpu" if cfg.dtype == "float32" else "auto")
        model = apply_adapter(model, cfg.adapter)
        obj = MultiTaskObjective(model, method, cfg.train.seed, similarity, cfg.reg_weight)
        batches = multitask_batches(by_task, tok, cfg.train.batch_size, cfg.train.max_length, cfg.train.mask,
                                    cfg.train.seed, cfg.tasks_per_step, cfg.temperature)
        result = train_loop(model, batches, obj.objective(), cfg.train, out / method / "train_log.jsonl")
        gens = generate_answers(model, tok, eval_items, cfg.generation, f"{cfg.model}+{method}",
                                out / method / "generations.jsonl", desc=f"{method} answers")
        log = [json.loads(x) for x in (out / method / "train_log.jsonl").read_text().splitlines()]
        conflict = [r["conflict_mean_cosine"] for r in log if "conflict_mean_cosine" in r]
        fraction = [r["conflict_conflict_fraction"] for r in log if "conflict_conflict_fraction" in r]
        results[method] = {"generalisation": generalisation(gens, cfg.bootstrap, cfg.train.seed),
                           "conflict_mean_cosine": float(np.mean(conflict)) if conflict else float("nan"),
                           "conflict_fraction": float(np.mean(fraction)) if fraction else float("nan"),
                           "first_loss": result.losses[0], "final_loss": result.final_loss,
                           "seconds": round(time.time() - start, 1)}
        models[method] = (model, tok)
        if method != cfg.phrasing_method:
            del models[method]
    phrasing = {}
    if cfg.phrasing_forms and cfg.phrasing_method in models:
        model, tok = models[cfg.phrasing_method]
        by_form = {}
        for form in cfg.phrasing_forms:
            items = [it for t in unseen for it in task_eval_items(t, limit=cfg.phrasing_per_task,
                                                                  prompt=lambda task, x, f=form: rewrite(task, x, f))]
            by_form[form] = generate_answers(model, tok, items, cfg.generation, f"{cfg.phrasing_method}:{form}",
                                             out / "phrasing" / f"{form}.jsonl", desc=f"phrasing {form}")
        phrasing = {m: phrasing_summary(by_form, m) for m in ("rouge_l", "exact_match")}
    summary = {"config": {"seen_tasks": [t.name for t in seen], "unseen_tasks": [t.name for t in unseen],
                          "train_per_task": cfg.train_per_task, "eval_per_task": cfg.eval_per_task,
                          "steps": cfg.train.steps, "model": cfg.model},
               "methods": results, "phrasing": phrasing, "phrasing_method": cfg.phrasing_method}
    (out / "results.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    (out / "results.md").write_text(results_markdown(summary), encoding="utf-8")
    _plots(summary, out)
    return out


def _ci(lo_hi) -> str:
    return f"[{lo_hi[0]:.1f}, {lo_hi[1]:.1f}]"


def results_markdown(s: dict) -> str:
    c = s["config"]
    lines = [f"# SuperNI multi-task experiment ({c['model']})", "",
             f"{len(c['seen_tasks'])} seen tasks × {c['train_per_task']} training instances, {c['steps']} steps; "
             f"evaluated on {c['eval_per_task']} held-out instances per seen task and per unseen task "
             f"({len(c['unseen_tasks'])} unseen tasks). ROUGE-L and exact match ×100, means over tasks, "
             "bootstrap 95% CIs; conflict = mean pairwise cosine of task gradients (fraction < 0).", "",
             "| method | seen ROUGE-L | unseen ROUGE-L | gap | seen EM | unseen EM | conflict cos | conflicting pairs | "
             "loss first → final |", "|---|---|---|---|---|---|---|---|---|"]
    for m, r in s["methods"].items():
        g, e = r["generalisation"]["metrics"]["rouge_l"], r["generalisation"]["metrics"]["exact_match"]
        lines.append(f"| {m} | {g['seen']:.1f} {_ci(g['seen_ci'])} | {g['unseen']:.1f} {_ci(g['unseen_ci'])} | "
                     f"{g['gap']:+.1f} {_ci(g['gap_ci'])} | {e['seen']:.1f} | {e['unseen']:.1f} | "
                     f"{r['conflict_mean_cosine']:.3f} | {r['conflict_fraction']:.2f} | "
                     f"{r['first_loss']:.2f} → {r['final_loss']:.2f} |")
    first = next(iter(s["methods"].values()))["generalisation"]["metrics"]["rouge_l"]["unseen_by_category"]
    lines += ["", "## Unseen ROUGE-L by task category (zero-shot transfer)", "",
              "| category | " + " | ".join(s["methods"]) + " |", "|---|" + "---|" * len(s["methods"])]
    for cat in first:
        lines.append(f"| {cat} | " + " | ".join(
            f"{r['generalisation']['metrics']['rouge_l']['unseen_by_category'].get(cat, float('nan')):.1f}"
            for r in s["methods"].values()) + " |")
    if s["phrasing"]:
        p = s["phrasing"]["rouge_l"]
        lines += ["", f"## Instruction phrasing on the unseen tasks ({s['phrasing_method']}, ROUGE-L)", "",
                  "| form | ROUGE-L | EM |", "|---|---|---|"]
        lines += [f"| {f} | {v:.1f} | {s['phrasing']['exact_match']['per_form'][f]:.1f} |" for f, v in p["per_form"].items()]
        lines += ["", f"Per-item worst case over forms: ROUGE-L {p['worst_case_mean']:.1f}; spread of the form means "
                      f"{p['spread']:.1f} points ({p['n_items']} items)."]
    return "\n".join(lines) + "\n"


def _plots(s: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(s["methods"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for k, split in enumerate(("seen", "unseen")):
        vals = [s["methods"][m]["generalisation"]["metrics"]["rouge_l"][split] for m in methods]
        cis = [s["methods"][m]["generalisation"]["metrics"]["rouge_l"][f"{split}_ci"] for m in methods]
        err = [[max(0, v - c[0]) for v, c in zip(vals, cis)], [max(0, c[1] - v) for v, c in zip(vals, cis)]]
        axes[0].bar([i + 0.4 * k for i in range(len(methods))], vals, 0.4, yerr=err, capsize=3, label=split)
    axes[0].set_xticks([i + 0.2 for i in range(len(methods))])
    axes[0].set_xticklabels(methods, rotation=15, fontsize=8)
    axes[0].set_title("ROUGE-L, seen vs unseen tasks (95% CI)")
    axes[0].legend(fontsize=8)
    axes[1].bar(methods, [s["methods"][m]["conflict_fraction"] for m in methods])
    axes[1].set_title("share of conflicting task-gradient pairs")
    axes[1].tick_params(axis="x", labelrotation=15, labelsize=8)
    fig.tight_layout()
    fig.savefig(out / "methods.png", dpi=110)
    plt.close(fig)
    if s["phrasing"]:
        p = s["phrasing"]["rouge_l"]["per_form"]
        fig, ax = plt.subplots(figsize=(8, 3.4))
        ax.bar(list(p), list(p.values()))
        ax.axhline(s["phrasing"]["rouge_l"]["worst_case_mean"], color="red", linestyle="--", label="per-item worst case")
        ax.set_title("unseen-task ROUGE-L by instruction phrasing")
        ax.tick_params(axis="x", labelrotation=25, labelsize=8)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "phrasing.png", dpi=110)
        plt.close(fig)
