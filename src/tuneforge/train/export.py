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


def export_run(run_dir: str | Path, out: str | Path | None = None, merge: bool = False, dtype: str = "") -> Path:
    """Export a run's trained weights to `out` (default RUN_DIR/merged or RUN_DIR/export)."""
    from tuneforge.config import load_config
    from tuneforge.train.run import TrainRunConfig

    run_dir = Path(run_dir)
    adapter_dir, config_path = run_dir / "adapter", run_dir / "config.yaml"
    for need in (adapter_dir, config_path):
        if not need.exists():
            raise ConfigError(
                f"{run_dir} is not a finished training run: {need.name} is missing. "
                "Pass the directory `tuneforge train` printed"
            )
    out = Path(out) if out else run_dir / ("merged" if merge else "export")
    if out.resolve() == adapter_dir.resolve():
        raise ConfigError(f"--out {out} is the run's own adapter directory; choose another")
    is_peft = (adapter_dir / "adapter_config.json").exists()
    if not merge or not is_peft:  # nothing to fold in: the saved files are already loadable as they are
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(adapter_dir, out)
        return out
    peft_type = json.loads((adapter_dir / "adapter_config.json").read_text()).get("peft_type", "")
    if peft_type in ("PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING"):
        raise ConfigError(
            f"a {peft_type.lower()} adapter adds virtual tokens and cannot be merged into the "
            f"base weights. Export without --merge and load it with PeftModel.from_pretrained"
        )
    cfg = load_config(TrainRunConfig, config_path)
    from peft import PeftModel
    from transformers import AutoTokenizer

    from tuneforge.models import load_model

    base, _ = load_model(cfg.model.name, dtype or cfg.model.dtype, "sdpa", "cpu")
    if cfg.objective.name == "reward":  # the adapter (and its trained head) sits on the scalar-head model
        from tuneforge.train.reward import reward_model_from_causal

        base = reward_model_from_causal(base, AutoTokenizer.from_pretrained(adapter_dir).pad_token_id)
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    tmp = out.with_name(out.name + ".partial")  # never leave a half-written export behind
    if tmp.exists():
        shutil.rmtree(tmp)
    merged.save_pretrained(tmp, safe_serialization=True)
    AutoTokenizer.from_pretrained(adapter_dir).save_pretrained(tmp)  # the run's tokenizer and chat template
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out
