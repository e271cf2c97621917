"""Write `report.md` (+ `report.png`) and a self-contained `report.html` for a run directory, from
what the run stored on disk (metrics.json, scores/, generations/, train_log.jsonl) — never by
generating again.

The HTML has no scripts and loads nothing: charts are inline SVG, styles inline, and every piece of
model or data text goes through `html.escape`, so a generation holding markup is shown, not run.
Sections: a Table-1-style summary (model × metric with 95% CIs), the per-domain TSAS chart (the
seed's Figure 1) and per-domain tables, TSAS parts with the parrot control, paired comparisons,
judge results, human-rating correlations, warnings, training loss, signatures, and example
answers side by side.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tuneforge.data.io import read_records, records_of
from tuneforge.errors import TuneforgeError
from tuneforge.evaluate import report_kit as kit
from tuneforge.evaluate.training_curves import plot_loss
from tuneforge.files import write_text_atomic
from tuneforge.records import Generation
from tuneforge.run_metrics import read_metrics
from tuneforge.train.compute import describe as describe_compute

METRIC_LABELS = {
    "bleu": "BLEU",
    "rouge_l": "ROUGE-L",
    "tsas": "TSAS",
    "bertscore": "BERTScore F1",
    "exact_match": "Exact match",
    "if_score": "IF-Score",
    "mauve": "MAUVE",
    "tool_valid": "Valid calls",
    "tool_name": "Tool name acc.",
    "tool_exact": "Exact call match",
    "tool_arg_f1": "Argument F1",
    "tool_abstain": "Correct abstention",
}


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.2f}" if abs(x) >= 1 else f"{x:.3f}"


@dataclass
class StageReport:
    """What a stage adds to a run's report: (title, lines) sections and (caption, svg) charts."""

    sections: list[tuple[str, list[str]]] = field(default_factory=list)
    charts: list[tuple[str, str]] = field(default_factory=list)


# metrics.json sections a stage renders itself (report.py draws only what every run has)
STAGE_SECTIONS = ("safety", "compression")
_STAGE_REPORTS: dict[str, Callable[[Path, dict], StageReport]] = {}


def register_stage_report(section: str, render: Callable[[Path, dict], StageReport]) -> None:
    """The one interface through which a stage adds its part to a run's report: `render(run_dir,
    metrics)` for runs whose metrics.json holds `section`."""
    if section not in STAGE_SECTIONS:
        raise ValueError(f"'{section}' is not a stage section of metrics.json ({', '.join(STAGE_SECTIONS)})")
    _STAGE_REPORTS[section] = render


def _ci(r: dict) -> str:
    ci = r.get("ci")
    return f" [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci and not any(c != c for c in ci) else ""


def _counts(ns: list) -> str:
    """The items a metric scored: one number, or one per model ("2 / 33") where they differ (a tool
    metric counts only the items it applies to, e.g. the answers that attempt a call)."""
    shown = ["" if n is None else str(n) for n in ns]
    return shown[0] if len(set(shown)) == 1 else " / ".join(shown)


def _cell(r: dict) -> str:
    if "sd" in r:
        return f"{_fmt(r['score'])}{_ci(r)} (sd {_fmt(r['sd'])})" + (" ⚠" if r.get("warning") else "")
    return _fmt(r["score"]) + _ci(r)


def _load(run_dir: Path) -> tuple[dict, list[dict]]:
    if not (run_dir / "metrics.json").exists():
        raise TuneforgeError(f"{run_dir} has no metrics.json, so it is not a finished run directory")
    metrics = read_metrics(run_dir).to_dict()  # checked against the schema
    log_path = run_dir / "train_log.jsonl"
    log = [json.loads(x) for x in log_path.read_text().splitlines() if x.strip()] if log_path.exists() else []
    return metrics, [r for r in log if ("loss" in r or "eval_loss" in r) and "step" in r]


def _domain_chart(models: dict, metric: str):
    """Per-domain bars of `metric` for every model, with 95% CI error bars (or None)."""
    names = [
        n
        for n in models
        if metric in models[n]["overall"]
        and models[n]["per_domain"]
        and metric in next(iter(models[n]["per_domain"].values()))
    ]
    if not names:
        return None
    plt = kit.pyplot()
    domains = list(models[names[0]]["per_domain"])
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    width = 0.8 / len(names)
    for k, n in enumerate(names):
        rows = [models[n]["per_domain"][d][metric] for d in domains]
        vals = [r["score"] for r in rows]
        ax.bar([i + k * width for i in range(len(domains))], vals, width, yerr=_error_bars(vals, rows), capsize=3,
               label=n)  # fmt: skip
    ax.set_xticks([i + width * (len(names) - 1) / 2 for i in range(len(domains))])
    ax.set_xticklabels(domains, rotation=20, ha="right", fontsize=9)
    ax.set_title(f"{METRIC_LABELS.get(metric, metric)} per domain (95% CI)")
    kit.legend_beside(ax)
    fig.tight_layout()
    return fig


def _overall_chart(models: dict, metric_names: list[str], title: str):
    """Overall value of several metrics (x) for every model (bars), with 95% CI error bars."""
    plt = kit.pyplot()
    names = list(models)
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    width = 0.8 / len(names)
    for k, n in enumerate(names):
        rows = [models[n]["overall"][m] for m in metric_names]
        vals = [r["score"] for r in rows]
        err = [
            [max(0, v - r["ci"][0]) if r["ci"][0] == r["ci"][0] else 0 for v, r in zip(vals, rows)],
            [max(0, r["ci"][1] - v) if r["ci"][1] == r["ci"][1] else 0 for v, r in zip(vals, rows)],
        ]
        ax.bar([i + k * width for i in range(len(metric_names))], vals, width, yerr=err, capsize=3, label=n)
    ax.set_xticks([i + width * (len(names) - 1) / 2 for i in range(len(metric_names))])
    ax.set_xticklabels([m.replace("_", " ") for m in metric_names], rotation=15, ha="right", fontsize=9)
    ax.set_ylabel("%")
    ax.set_title(title)
    kit.legend_beside(ax)
    fig.tight_layout()
    return fig


def _loss_chart(log: list[dict]):
    if not log:
        return None
    plt = kit.pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    plot_loss(ax, log)
    ax.set_title("loss per target token: training (smoothed; raw points faint) and held-out")
    kit.legend_beside(ax)
    fig.tight_layout()
    return fig


def _error_bars(vals: list[float], rows: list[dict]) -> list[list[float]]:
    """matplotlib's yerr (below, above) from rows with a "ci" (0 where there is none or it is NaN)."""
    ok = [bool(r.get("ci")) and r["ci"][0] == r["ci"][0] and r["ci"][1] == r["ci"][1] for r in rows]
    return [
        [max(0.0, v - r["ci"][0]) if good else 0.0 for v, r, good in zip(vals, rows, ok)],
        [max(0.0, r["ci"][1] - v) if good else 0.0 for v, r, good in zip(vals, rows, ok)],
    ]


def _legacy_png(metrics: dict, log: list[dict], path: Path) -> None:
    """report.png for report.md: every per-item metric per domain, and the loss curve."""
    plt = kit.pyplot()
    models = metrics["models"]
    names = list(models)
    first = models[names[0]]
    metric_names = [
        m for m in first["overall"] if first["per_domain"] and m in next(iter(first["per_domain"].values()))
    ]
    domains = list(first["per_domain"])
    ncols = max(1, len(metric_names) + (1 if log else 0))
    fig, axes = plt.subplots(1, ncols, figsize=(4.2 * ncols, 3.6), squeeze=False)
    width = 0.8 / len(names)
    for ax, m in zip(axes[0], metric_names):
        for k, name in enumerate(names):
            rows = [models[name]["per_domain"][d][m] for d in domains]
            vals = [r["score"] for r in rows]
            ax.bar(
                [i + k * width for i in range(len(domains))],
                vals,
                width,
                yerr=_error_bars(vals, rows),
                capsize=2,
                label=name,
            )
        ax.set_xticks([i + width * (len(names) - 1) / 2 for i in range(len(domains))])
        ax.set_xticklabels(domains, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{METRIC_LABELS.get(m, m)} (95% CI)", fontsize=10)
    if log:
        ax = axes[0][-1]
        plot_loss(ax, log)
        ax.set_title("loss per target token", fontsize=10)
        kit.legend_beside(ax, 7)
    if metric_names:  # one legend for the bars, below them: it covers no bar
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=len(names), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _comparisons(run_dir: Path, metrics: dict) -> dict | None:
    names = metrics.get("comparison_models") or (list(metrics["models"])[:2] if len(metrics["models"]) >= 2 else None)
    if not names or not all((run_dir / "scores" / f"{n}.jsonl").exists() for n in names):
        return None
    from tuneforge.evaluate.paired_deltas import compare_runs

    try:
        return compare_runs(f"{run_dir}:{names[0]}", f"{run_dir}:{names[1]}", n_boot=500)
    except TuneforgeError as exc:  # shown in the report in place of the comparison, not dropped
        return {"error": str(exc), "a": names[0], "b": names[1]}


def _below_floor(t: dict) -> str:
    if "n_below_floor" in t:
        return f"{t['n_below_floor']} items with cos(I,R_ref) < {t['floor']} (left out, counted)"
    return f"{t['n_degenerate']} items with denominator ≤ ε (left out, counted)"  # runs scored before the floor


def _summary_lines(metrics: dict) -> list[str]:
    run = metrics["run"]
    out = []
    if "adapter" in run:
        out.append(
            f"Model `{run['model']}`, adapter `{run['adapter']}` ({run['trainable_params']:,} of "
            f"{run['total_params']:,} parameters trained, {100 * run['trainable_params'] / run['total_params']:.2f}%), "
            f"{run['steps']} steps in {run['train_seconds']:.0f} s ({run['tokens_per_s']:.0f} tokens/s)."
        )
        if run.get("compute"):
            out.append(f"Compute: {describe_compute(run['compute'])} ({run['compute']['peak_how']}).")
        if run.get("eval_loss"):
            el = run["eval_loss"]
            d = el.get("delta")
            base, tuned = (_held_out(el, k) for k in ("base", "tuned"))
            out.append(
                f"Held-out loss per target token: base {base['loss']:.3f}{_ci(base)} → tuned "
                f"{tuned['loss']:.3f}{_ci(tuned)}"
                + (
                    f", Δ {d['delta']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] (paired bootstrap over "
                    f"{el['n_examples']} examples, {el['n_tokens']} target tokens)"
                    if d
                    else ""
                )
                + "."
            )
    else:
        out.append(
            "Models: "
            + "; ".join(f"`{k}` = {v}" for k, v in run.get("models", {}).items())
            + f". Test set `{run.get('test', '')}`, {run.get('n_items', '?')} items."
        )
    if run.get("stage_seconds"):
        steal = run.get("cpu_steal_percent")
        out.append(
            "Wall time per stage: "
            + ", ".join(f"{k.replace('_', ' ')} {v:.0f} s" for k, v in run["stage_seconds"].items())
            + "."
            + (f" CPU steal during the run: {steal:.0f}%." if steal is not None else "")
        )
    if run.get("hardware"):
        h = run["hardware"]
        out.append(
            f"Ran on {h['cpu']} ({' '.join(h['isa']) or 'no listed ISA extensions'}; "
            f"{h['torch_threads']} torch threads"
            + (f"; GPU {', '.join(h['gpus'])}" if h.get("gpus") else "")
            + f"): model dtype {run.get('dtype', '?')}, training precision {run.get('precision', '?')}"
            + (f" (auto: {h['auto_reason']})" if h.get("auto_reason") else "")
            + "."
        )
    if run.get("data_build"):
        b = run["data_build"]
        out.append(
            f"Training data built by `tuneforge data build` ({b['dir']}, see its datacard.md): "
            + ", ".join(f"{k} {v}" for k, v in b["stages"].items())
            + " records; filters removed "
            + (", ".join(f"{k} {v}" for k, v in b["removed"].items()) or "nothing")
            + f"; {b['final']} kept. Generator `{b['llm']['model']}`: {b['llm']['calls']} calls, "
            f"{b['llm']['cache_hits']} answers from the cache."
        )
    return out


def _tables(metrics: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every table, shared by the Markdown and HTML renderings."""
    models = metrics["models"]
    names = list(models)
    metric_names = list(models[names[0]]["overall"])
    tables = [
        (
            "Summary (95% bootstrap CI; MAUVE: mean over k-means seeds, t-interval, sd)",
            ["model", "n"] + [METRIC_LABELS.get(m, m) for m in metric_names],
            [[n, str(models[n]["n"])] + [_cell(models[n]["overall"][m]) for m in metric_names] for n in names],
        )
    ]
    per_item = [m for m in metric_names if "macro" in models[names[0]]["overall"][m]]
    domains = list(models[names[0]]["per_domain"])
    for m in per_item:
        rows = [
            [d, _counts([models[n]["per_domain"][d][m].get("n") for n in names])]
            + [_fmt(models[n]["per_domain"][d][m]["score"]) + _ci(models[n]["per_domain"][d][m]) for n in names]
            for d in domains
        ]
        rows.append(
            ["all (micro)", _counts([models[n]["overall"][m].get("n") for n in names])]
            + [_cell(models[n]["overall"][m]) for n in names]
        )
        rows.append(
            ["macro = generalisation score", str(len(domains))]
            + [
                _fmt(models[n]["overall"][m]["macro"]) + _ci({"ci": models[n]["overall"][m].get("macro_ci")})
                for n in names
            ]
        )
        tables.append((f"{METRIC_LABELS.get(m, m)} per domain", ["domain", "n"] + names, rows))
    if metrics.get("bench"):  # `tuneforge eval bench`: lm-eval results, CI = score ± 1.96 stderr
        rows = [
            [label, task, metric, _fmt(r["score"]) + _ci(r), str(r.get("n") or "")]
            for label, b in metrics["bench"].items()
            for task, task_metrics in b["tasks"].items()
            for metric, r in task_metrics.items()
        ]
        tables.append(
            (
                "Standard benchmarks (lm-evaluation-harness; 95% CI from its stderr)",
                ["model", "task", "metric", "score", "n"],
                rows,
            )  # fmt: skip
        )
    return tables


def _extras(run_dir: Path, metrics: dict) -> list[tuple[str, list[str]]]:
    """(section title, lines) for TSAS parts, comparisons, judge, correlation, warnings, signatures."""
    models = metrics["models"]
    names = list(models)
    out = []
    if "tsas" in models[names[0]]["overall"]:
        out.append(
            (
                "TSAS parts and parrot control",
                [
                    f"{n}: mean cos(I,R) {_fmt(models[n]['overall']['tsas']['numerator'])}, mean cos(I,R_ref) "
                    f"{_fmt(models[n]['overall']['tsas']['denominator'])}, {_below_floor(models[n]['overall']['tsas'])}; "
                    f"parrot control (answer = instruction): "
                    f"{_fmt(models[n]['overall']['tsas']['parrot_control'])}"
                    for n in names
                ],
            )
        )
    comp = _comparisons(run_dir, metrics)
    if comp and "error" in comp:
        out.append((f"Paired comparison: {comp['b']} − {comp['a']}", [f"could not be computed: {comp['error']}"]))
    elif comp:
        out.append(
            (
                f"Paired comparison: {comp['b']} − {comp['a']} ({comp['n_common']} items)",
                [
                    f"{METRIC_LABELS.get(m, m)}: {r['a']:.3f} → {r['b']:.3f}, Δ {r['delta']:+.3f} "
                    f"[{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}], p = {r['p_value']:.4f} ({r['test']})"
                    for m, r in comp["metrics"].items()
                ],
            )
        )
    judge = metrics.get("judge") or {}
    lines = []
    for n, j in (judge.get("single") or {}).items():
        lines.append(
            f"{n}: mean rating {_fmt(j['score'])}{_ci(j)} over {j['parsed']} parsed verdicts; "
            f"{j['parse_failures']} parse failures (judge `{j['judge']}`)"
        )
        lines += [f"  unparsed ({f['id']}): {f['reply'][:160]!r}" for f in j["failed_examples"][:3]]
    if judge.get("pairwise"):
        p = judge["pairwise"]
        lines.append(
            f"pairwise {p['models'][1]} vs {p['models'][0]} (both orders): wins {p['wins']}, win rate "
            f"{_fmt(p['win_rate_model2'])}{_ci({'ci': p.get('win_rate_ci')})}, position consistency {_fmt(p['position_consistency'])}, "
            f"{p['parse_failures']} parse failures of {p['n']}"
        )
    if lines:
        out.append(("LLM judge", lines))
    corr = metrics.get("correlation")
    if corr:
        out.append(
            (
                f"Correlation with human ratings ({corr['model']}, {corr['file']})",
                [
                    f"{METRIC_LABELS.get(m, m)}: n = {c['n']}; "
                    + "; ".join(
                        f"{k} {_fmt(c[k]['r'])} [{_fmt(c[k]['ci'][0])}, {_fmt(c[k]['ci'][1])}] (p {_fmt(c[k]['p_value'])})"
                        for k in ("pearson", "spearman", "kendall")
                        if k in c
                    )
                    for m, c in corr["metrics"].items()
                ],
            )
        )
    warnings = [
        f"{n} {METRIC_LABELS.get(m, m)}: {r['warning']}"
        for n in names
        for m, r in models[n]["overall"].items()
        if r.get("warning")
    ]
    if warnings:
        out.append(("Warnings", warnings))
    out.append(
        (
            "Signatures",
            [
                f"{METRIC_LABELS.get(m, m)}: {r['signature']}"
                for m, r in models[names[0]]["overall"].items()
                if r.get("signature")
            ],
        )
    )
    return out


def _samples(run_dir: Path, names: list[str], per_domain: int = 1) -> list[dict]:
    gens = {
        n: {
            g.id: g
            for g in records_of(
                read_records(run_dir / "generations" / f"{n}.jsonl"),
                Generation,
                run_dir / "generations" / f"{n}.jsonl",
                "Run tuneforge eval generate again",
            )
        }
        for n in names
        if (run_dir / "generations" / f"{n}.jsonl").exists()
    }
    if not gens:
        return []
    first = next(iter(gens.values()))
    seen: dict[str, int] = {}
    out = []
    for gid, g in first.items():
        if seen.get(g.domain, 0) >= per_domain:
            continue
        seen[g.domain] = seen.get(g.domain, 0) + 1
        out.append(
            {
                "id": gid,
                "domain": g.domain,
                "prompt": g.instruction,
                "reference": g.references[0] if g.references else "",
                "answers": {n: gens[n][gid].generation if gid in gens[n] else "(missing)" for n in gens},
            }
        )
    return out


def _markdown(run_dir: Path, metrics: dict, tables, extras, samples) -> str:
    run = metrics["run"]
    lines = [f"# tuneforge report — {run.get('name', run_dir.name)}", ""]
    for s in _summary_lines(metrics):
        lines += [s, ""]
    lines += ["![scores and training loss](report.png)", "", "Full report with charts: `report.html`.", ""]
    for title, header, rows in tables:
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows] + [""]
    for title, body in extras:
        lines += [f"## {title}", ""] + [f"- {x}" if not x.startswith("  ") else x for x in body] + [""]
    lines += ["## Sample answers", ""]
    for s in samples:
        lines += [
            f"### {s['domain'] or 'item'} — `{s['id']}`",
            "",
            f"**Prompt:** {s['prompt'][:400]}",
            "",
            f"**Reference:** {s['reference'][:400]}",
            "",
        ]
        lines += [f"**{n}:** {a[:400]}\n" for n, a in s["answers"].items()]
    return "\n".join(lines) + "\n"


def _html(run_dir: Path, metrics: dict, tables, extras, samples, charts: list[tuple[str, str]]) -> str:
    e = kit.escape
    run = metrics["run"]
    parts = kit.paragraphs(_summary_lines(metrics))
    parts.append(kit.section(*tables[0]))
    for caption, chart in charts:
        parts.append(f"<figure class='chart'>{chart}<figcaption>{e(caption)}</figcaption></figure>")
    parts += [kit.section(*t) for t in tables[1:]]
    for title, body in extras:
        parts += [f"<h2>{e(title)}</h2>", "<ul>" + "".join(f"<li>{e(x.strip())}</li>" for x in body) + "</ul>"]
    if samples:
        names = list(samples[0]["answers"])
        parts += [
            "<h2>Sample answers</h2>",
            "<table class='answers'><tr><th>item</th><th>prompt</th><th>reference</th>"
            + "".join(f"<th>{e(n)}</th>" for n in names)
            + "</tr>",
        ]
        for s in samples:
            parts.append(
                f"<tr><td>{e(s['domain'])}<br><code>{e(s['id'])}</code></td><td>{e(s['prompt'])}</td>"
                f"<td>{e(s['reference'])}</td>" + "".join(f"<td>{e(s['answers'][n])}</td>" for n in names) + "</tr>"
            )
        parts.append("</table>")
    return kit.page(f"tuneforge report — {run.get('name', run_dir.name)}", parts)


def write_report(run_dir: str | Path) -> Path:
    """Render report.md, report.png and report.html for a run directory; returns report.md."""
    run_dir = Path(run_dir)
    metrics, log = _load(run_dir)
    names = list(metrics["models"])
    tables, extras = _tables(metrics), _extras(run_dir, metrics)
    samples = _samples(run_dir, names)
    _legacy_png(metrics, log, run_dir / "report.png")
    charts = []
    for metric, caption in (("tsas", "Figure 1: TSAS per domain (95% CI)"), ("rouge_l", "ROUGE-L per domain (95% CI)")):
        fig = _domain_chart(metrics["models"], metric)
        if fig is not None:
            charts.append((caption, kit.svg(fig)))
    for section in STAGE_SECTIONS:  # a stage's own part of the report, rendered by the stage
        if metrics.get(section):
            if section not in _STAGE_REPORTS:
                raise TuneforgeError(
                    f"{run_dir} holds '{section}' results and nothing registered to render them: import "
                    f"the stage's report module first (tuneforge report does)"
                )
            part = _STAGE_REPORTS[section](run_dir, metrics)
            extras[-1:-1] = part.sections  # before the signatures
            charts[:0] = part.charts
    fig = _loss_chart(log)
    if fig is not None:
        charts.append(("Training loss per target token", kit.svg(fig)))
    write_text_atomic(run_dir / "report.html", _html(run_dir, metrics, tables, extras, samples, charts))
    out = run_dir / "report.md"
    write_text_atomic(out, _markdown(run_dir, metrics, tables, extras, samples))
    return out


def _held_out(eval_loss: dict, which: str) -> dict:
    """{"loss", "ci"} of one side: the run's `base`/`tuned` entry (runs before 2026-12-07 kept the
    loss as a number and the CIs under `ci`)."""
    side = eval_loss[which]
    return side if isinstance(side, dict) else {"loss": side, "ci": eval_loss.get("ci", {}).get(which)}


# what a stage's report part draws with (the same numbers, intervals and charts as the rest of the page)
fmt, ci_text, overall_chart = _fmt, _ci, _overall_chart
