"""What `tuneforge scaling` writes for a reader: scaling.md (the runs, every law's constants with 95%
CIs, the extrapolation check, what more data would buy, the model choice) and scaling.png (points,
fitted curve and its bootstrap band per model, the budget marked)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tuneforge.evaluate import report_kit as kit
from tuneforge.files import write_text_atomic
from tuneforge.scaling.fit import Points, band, predict

NAMES = {"A": "A", "alpha": "α", "B": "B", "beta": "β", "E": "E", "D_l": "D_l"}


def _ci(v: float, ci: list[float]) -> str:
    return f"{v:.4g} [{ci[0]:.4g}, {ci[1]:.4g}]"


def _law_line(title: str, fit: dict) -> str:
    consts = ", ".join(f"{NAMES[k]} = {_ci(v, fit['ci'][k])}" for k, v in fit["params"].items() if k != "sse")
    return f"- {title}: {consts} ({fit['n_points']} points, {fit['n_boot']} bootstrap draws)"


def format_markdown(result: dict) -> str:
    fits, hw = result["fits"], result["hardware"]
    lines = ["# tuneforge scaling", "", f"CPU: {hw['cpu']} ({hw['torch_threads']} torch threads). "
             f"Total training compute C = Σ6ND = {result['total_c_train']:.3g} FLOPs.", "", "## Runs", "",
             "| model | fraction | seed | examples | tokens D | C = 6ND | held-out loss [95% CI] | train s |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["runs"]:
        lines.append(f"| {r['name']} | {r['fraction']:g} | {r['seed']} | {r['examples']} | {r['tokens']:,} | "
                     f"{r['c_train_6nd']:.3g} | {_ci(r['heldout_loss'], r['heldout_ci'])} | {r['train_seconds']:.0f} |")  # fmt: skip
    for name, m in fits["models"].items():
        x = m["extrapolation"]
        verdict = ("**the curve bends away from the law: do not extrapolate further**" if x["bends"]
                   else "within the interval: the law held one doubling out")  # fmt: skip
        lines += ["", f"## {name} (N = {m['n'] / 1e6:.1f}M non-embedding parameters)", "",
                  _law_line("L(D) = B/D^β + E", m["data_law"]),
                  _law_line("rectified L(D) = B/(D_l + D^β) + E (base model at D = 0 included)", m["rectified_law"]),
                  f"- Extrapolation check: fitted on D ≤ {max(x['fit_on']):,.0f} tokens, predicted "
                  f"{x['predicted']:.4f} at D = {x['d_max']:,.0f}, measured {x['observed']:.4f}: error "
                  f"{_ci(x['error'], x['ci'])} — {verdict}.",
                  f"- Measured with all the data (D = {m['full_data']['d']:,.0f}): {m['full_data']['loss']:.4f}. "
                  + "; ".join(f"with {k} the data the law predicts {v['loss']:.4f} [{v['ci'][0]:.4f}, {v['ci'][1]:.4f}]"
                              f" ({v['loss'] - m['full_data']['loss']:+.4f})" for k, v in m["more_data"].items())
                  + "."]  # fmt: skip
    if "joint_law" in fits:
        lines += ["", "## Joint law (seed 001 eq. 23)", "", _law_line("L(N, D) = A/N^α + B/D^β + E", fits["joint_law"])]
    s = fits["selection"]
    sure = "" if s["confidence"] >= 0.8 else " — not a confident choice: the models' intervals overlap"
    lines += ["", f"## Model choice at a budget of {s['budget']:,.0f} tokens (rectified law)", ""]
    lines += [f"- {k}: predicted {_ci(v['loss'], v['ci'])}" for k, v in s["predicted"].items()]
    lines += [f"- Choice: **{s['choice']}**, lowest in {100 * s['confidence']:.0f}% of bootstrap draws{sure}.", "",
              "![loss against tokens](scaling.png)", ""]  # fmt: skip
    return "\n".join(lines)


def scaling_figure(trained: Points, result: dict, data_fits: dict[str, dict]):
    """Held-out loss against tokens (log x) per model: every run, the data law and its 95% band (the
    fits `analyse` made, draws included), the rectified law dashed, the budget marked."""
    budget = result["budget"]
    plt = kit.pyplot()
    fig, ax = plt.subplots(figsize=(7.6, 4.4))
    for m, name in enumerate(data_fits):
        own = trained.subset(trained.model == m)
        color = f"C{m}"
        ax.plot(own.d, own.loss, "o", color=color, alpha=0.8, label=f"{name}: runs")
        grid = np.geomspace(own.d.min() / 1.5, max(budget, own.d.max()) * 1.2, 100)
        fit = data_fits[name]
        lo, hi = band(fit, 1, grid)
        ax.plot(grid, predict("data", fit["params"], 1, grid), "-", color=color, label=f"{name}: B/D^β + E")
        ax.fill_between(grid, lo, hi, color=color, alpha=0.15, linewidth=0)
        rect = result["fits"]["models"][name]["rectified_law"]["params"]
        ax.plot(grid, predict("rectified", rect, 1, grid), "--", color=color, alpha=0.7, label=f"{name}: rectified")
    ax.axvline(budget, color="grey", linestyle=":", linewidth=1, label="budget")
    ax.set_xscale("log")
    ax.set_xlabel("fine-tuning tokens D")
    ax.set_ylabel("held-out loss per target token")
    kit.legend_beside(ax)
    fig.tight_layout()
    return fig


def write_outputs(out: Path, result: dict, trained: Points, data_fits: dict[str, dict]) -> None:
    write_text_atomic(out / "scaling.md", format_markdown(result))
    fig = scaling_figure(trained, result, data_fits)
    fig.savefig(out / "scaling.png", dpi=110)
    kit.pyplot().close(fig)
