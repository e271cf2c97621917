"""`tuneforge export RUN_DIR [--merge]`: turn a training run into files other tools load.

- without `--merge`: the run's adapter directory as PEFT saved it, copied to `--out`
  (`PeftModel.from_pretrained(base, OUT)`), or the whole model for full / BitFit runs;
- with `--merge`: the base model from the run's resolved config, the LoRA / IA³ weights folded
  in (`merge_and_unload`), saved as safetensors with the tokenizer (and its chat template), so
  `AutoModelForCausalLM.from_pretrained(OUT)` needs neither PEFT nor tuneforge.
Prompt-learning adapters (prompt / prefix / p-tuning) add virtual tokens and cannot be merged.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tuneforge.errors import ConfigError
from tuneforge.files import check_finished, check_output_dir, staged_dir


def export_run(
    run_dir: str | Path, out: str | Path | None = None, merge: bool = False, dtype: str = "", overwrite: bool = False
) -> Path:
    """Export a run's trained weights to `out` (default RUN_DIR/merged or RUN_DIR/export).

    `out` must be new, empty, or an earlier export of this run (replaced only with `overwrite`); it
    is built beside its place and moved there only when complete."""
    run_dir = Path(run_dir)
    adapter_dir, config_path = check_trained_run(run_dir)
    out = check_output_dir(
        out or run_dir / ("merged" if merge else "export"),
        "export",
        inputs=[adapter_dir, config_path],
        source=str(run_dir.resolve()),
        replace=True,
        overwrite=overwrite,
    )
    is_peft = (adapter_dir / "adapter_config.json").exists()
    if not merge or not is_peft:  # nothing to fold in: the saved files are already loadable as they are
        with staged_dir(out, "export", str(run_dir.resolve())) as tmp:
            shutil.copytree(adapter_dir, tmp, dirs_exist_ok=True)
        return out
    with staged_dir(out, "export", str(run_dir.resolve())) as tmp:
        merge_run(run_dir, tmp, dtype)
    return out


def check_trained_run(run_dir: Path) -> tuple[Path, Path]:
    """The adapter folder and resolved config of a finished training run, or a ConfigError."""
    adapter_dir, config_path = run_dir / "adapter", run_dir / "config.yaml"
    for need in (adapter_dir, config_path):
        if not need.exists():
            raise ConfigError(
                f"{run_dir} is not a finished training run: {need.name} is missing. "
                "Pass the directory `tuneforge train` printed"
            )
    check_finished(run_dir)  # a half-trained model is not exported as if it were the result
    return adapter_dir, config_path


def trained_model_of(config_path: Path) -> tuple[str, str, str]:
    """(base model, dtype, objective) of a `tuneforge train` or `tuneforge demo` run's saved config (a
    demo trains SFT and its config has no objective section)."""
    from tuneforge.config import read_yaml
    from tuneforge.train.run_config import load_run_config

    data, _ = read_yaml(config_path, "run config")
    if (
        isinstance(data, dict)
        and "objective" not in data
        and "generation" in data
        and isinstance(data.get("model"), dict)
    ):
        return str(data["model"].get("name", "")), str(data["model"].get("dtype", "auto")), "sft"
    cfg = load_run_config(config_path)
    return cfg.model.name, cfg.model.dtype, cfg.objective.name


def merge_run(run_dir: Path, out: Path, dtype: str = "") -> None:
    """Fold the run's LoRA / IA³ weights into its base model and save the result to `out`."""

    adapter_dir = run_dir / "adapter"
    if not (adapter_dir / "adapter_config.json").exists():
        raise ConfigError(f"{run_dir} trained every weight (no adapter to merge): export it without --merge")
    peft_type = json.loads((adapter_dir / "adapter_config.json").read_text()).get("peft_type", "")
    if peft_type in ("PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING"):
        raise ConfigError(
            f"a {peft_type.lower()} adapter adds virtual tokens and cannot be merged into the "
            f"base weights. Export without --merge and load it with PeftModel.from_pretrained"
        )
    name, run_dtype, objective = trained_model_of(run_dir / "config.yaml")
    from peft import PeftModel
    from transformers import AutoTokenizer

    from tuneforge.models import load_model

    base, _ = load_model(name, dtype or run_dtype, "sdpa", "cpu")
    if objective == "reward":  # the adapter (and its trained head) sits on the scalar-head model
        from tuneforge.train.reward import reward_model_from_causal

        base = reward_model_from_causal(base, AutoTokenizer.from_pretrained(adapter_dir).pad_token_id)
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    merged.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(adapter_dir).save_pretrained(out)  # the run's tokenizer and chat template
