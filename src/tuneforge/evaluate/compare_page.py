"""`tuneforge report compare RUN_A[:MODEL] RUN_B[:MODEL] …`: one self-contained HTML page (and a
markdown twin) that puts runs side by side, the first one being the reference.

- every metric of every run with its 95% CI, and for each later run the paired change against the
  first (`paired_deltas.compare_runs`: paired bootstrap CI and p-value over the items both answered; a pair
  with no item in common says so in its cells instead of vanishing);
- training loss curves overlaid (each run's train_log.jsonl, where there is one);
- size, memory, speed and C_inf of models a `compress compare` measured (its eval run holds them);
- a per-domain chart for each metric; data-build counts and safety rates when the runs have them
  (a `safety run` directory is a run like any other: its rates are its metrics);
- the answers side by side, item by item, with a filter by domain made of radio buttons and CSS
  (the page runs no script; model text is escaped).
A run is any directory `tuneforge demo`, `train` or `eval run` / `safety run` wrote; MODEL picks one
of its models (default: the last, i.e. the tuned one).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tuneforge.data.io import read_records, records_of
from tuneforge.errors import ConfigError, TuneforgeError
from tuneforge.evaluate.paired_deltas import compare_runs, resolve
from tuneforge.evaluate.report_kit import escape, figure, legend_beside, page, pyplot, section
from tuneforge.evaluate.training_curves import plot_loss
from tuneforge.files import check_finished, check_output_dir, staged_dir, write_text_atomic
from tuneforge.records import Generation
from tuneforge.run_metrics import read_metrics

_FILTER_CSS = ".answers tr.item{display:none}#dom-all:checked~table tr.item{display:table-row}"


def _entry(spec: str) -> dict:
    run_dir, label = resolve(spec)
    check_finished(run_dir)  # a failed run's old metrics.json must not pass for its result
    metrics = read_metrics(run_dir).to_dict()  # checked against the schema
    log_path = run_dir / "train_log.jsonl"
    return {
        "name": f"{run_dir.name}:{label}",
        "dir": run_dir,
        "label": label,
        "model": metrics["models"][label],
        "run": metrics.get("run", {}),
        "log": [json.loads(x) for x in log_path.read_text().splitlines() if x.strip()] if log_path.exists() else [],
        # `tuneforge compress compare` wrote this model's size and speed into its eval run
        "compression": next(
            (v for v in (metrics.get("compression") or {}).get("variants", []) if v["label"] == label), None
        ),
    }


def _compute_cells(c: dict | None) -> list[str]:
    """Tokens, 6ND and achieved rate of a run's training (train/compute.py), or dashes."""
    if not c:
        return ["—"] * 3
    share = f" ({100 * c['fraction_of_peak']:.0f}%)" if c.get("fraction_of_peak") is not None else ""
    return [f"{c['tokens']:,}", f"{c['c_train_6nd']:.3g}", f"{c['achieved_gflops']:.1f}{share}"]


def _slug(domain: str) -> str:
    """A domain name as a CSS id/class (the filter's selectors)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", domain) or "other"


def _fmt(x) -> str:
    return "—" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def _metric_rows(entries: list[dict], deltas: list[dict | None]) -> tuple[list[str], list[list[str]]]:
    names = list(dict.fromkeys(m for e in entries for m in e["model"].get("overall", {})))
    header = ["metric", *[e["name"] for e in entries]]
    header += [f"{e['name']} − {entries[0]['name']} [95% CI], p" for e in entries[1:]]
    rows = []
    for m in names:
        row = [m]
        for e in entries:
            r = e["model"].get("overall", {}).get(m)
            row.append(f"{_fmt(r['score'])} [{_fmt(r['ci'][0])}, {_fmt(r['ci'][1])}]" if r and "ci" in r else "—")
        for d in deltas:
            if d is None or "error" in d:
                row.append(f"not comparable: {d['error']}" if d else "—")
            elif m in d["metrics"]:
                c = d["metrics"][m]
                row.append(f"{c['delta']:+.3f} [{c['ci'][0]:+.3f}, {c['ci'][1]:+.3f}], p={c['p_value']:.2g}")
            else:
                row.append("— (not scored per item in both)")
        rows.append(row)
    return header, rows


def _loss_figure(entries: list[dict]):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 3.2))
    drawn = set()
    for e in entries:
        if e["log"] and e["dir"] not in drawn:  # base and tuned of one run share its curve
            drawn.add(e["dir"])
            plot_loss(ax, e["log"], e["dir"].name)
    legend_beside(ax)
    fig.tight_layout()
    return fig


def _domain_figure(entries: list[dict], metric: str):
    import numpy as np

    plt = pyplot()
    domains = sorted({d for e in entries for d in e["model"].get("per_domain", {})})
    fig, ax = plt.subplots(figsize=(max(5, 1.4 * len(domains)), 3))
    width = 0.8 / len(entries)
    for k, e in enumerate(entries):
        per = e["model"].get("per_domain", {})
        scores = [per.get(d, {}).get(metric, {}).get("score", np.nan) for d in domains]
        lows = [per.get(d, {}).get(metric, {}).get("ci", [np.nan, np.nan])[0] for d in domains]
        highs = [per.get(d, {}).get(metric, {}).get("ci", [np.nan, np.nan])[1] for d in domains]
        x = np.arange(len(domains)) + k * width
        err = np.abs(np.array([np.subtract(scores, lows), np.subtract(highs, scores)]))
        ax.bar(x, scores, width, yerr=err, capsize=2, label=e["name"])
    ax.set_xticks(np.arange(len(domains)) + 0.4 - width / 2, domains)
    ax.set_ylabel(metric)
    legend_beside(ax)
    fig.tight_layout()
    return fig


def _answers(entries: list[dict]) -> tuple[list[str], str]:
    """(domains, the answers table HTML): items every run answered, in the first run's order."""
    gens = []
    for e in entries:
        path = e["dir"] / "generations" / f"{e['label']}.jsonl"
        if not path.exists():
            return [], f"<p>{escape(e['name'])} has no stored answers ({escape(str(path))}).</p>"
        gens.append({g.id: g for g in records_of(read_records(path), Generation, path, "Rerun the evaluation")})
    ids = [i for i in gens[0] if all(i in g for g in gens[1:])]
    domains = sorted({gens[0][i].domain or "other" for i in ids})
    head = "".join(f"<th>{escape(e['name'])}</th>" for e in entries)
    rows = []
    for i in ids:
        first = gens[0][i]
        prompt = first.prompt[-1].content if first.prompt else ""
        cells = "".join(f"<td>{escape(g[i].generation)}</td>" for g in gens)
        rows.append(
            f"<tr class='item d-{_slug(first.domain or 'other')}'><td>{escape(i)}<br>{escape(prompt)}</td>"
            f"<td>{escape(first.references[0] if first.references else '')}</td>{cells}</tr>"
        )
    return domains, (
        f"<table class='answers'><tr><th>item, prompt</th><th>reference</th>{head}</tr>{''.join(rows)}</table>"
        f"<p>{len(ids)} items answered by every run.</p>"
    )


def compare_page(specs: list[str], out: str | Path, n_boot: int = 1000) -> Path:
    """Write OUT/compare.html and OUT/compare.md for the runs `specs` (the first is the reference)."""
    if len(specs) < 2:
        raise ConfigError("report compare needs two runs or more: tuneforge report compare RUN_A RUN_B [RUN_C …]")
    runs = [s if Path(s).exists() else s.rpartition(":")[0] for s in specs]  # RUN or RUN:label
    out = check_output_dir(out, "report compare", inputs=[r for r in runs if r], replace=True, overwrite=True)
    entries = [_entry(s) for s in specs]
    if len({e["name"] for e in entries}) != len(entries):
        raise ConfigError(f"the same run:model appears twice in {specs}; give each once")
    deltas: list[dict | None] = []
    for s in specs[1:]:
        try:
            deltas.append(compare_runs(specs[0], s, n_boot))
        except TuneforgeError as exc:  # shown in the table's cells, not dropped
            deltas.append({"error": str(exc)})
    header, rows = _metric_rows(entries, deltas)
    parts = [
        section(
            "Runs",
            [
                "run:model",
                "model",
                "steps",
                "final loss",
                "tokens D",
                "C_train = 6ND",
                "GFLOP/s (share of peak)",
                "precision",
                "CPU/GPU",
            ],
            [
                [
                    e["name"],
                    str(e["run"].get("model", e["model"].get("model", ""))),
                    _fmt(e["run"].get("steps")),
                    _fmt(e["run"].get("final_loss")),
                    *_compute_cells(e["run"].get("compute")),
                    str(e["run"].get("precision", "")),
                    str(
                        e["run"].get("hardware", {}).get("cpu", "")
                        if isinstance(e["run"].get("hardware"), dict)
                        else ""
                    ),
                ]
                for e in entries
            ],
        ),  # fmt: skip
        section(f"Metrics, and the paired change against {entries[0]['name']}", header, rows),
    ]
    sized = [(e["name"], e["compression"]) for e in entries if e.get("compression")]
    if sized:
        parts.append(section("Size and speed (tuneforge compress compare, measured on its machine)",
            ["run:model", "parameters", "weights MB", "peak RSS MB", "tokens/s", "engine", "C_inf GFLOP/s", "held-out loss"],
            [[name, f"{c['params'] / 1e6:.1f}M", f"{c['weight_bytes'] / 2**20:.0f}", f"{c['peak_rss_mb']:.0f}",
              f"{c['tokens_per_s']:.1f}", c["engine"], f"{c['c_inf_gflops']:.1f}",
              _fmt((c.get("heldout_loss") or {}).get("loss"))] for name, c in sized]))  # fmt: skip
    if any(e["log"] for e in entries):
        parts.append(
            figure(
                _loss_figure(entries),
                "Loss per optimizer step, every run with a train_log: training (smoothed; raw points faint) and held-out evaluations with 95% CIs",
            )
        )
    metrics = list(dict.fromkeys(m for e in entries for m in e["model"].get("per_domain", {}).get(
        next(iter(e["model"].get("per_domain", {})), ""), {})))  # fmt: skip
    for m in metrics:
        parts.append(figure(_domain_figure(entries, m), f"{m} per domain with 95% CIs"))
    builds = [(e["name"], e["run"]["data_build"]) for e in entries if isinstance(e["run"].get("data_build"), dict)]
    if builds:
        stages = list(dict.fromkeys(k for _, b in builds for k in b.get("stages", {})))
        parts.append(section("Data build", ["run:model", *stages, "removed", "final"], [
            [name, *[_fmt(b.get("stages", {}).get(k)) for k in stages],
             ", ".join(f"{k} {v}" for k, v in b.get("removed", {}).items()) or "—", _fmt(b.get("final"))]
            for name, b in builds]))  # fmt: skip
    domains, answers = _answers(entries)
    radios = "".join(
        f"<input type='radio' name='dom' id='dom-{_slug(d)}'><label for='dom-{_slug(d)}'>{escape(d)}</label> "
        for d in domains
    )
    css = _FILTER_CSS + "".join(f"#dom-{_slug(d)}:checked~table tr.d-{_slug(d)}{{display:table-row}}" for d in domains)
    parts.append(
        f"<h2>Answers side by side</h2><style>{css}</style>"
        f"<input type='radio' name='dom' id='dom-all' checked><label for='dom-all'>all</label> {radios}{answers}"
    )
    names = ", ".join(e["name"] for e in entries)
    md = [f"# tuneforge compare: {names}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    with staged_dir(out, "report compare") as tmp:  # an earlier page of its own is replaced, nothing else
        write_text_atomic(tmp / "compare.html", page(f"tuneforge compare: {names}", parts))
        write_text_atomic(tmp / "compare.md", "\n".join(md) + "\n")
    return out / "compare.html"
