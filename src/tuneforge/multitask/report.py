"""The multi-task experiment's results: tables (results.md), figures (PNG and inline SVG) and the
self-contained report.html, built with the report kit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tuneforge.files import write_text_atomic


def _ci(lo_hi) -> str:
    return f"[{lo_hi[0]:.1f}, {lo_hi[1]:.1f}]"


def _tables(s: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every results table — shared by results.md and report.html."""

    def num(x, fmt):
        return "—" if x is None or (isinstance(x, float) and np.isnan(x)) else format(x, fmt)

    rows = []
    for m, r in s["methods"].items():
        g, e = r["generalisation"]["metrics"]["rouge_l"], r["generalisation"]["metrics"]["exact_match"]
        rows.append(
            [
                m,
                f"{g['seen']:.1f} {_ci(g['seen_ci'])}",
                f"{g['unseen']:.1f} {_ci(g['unseen_ci'])}",
                f"{g['gap']:+.1f} {_ci(g['gap_ci'])}",
                f"{e['seen']:.1f}",
                f"{e['unseen']:.1f}",
                num(r["conflict_mean_cosine"], ".3f"),
                num(r["conflict_fraction"], ".2f"),
                f"{num(r['first_loss'], '.2f')} → {num(r['final_loss'], '.2f')}",
            ]
        )
    tables = [
        (
            "Methods (Table 1)",
            [
                "method",
                "seen ROUGE-L",
                "unseen ROUGE-L",
                "gap",
                "seen EM",
                "unseen EM",
                "conflict cos",
                "conflicting pairs",
                "loss first → final",
            ],
            rows,
        )
    ]
    methods = s["methods"]
    cats = sorted(
        {c for r in methods.values() for c in r["generalisation"]["metrics"]["rouge_l"]["unseen_by_category"]}
    )
    tables.append(
        (
            "Unseen ROUGE-L by task category (zero-shot transfer, Figure 3)",
            ["category", *methods],
            [
                [
                    c,
                    *(
                        num(r["generalisation"]["metrics"]["rouge_l"]["unseen_by_category"].get(c, float("nan")), ".1f")
                        for r in methods.values()
                    ),
                ]
                for c in cats
            ],
        )
    )
    if s["phrasing"]:
        p, em = s["phrasing"]["rouge_l"], s["phrasing"]["exact_match"]
        tables.append(
            (
                f"Instruction phrasing on the unseen tasks ({s['phrasing_method']}, Figure 2)",
                ["form", "ROUGE-L", "EM"],
                [[f, f"{v:.1f}", f"{em['per_form'][f]:.1f}"] for f, v in p["per_form"].items()]
                + [
                    ["per-item worst case", f"{p['worst_case_mean']:.1f}", f"{em['worst_case_mean']:.1f}"],
                    ["spread (max − min form)", f"{p['spread']:.1f}", f"{em['spread']:.1f}"],
                ],
            )
        )
    c = s.get("combinations")
    if c:
        tables.append(
            (
                f"Task-category combinations (Figure 4): {c['method']}, {c['steps']} steps per set, "
                f"unseen ROUGE-L over {c['eval_per_task']} instances per unseen task",
                ["categories trained on", "seen tasks", "unseen mean", "worst unseen task", "best unseen task"],
                [
                    [
                        " + ".join(x["categories"]),
                        str(len(x["tasks"])),
                        f"{x['unseen_mean']:.1f}",
                        f"{min(x['unseen_per_task'].values()):.1f}",
                        f"{max(x['unseen_per_task'].values()):.1f}",
                    ]
                    for x in sorted(c["sets"], key=lambda x: -x["unseen_mean"])
                ],
            )
        )
    return tables


def _notes(s: dict) -> list[str]:
    c = s["config"]
    notes = [
        f"{len(c['seen_tasks'])} seen tasks × {c['train_per_task']} training instances, {c['steps']} steps; "
        f"evaluated on {c['eval_per_task']} held-out instances per seen task and per unseen task "
        f"({len(c['unseen_tasks'])} unseen tasks). ROUGE-L and exact match ×100, means over tasks, "
        "bootstrap 95% CIs; conflict = mean pairwise cosine of task gradients (share of pairs < 0); "
        "`base` is the untuned model; per_task_lora answers unseen tasks with its shared adapter."
    ]
    if s["phrasing"]:
        p = s["phrasing"]["rouge_l"]
        notes.append(
            f"Phrasing: per-item worst case over forms ROUGE-L {p['worst_case_mean']:.1f}; spread of the "
            f"form means {p['spread']:.1f} points ({p['n_items']} items)."
        )
    cb = s.get("combinations")
    if cb:
        base = (
            "" if cb["base_unseen_mean"] is None else f"; untuned base on the same items {cb['base_unseen_mean']:.1f}"
        )
        notes.append(
            f"Combinations: {len(cb['sets'])} sets of {cb['size']} categories; unseen mean ROUGE-L from "
            f"{cb['unseen_mean_min']:.1f} to {cb['unseen_mean_max']:.1f} (median {cb['unseen_mean_median']:.1f})"
            f"{base}."
        )
    return notes


def results_markdown(s: dict) -> str:
    lines = [f"# SuperNI multi-task experiment ({s['config']['model']})", ""]
    lines += [n for x in _notes(s) for n in (x, "")]
    for title, header, rows in _tables(s):
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines.append("")
    return "\n".join(lines)


def _figures(s: dict) -> list[tuple[str, str, Any]]:
    """(file stem, caption, matplotlib figure) of every chart."""
    from tuneforge.evaluate.report_kit import pyplot as _plt

    plt = _plt()
    figs = []
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
    trained = [m for m in methods if not np.isnan(s["methods"][m]["conflict_fraction"])]
    axes[1].bar(trained, [s["methods"][m]["conflict_fraction"] for m in trained])
    axes[1].set_title("share of conflicting task-gradient pairs")
    axes[1].tick_params(axis="x", labelrotation=15, labelsize=8)
    fig.tight_layout()
    figs.append(("methods", "Seen vs unseen ROUGE-L per method (95% CI) and gradient conflict", fig))
    cats = sorted(
        {c for m in methods for c in s["methods"][m]["generalisation"]["metrics"]["rouge_l"]["unseen_by_category"]}
    )
    if cats:
        fig, ax = plt.subplots(figsize=(10, 3.8))
        width = 0.8 / len(methods)
        for k, m in enumerate(methods):
            by_cat = s["methods"][m]["generalisation"]["metrics"]["rouge_l"]["unseen_by_category"]
            ax.bar([i + k * width for i in range(len(cats))], [by_cat.get(c, 0.0) for c in cats], width, label=m)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(cats))])
        ax.set_xticklabels(cats, rotation=30, ha="right", fontsize=7)
        ax.set_title("unseen-task ROUGE-L by task category (zero-shot transfer)")
        ax.legend(fontsize=7, ncol=3)
        fig.tight_layout()
        figs.append(("categories", "Zero-shot transfer by task category (seed 004, Figure 3)", fig))
    if s["phrasing"]:
        p = s["phrasing"]["rouge_l"]["per_form"]
        fig, ax = plt.subplots(figsize=(8, 3.4))
        ax.bar(list(p), list(p.values()))
        ax.axhline(
            s["phrasing"]["rouge_l"]["worst_case_mean"], color="red", linestyle="--", label="per-item worst case"
        )
        ax.set_title("unseen-task ROUGE-L by instruction phrasing")
        ax.tick_params(axis="x", labelrotation=25, labelsize=8)
        ax.legend(fontsize=8)
        fig.tight_layout()
        figs.append(("phrasing", "Unseen-task ROUGE-L by instruction phrasing (seed 004, Figure 2)", fig))
    c = s.get("combinations")
    if c:
        sets = sorted(c["sets"], key=lambda x: -x["unseen_mean"])
        fig, ax = plt.subplots(figsize=(10, 4))
        ax.boxplot([list(x["unseen_per_task"].values()) for x in sets], showmeans=True)
        ax.set_xticks(range(1, len(sets) + 1))
        ax.set_xticklabels(["\n+ ".join(x["categories"]) for x in sets], fontsize=6)
        if c["base_unseen_mean"] is not None:
            ax.axhline(c["base_unseen_mean"], color="grey", linestyle=":", label="untuned base (mean)")
            ax.legend(fontsize=8)
        ax.set_ylabel("unseen-task ROUGE-L")
        ax.set_title("unseen-task scores after training on each set of task categories")
        fig.tight_layout()
        figs.append(
            (
                "combinations",
                "Robustness over task combinations: one box per trained category set, "
                "spread over the unseen tasks (seed 004, Figure 4)",
                fig,
            )
        )
    return figs


def write_experiment_report(s: dict, out: Path) -> Path:
    """results charts as PNG files and one self-contained report.html (tables + inline SVG)."""
    from tuneforge.evaluate import report_kit as kit

    parts = kit.paragraphs(_notes(s))
    tables = _tables(s)
    parts.append(kit.section(*tables[0]))
    for stem, caption, fig in _figures(s):
        fig.savefig(out / f"{stem}.png", dpi=110)
        parts.append(kit.figure(fig, caption))
    parts += [kit.section(*t) for t in tables[1:]]
    path = out / "report.html"
    write_text_atomic(
        path,
        kit.page(
            f"tuneforge — SuperNI multi-task ({s['config']['model']})",
            parts,
            f"SuperNI multi-task experiment — {s['config']['model']}",
        ),
    )
    return path
