"""`tuneforge <verb>`: a thin layer over library functions. Each verb calls one function.

The verbs are declared once, in `VERBS` (words, command, help, and either the config dataclass whose
keys the verb takes or its few flags); `build_parser` derives the whole parser from that table.
Building it imports no torch: config keys are read from the dataclasses only when --help is shown.

Errors a user can fix (TuneforgeError) print one line and exit with code 2; `--debug` shows the
traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tuneforge.data.io import FORMATS
from tuneforge.embedded import EMBEDDED_MODEL
from tuneforge.errors import ConfigError, TuneforgeError, os_error_message
from tuneforge.redaction import redact


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose epilog may be a callable, evaluated only when help is shown: building
    the parser (on every command) then imports no config module — and so no torch."""

    def format_help(self) -> str:
        if callable(self.epilog):
            self.epilog = self.epilog()
        return super().format_help()

    def error(self, message: str):  # type: ignore[override]
        """A usage mistake is one line and exit code 2, like every other user error (argparse's own
        prints the usage block and a second error format)."""
        raise TuneforgeError(f"{message}. See `{self.prog} --help`")


def _config_epilog(where: str):
    """The config keys of the dataclass at 'module:Class', listed when help is shown."""

    def text() -> str:
        import importlib

        from tuneforge.config import config_help

        module, _, name = where.partition(":")
        return "config keys (YAML or key=value overrides):\n" + "\n".join(
            config_help(getattr(importlib.import_module(module), name))
        )

    return text


def cmd_demo(args) -> int:
    from tuneforge.config import bundled_config, load_config
    from tuneforge.demo import DemoConfig, run_demo

    cfg = load_config(DemoConfig, args.config or bundled_config("demo"), args.overrides)
    run_demo(cfg)
    return 0


def cmd_train(args) -> int:
    from tuneforge.config import load_config
    from tuneforge.train.inspect import inspect_run
    from tuneforge.train.run import train_model
    from tuneforge.train.run_config import TrainRunConfig

    words = list(args.args)
    inspect = bool(words) and words[0] == "inspect"
    if inspect:
        words.pop(0)
    if not words or "=" in words[0]:
        raise TuneforgeError(
            "tuneforge train needs a config file first: tuneforge train [inspect] CONFIG "
            "[key=value ...] (bundled: configs/lora.yaml, configs/full.yaml, ...)"
        )
    cfg = load_config(TrainRunConfig, words[0], words[1:])
    if inspect:
        print(inspect_run(cfg, args.n))
        return 0
    train_model(cfg)
    return 0


def cmd_compress(args) -> int:
    from tuneforge.compress.run import CompressRunConfig, compress_model
    from tuneforge.config import load_config

    out = compress_model(load_config(CompressRunConfig, *_config_and_overrides(args)))
    s = json.loads((out / "compress_summary.json").read_text())
    h = s["heldout"]
    line = f"{s['params_source']:,} → {s['params']:,} parameters ({100 * s['params'] / s['params_source']:.1f}%)"
    for name in ("source", "pruned", "recovered"):
        if h.get(name):
            lo, hi = h[name]["ci"]
            line += f"; held-out loss {name} {h[name]['loss']:.3f} [{lo:.3f}, {hi:.3f}]"
    print(line)
    for note in s["plan"]["notes"]:
        print(f"note: {note}")
    print(f"Model: {s['model']} (AutoModelForCausalLM.from_pretrained); summary: {out / 'compress_summary.json'}")
    return 0


def cmd_compress_compare(args) -> int:
    from tuneforge.compress.table import CompressCompareConfig, compare_variants
    from tuneforge.config import load_config

    out = compare_variants(load_config(CompressCompareConfig, *_config_and_overrides(args)))
    print((out / "compression.md").read_text())
    print(
        f"Results: {out / 'compression.json'}, {out / 'size_vs_quality.png'}, eval report {out / 'eval' / 'report.html'}"
    )
    return 0


def cmd_scaling(args) -> int:
    from tuneforge.config import load_config
    from tuneforge.scaling.run import ScalingConfig, run_scaling

    out = run_scaling(load_config(ScalingConfig, *_config_and_overrides(args)))
    print((out / "scaling.md").read_text())
    print(f"Results: {out / 'scaling.json'}, {out / 'scaling.png'}")
    return 0


def cmd_export(args) -> int:
    if args.quant and not args.gguf:
        raise TuneforgeError(f"--quant {args.quant} applies to --gguf only. Add --gguf, or drop --quant")
    if args.merge and args.gguf:
        raise TuneforgeError("--merge and --gguf are two exports: --gguf merges by itself. Pass one of them")
    if args.gguf:
        from tuneforge.train.gguf_export import export_gguf

        path = export_gguf(args.run_dir, args.out, args.quant or "f16", overwrite=args.overwrite)
        ollama = path.parent / "Modelfile"
        print(
            f"Exported {path}"
            + (
                f" and {ollama} (Ollama: cd {path.parent} && ollama create NAME -f Modelfile)"
                if ollama.exists()
                else ""
            )
            + f" (llama.cpp: llama-cli -m {path})"
        )
        return 0
    from tuneforge.train.export import export_run

    out = export_run(args.run_dir, args.out, merge=args.merge, dtype=args.dtype, overwrite=args.overwrite)
    what = "merged model (AutoModelForCausalLM.from_pretrained)" if args.merge else "trained weights"
    print(f"Exported the {what} to {out}")
    return 0


def cmd_data_convert(args) -> int:
    from tuneforge.data.io import convert_file

    n = convert_file(args.input, args.output, args.to, args.from_format, overwrite=args.overwrite)
    print(f"wrote {n} records to {args.output} ({args.to})")
    return 0


def cmd_data_build(args) -> int:
    from tuneforge.config import load_config
    from tuneforge.data.run import BuildConfig, build_dataset

    cfg = load_config(BuildConfig, args.config, args.overrides)
    out = build_dataset(cfg)
    manifest = json.loads((out / "manifest.json").read_text())
    if manifest["stages"]:
        print(
            f"Built {manifest['final']} records in {out / 'train.jsonl'} (stages: {manifest['stages']}; removed: "
            f"{manifest['removed'] or 'none'}; LLM calls {manifest['llm']['calls']}, cache hits "
            f"{manifest['llm']['cache_hits']}). See {out / 'datacard.md'}"
        )
    if "preferences" in manifest["reports"]:
        p = manifest["reports"]["preferences"]
        print(
            f"Built {p['pairs']} preference pairs in {out / 'preferences.jsonl'} from {p['prompts']} prompts "
            f"({p['ties']} ties, {p['too_few_scored']} with < 2 scored samples, {p['parse_failures']} unparsed "
            f"verdicts; LLM calls {p['llm_calls']}, cache hits {p['cache_hits']}). Train on them: tuneforge train "
            f"configs/dpo.yaml data.train={out / 'preferences.jsonl'}"
        )
    return 0


def cmd_data_synth(args) -> int:
    from tuneforge.config import load_config
    from tuneforge.data.build_config import BuildConfig
    from tuneforge.data.file_steps import synth

    out = synth(load_config(BuildConfig, args.config, args.overrides))
    manifest = json.loads((out / "manifest.json").read_text())
    print(
        f"Synthesised {manifest['final']} records (unfiltered) in {out / 'train.jsonl'} (stages: "
        f"{manifest['stages']}; LLM calls {manifest['llm']['calls']}, cache hits {manifest['llm']['cache_hits']})"
    )
    return 0


def _step_config(step: str, overrides: list[str], sections: tuple[str, ...]):
    """The build-config keys one data step reads; a key it would ignore is an error, not a no-op."""
    from tuneforge.config import load_config
    from tuneforge.data.build_config import BuildConfig

    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if "=" in item and key.split(".", 1)[0] not in sections:
            allowed = " and ".join(f"{s}.*" for s in sections)
            raise ConfigError(
                f"data {step} reads only {allowed} keys; '{key}' would be ignored. "
                f"Use it with the step that reads it (tuneforge data build takes every key), or drop it"
            )
    return load_config(BuildConfig, None, overrides)


def _print_step(report: dict) -> int:
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


def cmd_data_augment(args) -> int:
    from tuneforge.data.file_steps import augment_file

    cfg = _step_config("augment", args.overrides, ("augment", "llm"))
    return _print_step(augment_file(args.input, args.output, cfg.augment, cfg.llm, overwrite=args.overwrite))


def cmd_data_filter(args) -> int:
    from tuneforge.data.file_steps import filter_file

    cfg = _step_config("filter", args.overrides, ("filters", "llm"))
    return _print_step(filter_file(args.input, args.output, cfg.filters, cfg.llm, overwrite=args.overwrite))


def cmd_data_dedup(args) -> int:
    from tuneforge.data.file_steps import dedup_file

    return _print_step(
        dedup_file(args.input, args.output, args.threshold, args.part, args.ngram, overwrite=args.overwrite)
    )


def cmd_data_decontam(args) -> int:
    from tuneforge.data.file_steps import decontam_file

    return _print_step(decontam_file(args.input, args.output, args.against, args.ngram, overwrite=args.overwrite))


def cmd_data_mix(args) -> int:
    from tuneforge.data.file_steps import mix_files

    return _print_step(
        mix_files(args.sources, args.output, args.total, args.ratio, args.seed, overwrite=args.overwrite)
    )


def cmd_data_stats(args) -> int:
    from tuneforge.data.stats import dataset_stats, format_stats

    stats = dataset_stats(
        args.file, tokenizer=None if args.tokenizer == "none" else args.tokenizer, format=args.from_format
    )
    print(json.dumps(stats, indent=2) if args.json else format_stats(stats))
    return 0


def _eval_config(args):
    from tuneforge.config import load_config
    from tuneforge.evaluate.run import EvalRunConfig

    return load_config(EvalRunConfig, *_config_and_overrides(args))


def cmd_eval_generate(args) -> int:
    from tuneforge.evaluate.run import eval_generate

    cfg = _eval_config(args)
    gens = eval_generate(cfg)
    print("Generations: " + ", ".join(f"{k} {len(v)}" for k, v in gens.items()) + f" in {cfg.output_dir}/generations")
    return 0


def cmd_eval_run(args) -> int:
    from tuneforge.evaluate.run import run_eval

    out = run_eval(_eval_config(args))
    print(f"Report: {out / 'report.html'} (and report.md, metrics.json)")
    return 0


def cmd_eval_score(args) -> int:
    from tuneforge.evaluate.run import eval_score

    out = eval_score(_eval_config(args))
    print(f"Report: {out / 'report.html'} (and report.md, metrics.json)")
    return 0


def cmd_eval_compare(args) -> int:
    from tuneforge.evaluate.paired_deltas import compare_runs, format_comparison

    result = compare_runs(args.run_a, args.run_b, n_boot=args.bootstrap)
    print(json.dumps(result, indent=2) if args.json else format_comparison(result))
    return 0


def cmd_eval_bench(args) -> int:
    from tuneforge.evaluate.bench import run_bench
    from tuneforge.run_metrics import read_metrics

    _register_stage_reports()  # bench results joining a safety run re-render its whole report
    path = run_bench(
        args.model,
        [t for t in args.tasks.split(",") if t],
        args.out,
        args.label,
        args.limit,
        args.include,
        args.batch_size,
        args.bootstrap,
        not args.no_chat_template,
        args.dtype,
        args.device,
    )
    for label, bench in (read_metrics(path.parent).bench or {}).items():
        for task, metrics in bench["tasks"].items():
            for name, r in metrics.items():
                ci = f" [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]" if r["ci"] else ""
                print(f"{label}  {task}  {name}: {r['score']:.3f}{ci} (n={r['n']})")
    print(f"Results: {path} (per-sample records in {path.parent / 'bench'})")
    return 0


def _config_and_overrides(args):
    """An optional config path, then overrides: a first word `key=value` (a dotted key, '=') is an
    override, never a path (as a Path, `base_url=http://…` lost a slash)."""
    config, overrides = args.config, list(args.overrides)
    if config is not None and re.match(r"^[A-Za-z_][\w.]*=", config):
        config, overrides = None, [config, *overrides]
    return (Path(config) if config is not None else None), overrides


def cmd_safety_run(args) -> int:
    from tuneforge.config import load_config
    from tuneforge.safety.run import SafetyRunConfig, safety_run

    config, overrides = _config_and_overrides(args)
    out = safety_run(load_config(SafetyRunConfig, config, overrides))
    from tuneforge.run_metrics import read_metrics

    for label, res in read_metrics(out).models.items():
        print(
            f"{label}: "
            + "; ".join(
                f"{k.replace('_', ' ')} {v['score']:.1f}% [{v['ci'][0]:.1f}, {v['ci'][1]:.1f}] (n {v['n']})"
                for k, v in res.overall.items()
            )
        )
    print(f"Report: {out / 'report.html'}")
    return 0


def cmd_safety_calibrate(args) -> int:
    from tuneforge.safety.calibration import calibrate, format_calibration

    result = calibrate(detector=args.detector)
    print(json.dumps(result, indent=2) if args.json else format_calibration(result))
    return 0


def cmd_safety_train_detector(args) -> int:
    from tuneforge.safety.calibration import calibrate_external, detector_examples, format_external
    from tuneforge.safety.refusal_classifier import DetectorTrainConfig, train_refusal_classifier

    cfg = DetectorTrainConfig(epochs=args.epochs, seed=args.seed)
    examples = detector_examples()
    print(
        f"training the refusal classifier on {len(examples)} labelled answers (calibration set + independent dev split)"
    )
    train_refusal_classifier(
        examples, args.out, cfg, sources="calibration.yaml + external.yaml split=dev", overwrite=args.overwrite
    )
    print(format_external(calibrate_external(detector=str(args.out))))
    print(f"Classifier: {args.out} (use it with safety run detector={args.out})")
    return 0


def cmd_safety_suite(args) -> int:
    from tuneforge.safety.suite import export_items, load_suite, validate_suite

    items = load_suite(args.suite, args.split)
    print(json.dumps(validate_suite(load_suite(args.suite)), indent=2))
    if args.export:
        export_items(items, args.export, overwrite=args.overwrite)
        print(f"wrote {len(items)} {args.split} items to {args.export}")
    return 0


def cmd_multitask_run(args) -> int:
    from tuneforge.config import load_config
    from tuneforge.multitask.run import MultiTaskConfig, run_experiment

    out = run_experiment(load_config(MultiTaskConfig, *_config_and_overrides(args)))
    print((out / "results.md").read_text())
    print(f"Results: {out / 'results.json'}, {out / 'results.md'}, {out / 'methods.png'}")
    return 0


def cmd_reflect_run(args) -> int:
    import json

    from tuneforge.config import load_config
    from tuneforge.reflect.run import ReflectRunConfig, reflect_run

    out = reflect_run(load_config(ReflectRunConfig, *_config_and_overrides(args)))
    s = json.loads((out / "alignment.json").read_text())
    print(
        f"{s['n_items']} items: {s['converged']} converged before T={s['max_iterations']}; "
        f"teacher verdicts not parsed: {s['parse_failures']} of {s['verdicts']}"
    )
    print(
        f"Trace {out / 'trace.jsonl'}, matrix {out / 'alignment.json'}, heatmap {out / 'alignment.png'}, "
        f"SFT records {out / 'reflected.jsonl'}, report {out / 'report.html'}"
    )
    return 0


def cmd_env(args) -> int:
    from tuneforge.hardware import describe_environment, format_environment

    env = describe_environment(measure=not args.no_measure)
    print(json.dumps(env, indent=2) if args.json else format_environment(env))
    return 0


def cmd_ui(args) -> int:
    from tuneforge.ui.app import serve

    serve(args.root, args.host, args.port, args.token)
    return 0


def _register_stage_reports() -> None:
    """Every stage's part of a run's report (the CLI may know all stages; report.py knows none)."""
    from tuneforge.compress.report_section import register as compression
    from tuneforge.safety.report_section import register as safety

    safety()
    compression()


def cmd_report(args) -> int:
    from tuneforge.evaluate.report import write_report
    from tuneforge.files import check_finished

    _register_stage_reports()
    if args.runs[0] == "compare":
        from tuneforge.evaluate.compare_page import compare_page

        print(f"Report: {compare_page(args.runs[1:], args.out or Path('runs/compare'), args.bootstrap)}")
        return 0
    if len(args.runs) != 1:
        from tuneforge.errors import ConfigError

        raise ConfigError(
            "give one run directory (tuneforge report RUN), or compare runs: tuneforge report compare A B"
        )
    check_finished(Path(args.runs[0]))  # a failed run's old metrics.json must not pass for its result
    print(f"Report: {write_report(args.runs[0])}")
    return 0


def _help(text: str | None) -> str | None:
    """argparse %-formats help strings: a literal '%' ('95% CIs') must be doubled or --help crashes."""
    return text.replace("%", "%%") if text else text


def _number_flag(tp: type, flag: str, ge: float | None, gt: float | None, le: float | None):
    """argparse `type` for a numeric flag: a finite number within its bounds, else one TuneforgeError
    line (argparse's own error would print the usage block too, and it takes 'inf' and -1)."""
    bounds = " and ".join(f"{op} {v}" for op, v in (("≥", ge), (">", gt), ("≤", le)) if v is not None)

    def convert(text: str):
        try:
            value = tp(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value):
            raise TuneforgeError(f"{flag} {text!r} is not a finite {tp.__name__}. Give a number {bounds}".rstrip())
        if (ge is not None and value < ge) or (gt is not None and value <= gt) or (le is not None and value > le):
            raise TuneforgeError(f"{flag} must be {bounds}, got {text}")
        return value

    return convert


def _arg(
    *flags: str, ge: float | None = None, gt: float | None = None, le: float | None = None, **kwargs
) -> tuple[tuple[str, ...], dict]:
    if "help" in kwargs:
        kwargs["help"] = _help(kwargs["help"])
    if kwargs.get("type") in (int, float):
        kwargs["type"] = _number_flag(kwargs["type"], flags[0], ge, gt, le)
    return flags, kwargs


_JSON = _arg("--json", action="store_true", help="print JSON")


def _bootstrap(help_text: str) -> tuple[tuple[str, ...], dict]:
    return _arg("--bootstrap", type=int, ge=0, le=100_000, default=1000, help=help_text)


_OVERWRITE = _arg("--overwrite", action="store_true", help="replace OUTPUT (and OUTPUT.removed.jsonl) if it exists")
_IN_OUT = (
    _arg("input", help="data file (any format) or seed:train"),
    _arg("output", type=Path, help="a new file (an existing one only with --overwrite)"),
    _OVERWRITE,
)
_FROM = _arg("--from", dest="from_format", help="input format (default: detected)")


@dataclass(frozen=True)
class Verb:
    """One CLI verb: its words, the command that runs it and its arguments. A verb with `config`
    ('module:Class') takes that dataclass's keys as YAML and/or key=value overrides (`config_arg`:
    'required', 'optional', or 'bundled' = optional with a shipped default) and lists them, with their
    help metadata, under --help; other verbs declare their few flags in `args`."""

    words: str
    run: Callable[[argparse.Namespace], int] | None  # None: a group of verbs
    help: str
    description: str = ""
    config: str = ""
    config_arg: str = ""
    args: tuple = ()


_EVAL = "tuneforge.evaluate.run:EvalRunConfig"
VERBS = (
    Verb(
        "demo",
        cmd_demo,
        "run the whole pipeline on the embedded model",
        "Build data, LoRA-tune the embedded SmolLM2-135M-Instruct, compare base vs tuned per domain, write a report.",
        "tuneforge.demo:DemoConfig",
        "bundled",
    ),
    Verb(
        "train",
        cmd_train,
        "fine-tune with any objective (--help lists all, with their keys) and any adapter; `train inspect` shows the masks",
        "tuneforge train CONFIG [key=value ...] | tuneforge train inspect CONFIG",
        "tuneforge.train.run_config:TrainRunConfig",
        args=(
            _arg("args", nargs="*", help="[inspect] CONFIG [key=value ...]"),
            _arg("--n", type=int, ge=1, default=2, help="examples to show with inspect"),
        ),
    ),
    Verb(
        "export",
        cmd_export,
        "export a training run: the adapter, (--merge) a merged model, or (--gguf) a GGUF + Ollama Modelfile",
        "Copy a run's adapter (PeftModel.from_pretrained), or with --merge fold it into the base and save "
        "safetensors loadable with AutoModelForCausalLM.from_pretrained, or with --gguf write the merged "
        "model as one GGUF file (llama.cpp, Ollama) with its chat template, EOS and end-of-turn tokens, and "
        "an Ollama Modelfile beside it.",
        args=(
            _arg("run_dir", type=Path, help="a directory written by tuneforge train"),
            _arg("--merge", action="store_true", help="merge LoRA/IA³ weights into the base model"),
            _arg("--gguf", action="store_true", help="merge, then write OUT/model-QUANT.gguf and OUT/Modelfile"),
            _arg(
                "--quant",
                help="GGUF weight type, with --gguf: f16 (default), q8_0, f32, or through llama.cpp's quantizer "
                "q4_k_m, q4_k_s, q5_k_m, q5_k_s, q6_k, q3_k_m, q2_k, q4_0, q4_1, q5_0, q5_1",
            ),
            _arg(
                "--out",
                type=Path,
                help="output directory (default RUN_DIR/merged, RUN_DIR/export or RUN_DIR/gguf); must be new, "
                "empty, or an earlier export of this run",
            ),
            _arg("--overwrite", action="store_true", help="replace an earlier export of this run in --out"),
            _arg("--dtype", default="", help="dtype of the merged weights (default: the run's model.dtype)"),
        ),
    ),
    Verb("compress", None, "smaller models: structured pruning, recovery, INT8/INT4, and one table of the trade-off"),
    Verb(
        "compress run",
        cmd_compress,
        "prune heads, MLP channels and layers (magnitude | taylor | learned gates), recover, quantize",
        "A smaller model that AutoModelForCausalLM.from_pretrained loads, from a model or a run: structured "
        "pruning scored on calibration data (one domain, or the run's training data), optional recovery by LoRA "
        "SFT or distillation from the unpruned model, optional INT8/INT4 weights; held-out loss before and after "
        "with 95% CIs. e.g. tuneforge compress run configs/compress.yaml source=runs/demo prune.mlp=0.5",
        "tuneforge.compress.run:CompressRunConfig",
        "optional",
    ),
    Verb(
        "compress compare",
        cmd_compress_compare,
        "one table of parameters, size, peak memory, tokens/s, C_inf and quality (paired CIs) for model variants",
        "tuneforge compress compare variants=[orig=runs/demo-merged,p50=runs/compress-50,q4=model-q4_k_m.gguf] — "
        "the first variant is the original every delta is against. Writes compression.md/.json, "
        "size_vs_quality.png and the eval run (answers, report) under output_dir.",
        "tuneforge.compress.table:CompressCompareConfig",
        "optional",
    ),
    Verb(
        "scaling",
        cmd_scaling,
        "how much would more data help, which model to tune: scaling-law fits with CIs (seed eq. 23)",
        "Train the same recipe on nested fractions of data.train (× seeds, × models of one family), fit "
        "L(D) = B/D^β + E, the rectified law and, with several models, L(N, D) = A/N^α + B/D^β + E, with "
        "bootstrap CIs on every constant; check the fit by predicting the largest fraction; predict 2× and 4× "
        "the data; choose a model at scaling.budget tokens. Writes scaling.md/.json/.png; finished runs are "
        "reused. e.g. tuneforge scaling configs/scaling.yaml scaling.seeds=[0]",
        "tuneforge.scaling.run:ScalingConfig",
        "optional",
    ),
    Verb("data", None, "build, convert, filter and inspect data"),  # a group
    Verb(
        "data convert",
        cmd_data_convert,
        "convert between formats",
        f"Formats: {', '.join(FORMATS)}. The input format is detected unless --from is given.",
        args=(
            _arg("input", type=Path),
            _arg("output", type=Path),
            _arg("--to", required=True, help=f"output format: {', '.join(FORMATS)}"),
            _FROM,
            _OVERWRITE,
        ),
    ),
    Verb(
        "data build",
        cmd_data_build,
        "build a dataset: sources → generators → augmentation → filters → mix",
        "Run a declared data recipe (configs/data_*.yaml) into a dataset directory with train.jsonl, "
        "manifest.json and datacard.md. Rerunning resumes from the LLM cache.",
        "tuneforge.data.build_config:BuildConfig",
        "required",
    ),
    Verb(
        "data synth",
        cmd_data_synth,
        "run a build config's sources, generators and augmentation only",
        "Like data build, but with no filters and no mixing: every generated record lands in OUTPUT_DIR/train.jsonl.",
        "tuneforge.data.build_config:BuildConfig",
        "required",
    ),
    Verb(
        "data augment",
        cmd_data_augment,
        "add Mosaic composites, LLM paraphrases and token-level variants",
        "e.g. tuneforge data augment in.jsonl out.jsonl augment.mosaic=50 augment.token=100 augment.paraphrase=20 "
        "llm.model=smollm2-135m-instruct. The output holds the input records followed by the new ones.",
        args=(*_IN_OUT, _arg("overrides", nargs="*", help="augment.* and llm.* keys of data build configs")),
    ),
    Verb(
        "data filter",
        cmd_data_filter,
        "length/format checks, dedup, decontamination, LLM judge, IFD",
        "e.g. tuneforge data filter in.jsonl out.jsonl filters.judge=true filters.judge_threshold=7 filters.ifd=true "
        "filters.decontaminate=[]. Removed records go whole to OUT.removed.jsonl with the filter and reason.",
        args=(*_IN_OUT, _arg("overrides", nargs="*", help="filters.* and llm.* keys of data build configs")),
    ),
    Verb(
        "data dedup",
        cmd_data_dedup,
        "remove exact and MinHash near-duplicates",
        "Keeps the first of each group; removed records go to OUT.removed.jsonl.",
        args=(
            *_IN_OUT,
            _arg("--threshold", type=float, ge=0, le=1, default=0.7, help="Jaccard of word n-grams (default 0.7)"),
            _arg("--ngram", type=int, ge=1, default=5, help="shingle length in words (default 5)"),
            _arg("--part", default="instruction", help="instruction | response | all (default instruction)"),
        ),
    ),
    Verb(
        "data decontam",
        cmd_data_decontam,
        "remove records sharing an n-gram with evaluation sets",
        "Removed records go to OUT.removed.jsonl with the evaluation item and words.",
        args=(
            *_IN_OUT,
            _arg("--against", action="append", required=True, help="evaluation file or seed:test (repeatable)"),
            _arg("--ngram", type=int, default=13, help="n-gram length in words (default 13)"),
        ),
    ),
    Verb(
        "data mix",
        cmd_data_mix,
        "weighted mixing of several files into one",
        "e.g. tuneforge data mix out.jsonl manual.jsonl:3 synth.jsonl:1 --total 500",
        args=(
            _arg("output", type=Path),
            _arg("sources", nargs="+", help="PATH[:WEIGHT] (weights for all or none)"),
            _OVERWRITE,
            _arg("--total", type=int, ge=1, help="records in the mix (default α·N)"),
            _arg("--ratio", type=float, gt=0, default=1.0, help="α: M = α·N (default 1)"),
            _arg("--seed", type=int, ge=0, le=2**32 - 1, default=0),
        ),
    ),
    Verb(
        "data stats",
        cmd_data_stats,
        "counts, domains and token lengths of a data file",
        args=(
            _arg("file", type=Path),
            _arg(
                "--tokenizer",
                default=EMBEDDED_MODEL,
                help="model whose tokenizer counts tokens, or 'none' for words",
            ),
            _FROM,
            _JSON,
        ),
    ),
    Verb("eval", None, "generate once, score many times; compare runs"),
    Verb(
        "eval generate",
        cmd_eval_generate,
        "answer the test set with every model (resumable)",
        config=_EVAL,
        config_arg="optional",
    ),
    Verb(
        "eval run",
        cmd_eval_run,
        "generate (resuming) and score: metrics.json, report.html, report.md",
        config=_EVAL,
        config_arg="optional",
    ),
    Verb(
        "eval score",
        cmd_eval_score,
        "score stored generations again (no model is loaded)",
        config=_EVAL,
        config_arg="optional",
    ),
    Verb(
        "eval compare",
        cmd_eval_compare,
        "paired deltas with CIs and p-values between two runs",
        "tuneforge eval compare RUN_A[:MODEL] RUN_B[:MODEL] — e.g. RUN:base RUN:tuned within one run",
        args=(_arg("run_a"), _arg("run_b"), _bootstrap("bootstrap resamples for the paired CIs"), _JSON),
    ),
    Verb(
        "eval bench",
        cmd_eval_bench,
        "standard benchmarks through lm-evaluation-harness, with 95% CIs",
        "tuneforge eval bench MODEL --tasks T1,T2 — MODEL: a name, .gguf, run or adapter directory. Any lm-eval "
        "task; tuneforge_domains_gen and tuneforge_domains_mc ship with tuneforge and run offline. Results go to "
        "OUT/metrics.json under 'bench' (a run directory's own by default) and OUT/bench/<task>.jsonl.",
        args=(
            _arg("model", help="model name / .gguf / run directory / adapter directory"),
            _arg("--tasks", default="tuneforge_domains_gen,tuneforge_domains_mc", help="comma-separated task names"),
            _arg("--out", type=Path, help="output directory (default: the run directory, else runs/bench-MODEL)"),
            _arg("--label", default="", help="name of the results (default: tuned for a run, else MODEL)"),
            _arg("--limit", type=int, ge=1, help="first N examples of each task (default: all)"),
            _arg("--include", action="append", help="a folder of your own lm-eval task YAML files (repeatable)"),
            _arg("--batch-size", type=int, ge=1, default=8),
            _bootstrap("lm-eval's bootstrap iterations for corpus metrics"),
            _arg("--no-chat-template", action="store_true", help="prompt without the chat template (base models)"),
            _arg("--dtype", default="auto"),
            _arg("--device", default="auto"),
        ),
    ),
    Verb("safety", None, "adversarial safety suite: rates with CIs, detector accuracy"),
    Verb(
        "safety run",
        cmd_safety_run,
        "answer the suite's test half and report the five safety rates",
        "Misinformation, unsafe omissions, proper refusals, injection resistance and over-refusal, per domain with "
        "95% CIs; compare models with tuneforge eval compare RUN:a RUN:b.",
        "tuneforge.safety.run:SafetyRunConfig",
        "optional",
    ),
    Verb(
        "safety calibrate",
        cmd_safety_calibrate,
        "each detector's precision/recall (95% intervals) on the calibration set and the independent set of "
        "real answers",
        args=(
            _JSON,
            _arg(
                "--detector",
                default="classifier",
                help="classifier (the shipped one) | rules | a directory from safety train-detector",
            ),
        ),
    ),
    Verb(
        "safety train-detector",
        cmd_safety_train_detector,
        "train the learned refusal/caution detector on the labelled answers and score it on the test split",
        "Trains MiniLM + LoRA + a linear head on the calibration set and the independent set's dev split (the "
        "shipped classifier was made this way), then prints its precision/recall on the test split it never saw.",
        args=(
            _arg("--out", type=Path, required=True, help="directory for the classifier"),
            _arg("--epochs", type=int, ge=1, default=4),
            _arg("--seed", type=int, ge=0, le=2**32 - 1, default=0),
            _arg("--overwrite", action="store_true", help="replace a classifier already in --out"),
        ),
    ),
    Verb(
        "safety suite",
        cmd_safety_suite,
        "validate the suite, print its counts, optionally export a split as JSONL",
        args=(
            _arg("--suite", default=None, help="suite YAML (default: the shipped one)"),
            _arg("--split", default="test", choices=["test", "train", "all"]),
            _arg("--export", type=Path, help="write the split's items (TRL messages + labels) to this JSONL"),
            _arg("--overwrite", action="store_true", help="replace the --export file if it exists"),
        ),
    ),
    Verb(
        "multitask",
        None,
        "multi-task instruction tuning on SuperNI: methods × seen/unseen, gap, gradient conflict, phrasing",
    ),
    Verb(
        "multitask run",
        cmd_multitask_run,
        "run the experiment of a config (e.g. configs/superni_multitask.yaml)",
        config="tuneforge.multitask.run:MultiTaskConfig",
        config_arg="optional",
    ),
    Verb("reflect", None, "reflective teacher–student learning over documents (seed 001, Algorithm 1)"),
    Verb(
        "reflect run",
        cmd_reflect_run,
        "run the loop over a config's items (e.g. configs/reflect.yaml)",
        config="tuneforge.reflect.run:ReflectRunConfig",
        config_arg="optional",
    ),
    Verb(
        "env",
        cmd_env,
        "the machine as tuneforge sees it (paste it into bug reports)",
        "CPU model and ISA flags, cores and torch threads, GPUs, the precision `auto` picks here and why, measured "
        "fp32/bf16 matmul rates, library versions.",
        args=(
            _arg("--json", action="store_true", help="machine-readable output"),
            _arg("--no-measure", action="store_true", help="skip the matmul measurement (~1 s)"),
        ),
    ),
    Verb(
        "ui",
        cmd_ui,
        "a local web page to launch, follow, cancel and compare runs",
        "Serves http://127.0.0.1:7860/ over the runs in --root: their status, progress and ETA; each run's live "
        "loss and held-out curves, config and report; a form that launches a training run from a config with "
        "overrides (an ordinary CLI run in --root); cancel; the compare page of the models picked.",
        args=(
            _arg("--root", type=Path, default=Path("runs"), help="the folder of runs (launched runs go there too)"),
            _arg("--host", default="127.0.0.1", help="address to listen on; another than 127.0.0.1 needs --token"),
            _arg("--port", type=int, ge=1, le=65535, default=7860),
            _arg("--token", default=None, help="a secret every request must carry (required off 127.0.0.1)"),
        ),
    ),
    Verb(
        "report",
        cmd_report,
        "(re)write a run's report, or (report compare A B …) one page putting runs side by side",
        "tuneforge report RUN rewrites RUN/report.md and report.html from stored results. tuneforge report "
        "compare RUN_A[:MODEL] RUN_B[:MODEL] … writes compare.html/.md: every metric with its CI and the paired "
        "change against the first run, loss curves, per-domain charts, data-build counts, answers side by side.",
        args=(
            _arg("runs", nargs="+", help="RUN, or: compare RUN_A[:MODEL] RUN_B[:MODEL] [...]"),
            _arg("--out", type=Path, help="report compare: output directory (default runs/compare)"),
            _bootstrap("report compare: bootstrap resamples for paired CIs"),
        ),
    ),
)
_CONFIG_ARG = {
    "required": _arg("config", type=Path, help="YAML config"),
    "optional": _arg("config", nargs="?", help="YAML config; optional (key=value overrides alone work)"),
    "bundled": _arg("--config", type=Path, help="YAML config (default: the bundled one)"),
}


def build_parser() -> argparse.ArgumentParser:
    """The parser, derived from VERBS (config keys and their help come from the dataclasses, read only
    when a verb's --help is shown)."""
    p = _Parser(prog="tuneforge", description="Instruction tuning from data to evidence.")
    p.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    groups = {"": p.add_subparsers(dest="verb", required=True)}
    for v in VERBS:
        *parent, word = v.words.split()
        sp = groups[" ".join(parent)].add_parser(
            word,
            help=_help(v.help),
            description=v.description or v.help,  # not %-formatted by argparse
            epilog=_config_epilog(v.config) if v.config else None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if v.run is None:  # a group of verbs: `tuneforge data …`
            groups[v.words] = sp.add_subparsers(dest=f"{word}_verb", required=True)
            continue
        args = (
            v.args
            if not v.config_arg
            else (
                _CONFIG_ARG[v.config_arg],
                _arg("overrides", nargs="*", help="key=value overrides, e.g. train.steps=50"),
            )
        )
        for flags, kwargs in args:
            sp.add_argument(*flags, **kwargs)
        sp.set_defaults(fn=v.run)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # PEFT calls a transformers API deprecated in v5; the warning is not the user's to act on.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except TuneforgeError as exc:  # a usage mistake, or a numeric flag out of its range
        print(f"tuneforge: error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.verb != "report" and getattr(args, "data_verb", "") not in ("convert", "stats"):
            from tuneforge.hardware import set_threads

            set_threads()  # torch threads = physical cores unless OMP_NUM_THREADS / TUNEFORGE_THREADS say otherwise
        return args.fn(args)
    except TuneforgeError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"tuneforge: error: {redact(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # the user's disk or paths (full, read-only, a file where a folder goes)
        message = os_error_message(exc)
        if message is None:
            raise
        if args.debug:
            traceback.print_exc()
        print(f"tuneforge: error: {redact(message)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tuneforge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
