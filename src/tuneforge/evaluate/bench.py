"""`tuneforge eval bench MODEL --tasks …`: standard benchmarks through lm-evaluation-harness (a
dependency — tuneforge adds no benchmark code of its own), on the same model objects as every other
verb: a model name or `.gguf`, a `tuneforge train` / `demo` run directory (adapter merged onto its
base), or a PEFT adapter directory.

Any lm-eval task name works (`--tasks hellaswag,arc_easy`; hub-backed tasks download their data
as lm-eval does, so they need internet once). Two local tasks ship with tuneforge and run offline:
- `tuneforge_domains_gen`: the shipped test split (five domains) as a generate-until task, scored
  with lm-eval's corpus BLEU and chrF;
- `tuneforge_domains_mc`: 25 multiple-choice questions over the same domains, written for tuneforge
  (data/bench/domain_mc.jsonl), scored by log-likelihood (acc, acc_norm).
Their YAML is written at run time next to the results (their data paths are absolute); `--include
DIR` adds your own task folder.

Results: lm-eval's per-sample records to OUT/bench/<task>.jsonl, and each metric with lm-eval's
standard error turned into a normal 95% interval (score ± 1.96·stderr, clipped to the metric's
range: [0, 1] for accuracies, ≥ 0 for the rest) under `bench` in
OUT/metrics.json; a run directory's report then shows them beside its domain metrics.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import yaml

from tuneforge.errors import ConfigError
from tuneforge.files import check_output_dir, write_text_atomic
from tuneforge.paths import data_dir
from tuneforge.run_metrics import RunMetrics, read_metrics, write_metrics

LOCAL_TASKS = ("tuneforge_domains_gen", "tuneforge_domains_mc")
Z95 = 1.959964


def _stamp_bench(out: Path) -> None:
    """Mark a bench folder as tuneforge's (once), so a later bench may add to it."""
    from tuneforge.files import STAMP, read_stamp

    if read_stamp(out) is None:
        write_text_atomic(out / STAMP, json.dumps({"verb": "eval bench", "source": None}) + "\n")


def local_task_configs(folder: Path) -> Path:
    """Write the two shipped tasks' YAML (absolute data paths) into `folder`; returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    test_files = sorted(str(p) for p in (data_dir() / "domains" / "test").glob("*.jsonl"))
    tasks = {
        "tuneforge_domains_gen": {
            "task": "tuneforge_domains_gen",
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": test_files}},
            "test_split": "test",
            "output_type": "generate_until",
            "doc_to_text": "{{messages[0]['content']}}",
            "doc_to_target": "{{messages[-1]['content']}}",
            # until [] = stop at the tokenizer's EOS only (lm-eval adds it), not at a blank line
            "generation_kwargs": {"do_sample": False, "max_gen_toks": 64, "until": []},
            "metric_list": [
                {"metric": "bleu", "aggregation": "bleu", "higher_is_better": True},
                {"metric": "chrf", "aggregation": "chrf", "higher_is_better": True},
            ],
            "metadata": {"version": 1.0},
        },
        "tuneforge_domains_mc": {
            "task": "tuneforge_domains_mc",
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": str(data_dir() / "bench" / "domain_mc.jsonl")}},
            "test_split": "test",
            "output_type": "multiple_choice",
            "doc_to_text": "Question: {{question}}\nAnswer:",
            "doc_to_choice": "{{choices}}",
            "doc_to_target": "{{answer}}",
            "metric_list": [
                {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
            ],
            "metadata": {"version": 1.0},
        },
    }
    for name, cfg in tasks.items():
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return folder


def summarise(results: dict) -> dict:
    """lm-eval's `results` → {task: {metric: {score, stderr, ci, n}}}, the CI from the stderr."""
    out: dict = {}
    for task, row in results["results"].items():
        n = results.get("n-samples", {}).get(task, {}).get("effective")
        metrics = {}
        for key, value in row.items():
            name, _, filt = key.partition(",")
            if not filt or "_stderr" in name or not isinstance(value, (int, float)):
                continue
            se = row.get(f"{name}_stderr,{filt}")
            se = float(se) if isinstance(se, (int, float)) else None
            ci = None
            if se is not None:  # a normal interval, kept inside the metric's range
                top = 1.0 if name.startswith(("acc", "exact_match")) else float("inf")
                ci = [max(0.0, float(value) - Z95 * se), min(top, float(value) + Z95 * se)]
            metrics[name if filt == "none" else f"{name} ({filt})"] = {
                "score": float(value),
                "stderr": se,
                "ci": ci,
                "n": n,
            }
        out[task] = metrics
    return out


def run_bench(
    spec: str,
    tasks: list[str],
    out: str | Path | None = None,
    label: str = "",
    limit: int | None = None,
    include: list[str] | None = None,
    batch_size: int = 8,
    bootstrap: int = 1000,
    chat_template: bool = True,
    dtype: str = "auto",
    device: str = "auto",
) -> Path:
    """Run lm-eval `tasks` on the model `spec`; returns the metrics.json that holds the results."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from tuneforge.evaluate.model_spec import check_model_spec, load_eval_model, served_model

    if not tasks:
        raise ConfigError(f"--tasks is empty: give lm-eval task names, e.g. {','.join(LOCAL_TASKS)}")
    if served_model(spec):
        raise ConfigError(
            "eval bench runs the model in process (log-likelihood tasks need its logits); for a served model "
            "run lm-eval directly: lm_eval --model local-completions --model_args base_url=…"
        )
    check_model_spec(spec)
    run_dir = Path(spec)
    is_run = (run_dir / "metrics.json").exists()
    out = Path(out) if out else run_dir if is_run else Path("runs") / f"bench-{re.sub(r'[^A-Za-z0-9_.-]', '-', spec)}"
    label = label or ("tuned" if is_run else spec)
    into_run = is_run and out.resolve() == run_dir.resolve()  # results join the run's own metrics.json
    if not into_run:
        check_output_dir(out, "eval bench")  # a folder of the user's is refused before any work
    with tempfile.TemporaryDirectory(prefix="tuneforge-lm-eval-") as task_dir:  # nothing written before the run
        manager = TaskManager(include_path=[str(local_task_configs(Path(task_dir))), *(include or [])])
        unknown = [t for t in tasks if t not in manager.all_tasks]
        if unknown:
            raise ConfigError(f"unknown lm-eval task(s) {unknown}. Shipped offline: {', '.join(LOCAL_TASKS)}")
        model, tok, described = load_eval_model(spec, dtype, device)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        lm = HFLM(pretrained=model, tokenizer=tok, batch_size=batch_size)
        results = lm_eval.simple_evaluate(
            model=lm,
            tasks=tasks,
            task_manager=manager,
            limit=limit,
            log_samples=True,
            bootstrap_iters=bootstrap,
            apply_chat_template=chat_template,
            random_seed=0,
            numpy_random_seed=0,
            torch_random_seed=0,
            fewshot_random_seed=0,
        )
    if not into_run:
        _stamp_bench(out)
    for task, samples in results.get("samples", {}).items():
        write_text_atomic(out / "bench" / f"{task}.jsonl", "".join(json.dumps(s, default=str) + "\n" for s in samples))
    path = out / "metrics.json"
    metrics = read_metrics(out) if path.exists() else RunMetrics(run={"name": out.name, "kind": "bench"})
    metrics.bench = metrics.bench or {}
    metrics.bench[label] = {
        "model": described,
        "tasks": summarise(results),
        "settings": {
            "limit": limit,
            "chat_template": chat_template,
            "bootstrap_iters": bootstrap,
            "batch_size": batch_size,
            "lm_eval": lm_eval.__version__,
            "interval": "score ± 1.96 × lm-eval stderr",
        },
    }
    write_metrics(out, metrics)
    if metrics.models:
        from tuneforge.evaluate.report import write_report

        write_report(out)
    return path
