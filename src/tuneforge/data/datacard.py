"""The dataset card (datacard.md) of a data build, from its manifest."""

from __future__ import annotations

from pathlib import Path

from tuneforge.data.build_config import BuildConfig


def datacard(cfg: BuildConfig, m: dict) -> str:
    lines = [
        f"# Dataset card: {Path(cfg.output_dir).name}",
        "",
        f"{m['final']} training records in `train.jsonl` (TRL `messages` format), built by "
        f"`tuneforge data build` with {m['llm']['kind']} model `{m['llm']['model']}` "
        f"({m['llm']['calls']} model calls, {m['llm']['cache_hits']} answers from the cache).",
        "",
        "| stage | records |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in m["stages"].items()]
    lines += ["", f"Filters removed {sum(m['removed'].values())} records (each listed in `removed.jsonl`):", ""]
    lines += [f"- {k}: {v}" for k, v in m["removed_reasons"].items()] or ["- nothing"]
    lines += ["", "| domain | records |", "|---|---|"] + [f"| {k} | {v} |" for k, v in m["final_by_domain"].items()]
    lines += ["", "| source | records |", "|---|---|"] + [f"| {k} | {v} |" for k, v in m["final_by_source"].items()]
    if "preferences" in m["reports"]:
        p = m["reports"]["preferences"]
        lines += [
            "",
            f"`preferences.jsonl`: {p['pairs']} preference pairs from {p['prompts']} prompts × "
            f"{p['sampling']['n']} samples of `{p['policy']}` (temperature {p['sampling']['temperature']}), "
            f"scored by {p['scorer']}; {p['ties']} ties and {p['too_few_scored']} prompts with fewer than two "
            f"scored samples gave no pair; {p['parse_failures']} judge verdicts did not parse and were left out. "
            "Each pair's `meta` holds every sample, score and verdict.",
        ]
    lines += [
        "",
        "Every record carries its provenance: `source`, and in `meta` the generator model, step,",
        "parameters and seed. Synthetic records were produced by a model and are not checked by people.",
        "",
    ]
    return "\n".join(lines)
