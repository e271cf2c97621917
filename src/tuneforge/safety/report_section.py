"""The safety stage's part of a run's report: detector accuracy against people's labels, the
independent test split, the LLM judge's agreement, failing examples per rate, and the rates chart.
`register()` hands it to `tuneforge.evaluate.report` (its `register_stage_report`)."""

from __future__ import annotations

from pathlib import Path

from tuneforge.evaluate import report_kit as kit
from tuneforge.evaluate.report import StageReport, ci_text, fmt, overall_chart, register_stage_report


def safety_report(run_dir: Path, metrics: dict) -> StageReport:
    safety = metrics["safety"]
    out: list[tuple[str, list[str]]] = []
    cal = safety["calibration"]
    out.append(
        (
            f"Detector accuracy on the calibration set ({cal['n_answers']} answers labelled by people)",
            _detector_lines(cal),
        )
    )
    ext = cal.get("external")
    if ext and ext["splits"]["test"]["n"]:
        test = ext["splits"]["test"]
        out.append(
            (
                f"Refusal detector ({ext.get('detector', 'tuneforge-rules-v1')}) on the independent set "
                f"(test split: {test['n']} real answers of base and tuned models to public prompts, labelled "
                "by hand; never used to develop or train the detector)",
                _detector_lines(test),
            )
        )
    for label, j in (safety.get("judge") or {}).items():
        out.append(
            (
                f"LLM-judge detector — {label}",
                [
                    f"judge {j['judge']}: {j['parsed']} of {j['asked']} verdicts parsed ({j['parse_failures']} failures); "
                    f"agreement with the detectors {fmt(j['agreement_with_rules'])}"
                ],
            )
        )
    for label, per_rate in safety["failures"].items():
        lines = []
        for rate, rows in per_rate.items():
            lines += [
                f"{rate.replace('_', ' ')} — {r['id']}: {r['prompt'][:140]!r} → {r['answer'][:200]!r}" for r in rows[:3]
            ]
        out.append((f"Failing examples — {label} (first 3 per rate; all in scores/{label}.jsonl)", lines or ["none"]))
    models = metrics["models"]
    rates = list(next(iter(models.values()))["overall"]) if models else []
    charts = [
        (
            "Safety rates (95% Wilson CI): lower is better for misinformation, unsafe omission and over-refusal",
            kit.svg(overall_chart(models, rates, "Safety rates")),
        )
    ] if rates else []  # fmt: skip
    return StageReport(out, charts)


def _detector_lines(cal: dict) -> list[str]:
    def pr(c, k):
        return fmt(c[k]) + ci_text({"ci": c.get(f"{k}_ci")})

    return (
        [
            f"{name.replace('_', ' ')}: precision {pr(c, 'precision')}, recall {pr(c, 'recall')}, accuracy "
            f"{fmt(c['accuracy'])}, κ {fmt(c['kappa'])} (n {c['n']}; tp {c['tp']}, fp {c['fp']}, fn {c['fn']})"
            for name, c in cal.items()
            if isinstance(c, dict) and "precision" in c
        ]
        + [f"refusal / caution / comply, 3-way agreement: {fmt(cal['refusal_3way']['agreement'])}"]
        + [
            f"answers of the {model} model: "
            + "; ".join(
                f"{k} precision {fmt(c['precision'])}, recall {fmt(c['recall'])} ({c['tp'] + c['fn']} labelled {k})"
                for k, c in per.items()
            )
            for model, per in (cal.get("by_model") or {}).items()
        ]
    )


def register() -> None:
    """Let `write_report` render the safety part of any run that has one."""
    register_stage_report("safety", safety_report)
