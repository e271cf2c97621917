"""Write `report.md` and `report.png` for a run directory, from what the run stored on disk
(metrics.json, generations/*.jsonl, train_log.jsonl) — never by generating again."""

from __future__ import annotations

import json
from pathlib import Path

from tuneforge.data.io import read_records
from tuneforge.errors import TuneforgeError

METRIC_LABELS = {"bleu": "BLEU", "rouge_l": "ROUGE-L", "tsas": "TSAS"}


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.2f}" if abs(x) >= 1 else f"{x:.3f}"


def _plot(metrics: dict, train_log: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = metrics["models"]
    names = list(models)
    domains = list(next(iter(models.values()))["per_domain"])
    metric_names = list(next(iter(models.values()))["overall"])
    ncols = len(metric_names) + (1 if train_log else 0)
    fig, axes = plt.subplots(1, ncols, figsize=(4.2 * ncols, 3.6), squeeze=False)
    width = 0.8 / len(names)
    for ax, m in zip(axes[0], metric_names):
        for k, name in enumerate(names):
            vals = [models[name]["per_domain"][d][m]["score"] for d in domains]
            ax.bar([i + k * width for i in range(len(domains))], vals, width, label=name)
        ax.set_xticks([i + width * (len(names) - 1) / 2 for i in range(len(domains))])
        ax.set_xticklabels(domains, rotation=30, ha="right", fontsize=8)
        ax.set_title(METRIC_LABELS.get(m, m))
        ax.legend(fontsize=8)
    if train_log:
        ax = axes[0][-1]
        ax.plot([r["step"] for r in train_log], [r["loss"] for r in train_log], marker="o", markersize=3)
        ax.set_xlabel("step")
        ax.set_title("training loss per target token (window means)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(run_dir: str | Path) -> Path:
    """Render report.md (+ report.png) for a run directory written by `run_demo`/`train`."""
    run_dir = Path(run_dir)
    if not (run_dir / "metrics.json").exists():
        raise TuneforgeError(f"{run_dir} has no metrics.json, so it is not a finished run directory")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    log_path = run_dir / "train_log.jsonl"
    train_log = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()] if log_path.exists() else []
    _plot(metrics, train_log, run_dir / "report.png")
    run, models = metrics["run"], metrics["models"]
    names = list(models)
    metric_names = list(models[names[0]]["overall"])
    domains = list(models[names[0]]["per_domain"])
    lines = [f"# tuneforge report — {run.get('name', run_dir.name)}", "",
             f"Model `{run['model']}`, adapter `{run['adapter']}` "
             f"({run['trainable_params']:,} of {run['total_params']:,} parameters trained, "
             f"{100 * run['trainable_params'] / run['total_params']:.2f}%), {run['steps']} steps "
             f"in {run['train_seconds']:.0f} s ({run['tokens_per_s']:.0f} tokens/s).", "",
             f"Held-out loss per target token: base {run['eval_loss']['base']:.3f} → "
             f"tuned {run['eval_loss']['tuned']:.3f}.", ""]
    if run.get("stage_seconds"):
        steal = run.get("cpu_steal_percent")
        lines += ["Wall time per stage: " + ", ".join(f"{k.replace('_', ' ')} {v:.0f} s"
                                                     for k, v in run["stage_seconds"].items()) + "." +
                  (f" CPU time taken by the hypervisor (steal) during the run: {steal:.0f}%." if steal is not None else ""),
                  ""]
    if run.get("data_build"):
        b = run["data_build"]
        lines += [f"Training data built by `tuneforge data build` ({b['dir']}, see its datacard.md): "
                  + ", ".join(f"{k} {v}" for k, v in b["stages"].items()) + " records; filters removed "
                  + (", ".join(f"{k} {v}" for k, v in b["removed"].items()) or "nothing")
                  + f"; {b['final']} kept. Generator `{b['llm']['model']}`: {b['llm']['calls']} calls, "
                  f"{b['llm']['cache_hits']} answers from the cache.", ""]
    lines += ["![scores and training loss](report.png)", ""]
    header = "| domain | n | " + " | ".join(f"{METRIC_LABELS.get(m, m)} {n}" for m in metric_names for n in names) + " |"
    lines += ["## Scores per domain", "", header, "|" + "---|" * (2 + len(metric_names) * len(names))]
    rows = [(d, models[names[0]]["per_domain"][d][metric_names[0]]["n"],
             {(m, n): models[n]["per_domain"][d][m]["score"] for m in metric_names for n in names})
            for d in domains]
    rows.append(("**all (micro)**", models[names[0]]["n"],
                 {(m, n): models[n]["overall"][m]["score"] for m in metric_names for n in names}))
    rows.append(("**macro mean**", len(domains),
                 {(m, n): models[n]["flat"][f"{m}_macro"] for m in metric_names for n in names}))
    for d, n_items, vals in rows:
        lines.append(f"| {d} | {n_items} | " + " | ".join(_fmt(vals[(m, n)]) for m in metric_names for n in names) + " |")
    if "tsas" in metric_names:
        t = {n: models[n]["overall"]["tsas"] for n in names}
        lines += ["", "TSAS parts (means): " + "; ".join(
            f"{n}: cos(I,R) {_fmt(t[n]['numerator'])}, cos(I,R_ref) {_fmt(t[n]['denominator'])}, "
            f"{t[n]['n_degenerate']} items with denominator ≤ ε" for n in names) +
            f". Parrot control (answer = instruction): {_fmt(t[names[0]]['parrot_control'])}."]
    lines += ["", "## Signatures", ""] + [f"- {METRIC_LABELS.get(m, m)}: `{models[names[0]]['overall'][m]['signature']}`"
                                          for m in metric_names]
    lines += ["", "## Sample answers", ""] + _samples(run_dir, names)
    out = run_dir / "report.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def _samples(run_dir: Path, names: list[str], chars: int = 400) -> list[str]:
    gens = {n: {g.id: g for g in read_records(run_dir / "generations" / f"{n}.jsonl")} for n in names
            if (run_dir / "generations" / f"{n}.jsonl").exists()}
    if not gens:
        return ["(no stored generations)"]
    first = next(iter(gens.values()))
    seen, out = set(), []
    for gid, g in first.items():
        if g.domain in seen:
            continue
        seen.add(g.domain)
        out += [f"### {g.domain or 'item'} — `{gid}`", "", f"**Prompt:** {g.instruction[:chars]}", "",
                f"**Reference:** {g.references[0][:chars]}", ""]
        out += [f"**{n}:** {gens[n][gid].generation[:chars] if gid in gens[n] else '(missing)'}" + "\n"
                for n in gens]
    return out
