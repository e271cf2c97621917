"""tuneforge: instruction tuning from "a base model and a domain" to "a tuned model and evidence
that it is better and safe"."""

import logging as _logging

from tuneforge.config import load_config, save_config
from tuneforge.data.io import FORMATS, convert_file, detect_format, read_records, write_records
from tuneforge.data.seed import DOMAINS, load_examples, load_seed
from tuneforge.data.stats import dataset_stats
from tuneforge.errors import ConfigError, DataError, TuneforgeError, UnknownNameError
from tuneforge.records import EvalItem, Example, Generation, Message, PreferencePair

__version__ = "0.1.0"

# peft imports bitsandbytes whenever it is installed (tuneforge's dev and qlora extras), and on CPUs
# with AVX512-BF16 bitsandbytes then tries a hub kernel and logs "… Set trust_remote_code=True …" on
# every run, QLoRA or not. tuneforge never enables remote code; bitsandbytes' own CPU kernels serve
# QLoRA. Drop that one record — a warning telling users to run remote code is not theirs to act on.
_logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(lambda record: "kernels-community" not in record.msg)

__all__ = [
    "DOMAINS",
    "FORMATS",
    "ConfigError",
    "DataError",
    "EvalItem",
    "Example",
    "Generation",
    "Message",
    "PreferencePair",
    "TuneforgeError",
    "UnknownNameError",
    "convert_file",
    "dataset_stats",
    "detect_format",
    "load_config",
    "load_examples",
    "load_seed",
    "read_records",
    "save_config",
    "write_records",
]


def __getattr__(name):
    # Heavy (torch/transformers) entry points load on first use so `tuneforge --help` stays fast.
    lazy = {
        "load_model": "tuneforge.models",
        "load_encoder": "tuneforge.models",
        "tiny_model": "tuneforge.models",
        "tiny_tokenizer": "tuneforge.models",
        "run_demo": "tuneforge.demo",
        "DemoConfig": "tuneforge.demo",
        "generate_answers": "tuneforge.generation",
        "GenerationConfig": "tuneforge.generation",
        "train_loop": "tuneforge.train.loop",
        "TrainConfig": "tuneforge.train.loop",
        "train_model": "tuneforge.train.run",
        "TrainRunConfig": "tuneforge.train.run_config",
        "dpo_objective": "tuneforge.train.dpo",
        "distill_objective": "tuneforge.train.distill",
        "domain_adaptation_objective": "tuneforge.train.domain_adapt",
        "domain_adaptation_batches": "tuneforge.train.domain_adapt",
        "export_run": "tuneforge.train.export",
        "mix_datasets": "tuneforge.data.mix",
        "set_chat_template": "tuneforge.chat_template",
        "estimate_memory": "tuneforge.train.memory",
        "build_dataset": "tuneforge.data.run",
        "BuildConfig": "tuneforge.data.run",
        "deduplicate": "tuneforge.data.dedup",
        "decontaminate": "tuneforge.data.decontam",
        "self_instruct": "tuneforge.data.self_instruct",
        "evol_instruct": "tuneforge.data.evol_instruct",
        "ds2_instruct": "tuneforge.data.ds2",
        "distill": "tuneforge.data.teacher",
        "LocalLLM": "tuneforge.llm.local",
        "OpenAIChatLLM": "tuneforge.llm.openai_http",
        "CachedLLM": "tuneforge.llm.cache",
        "Sampling": "tuneforge.llm.client",
        "apply_adapter": "tuneforge.train.adapters",
        "AdapterConfig": "tuneforge.train.adapters",
        "score_generations": "tuneforge.evaluate.scoring",
        "write_report": "tuneforge.evaluate.report",
        "augment": "tuneforge.data.augment",
        "AugmentConfig": "tuneforge.data.augment",
        "judge_quality": "tuneforge.data.quality",
        "ifd_scores": "tuneforge.data.ifd",
        "select_by_ifd": "tuneforge.data.ifd",
        "synth": "tuneforge.data.file_steps",
        "filter_file": "tuneforge.data.file_steps",
        "dedup_file": "tuneforge.data.file_steps",
        "decontam_file": "tuneforge.data.file_steps",
        "mix_files": "tuneforge.data.file_steps",
        "augment_file": "tuneforge.data.file_steps",
        "run_eval": "tuneforge.evaluate.run",
        "eval_generate": "tuneforge.evaluate.run",
        "eval_score": "tuneforge.evaluate.run",
        "EvalRunConfig": "tuneforge.evaluate.run",
        "compare_runs": "tuneforge.evaluate.paired_deltas",
        "judge_single": "tuneforge.evaluate.judge",
        "judge_pairwise": "tuneforge.evaluate.judge",
        "correlate": "tuneforge.evaluate.correlation",
        "safety_run": "tuneforge.safety.run",
        "SafetyRunConfig": "tuneforge.safety.run",
        "load_suite": "tuneforge.safety.suite",
        "calibrate": "tuneforge.safety.calibration",
        "detector_examples": "tuneforge.safety.calibration",
        "train_refusal_classifier": "tuneforge.safety.refusal_classifier",
        "load_refusal_classifier": "tuneforge.safety.refusal_classifier",
        "refusal_verdicts": "tuneforge.safety.refusal_classifier",
        "safety_examples": "tuneforge.safety.training_data",
        "run_experiment": "tuneforge.multitask.run",
        "MultiTaskConfig": "tuneforge.multitask.run",
        "load_tasks": "tuneforge.multitask.superni",
        "pcgrad": "tuneforge.multitask.gradients",
        "conflict_stats": "tuneforge.multitask.gradients",
        "reflect_run": "tuneforge.reflect.run",
        "ReflectRunConfig": "tuneforge.reflect.run",
        "compress_model": "tuneforge.compress.run",
        "CompressRunConfig": "tuneforge.compress.run",
        "compare_variants": "tuneforge.compress.table",
        "CompressCompareConfig": "tuneforge.compress.table",
        "plan_from_scores": "tuneforge.compress.prune",
        "prune_model": "tuneforge.compress.prune",
        "quantize_model": "tuneforge.compress.quantize",
        "run_scaling": "tuneforge.scaling.run",
        "ScalingConfig": "tuneforge.scaling.run",
        "fit_law": "tuneforge.scaling.fit",
        "fit_with_ci": "tuneforge.scaling.fit",
        "compute_accounting": "tuneforge.train.compute",
        "idea_mcts": "tuneforge.data.idea_mcts",
        "reflect_items": "tuneforge.reflect.reflection",
        "TeacherAgent": "tuneforge.reflect.agents",
        "StudentAgent": "tuneforge.reflect.agents",
    }
    if name in lazy:
        import importlib

        return getattr(importlib.import_module(lazy[name]), name)
    raise AttributeError(f"module 'tuneforge' has no attribute {name!r}")
