"""`tuneforge train`: any objective with any parameterisation, as a recipe that reads top to
bottom — resolve config → check every input → load model → fit (build the objective's loss and
batches, adapt, run the one loop, save) → summarise.

`objective.name` picks an entry of `tuneforge.train.objectives` (sft, dpo, ipo, simpo, orpo, kto,
reward, grpo, distill, domain_adaptation; `tuneforge train --help` lists each one's keys);
`tuneforge.train.objectives.fit` is the one fit path, shared with the demo."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from tuneforge.chat_template import check_chat_template, set_chat_template
from tuneforge.config import save_config
from tuneforge.evaluate.training_curves import plot_rl_curves
from tuneforge.files import check_output_dir, run_directory, write_text_atomic
from tuneforge.models import check_4bit_supported, check_attention, check_hub_model, load_model, resolve_model
from tuneforge.train.compute import describe as describe_compute
from tuneforge.train.config import resolve_auto
from tuneforge.train.context import load_training_mix
from tuneforge.train.curriculum import schedule
from tuneforge.train.loop import distributed_state
from tuneforge.train.memory import estimate_memory
from tuneforge.train.objectives import entry, fit
from tuneforge.train.resume import check_resumable, run_fingerprint
from tuneforge.train.run_config import TrainRunConfig


def train_model(cfg: TrainRunConfig) -> Path:
    """Train with the configured objective and parameterisation; returns the run directory."""
    state = distributed_state()
    name = [cfg.output_dir or f"runs/train-{time.strftime('%Y%m%d-%H%M%S')}"]
    if state.num_processes > 1:  # every process must write to the main process's run directory
        from accelerate.utils import broadcast_object_list

        broadcast_object_list(name)
    run_dir = Path(name[0])
    if state.is_main_process:
        check_output_dir(run_dir, "train")  # first: a folder of the user's is refused before any work
    qlora = cfg.adapter.method == "qlora"
    device = str(state.device) if cfg.model.device == "auto" else cfg.model.device  # this process's GPU, or cpu
    cfg = resolve_auto(cfg, device)
    # Everything the run reads is checked before anything is written: the data (conversations are
    # read once, here), the model spec, 4-bit support, and a previous run in the same directory.
    fingerprint = run_fingerprint(cfg)
    examples = load_training_mix(cfg.data, cfg.train.seed) if entry(cfg.objective.name).data == "examples" else None
    model_path = resolve_model(cfg.model.name)
    check_hub_model(cfg.model.name)
    check_chat_template(cfg.model.chat_template)
    if qlora:
        check_4bit_supported(device)
    check_attention(cfg.model.attn_implementation, device)
    if cfg.train.resume:
        check_resumable(run_dir, fingerprint)
    with run_directory(run_dir, "train", active=state.is_main_process):
        if state.is_main_process:
            save_config(cfg, run_dir / "config.yaml")
            write_text_atomic(run_dir / "run_fingerprint.json", json.dumps(fingerprint, indent=1))
        print(
            estimate_memory(
                model_path,
                "float32" if cfg.adapter.method == "full" else cfg.model.dtype,
                cfg.adapter,
                cfg.train.batch_size,
                cfg.train.max_length,
                device,
                cfg.train.precision,
                cfg.train.gradient_checkpointing,
            ).describe(),
            flush=True,
        )
        model, tok = load_model(
            cfg.model.name, cfg.model.dtype, cfg.model.attn_implementation, device, load_in_4bit=qlora
        )
        set_chat_template(tok, cfg.model.chat_template, cfg.model.eos_token)
        _, result, evals = fit(
            model, tok, cfg.objective, cfg.train, cfg.adapter, run_dir, cfg.data, cfg.model, device, examples
        )
        summary: dict[str, Any] = {
            "model": cfg.model.name,
            "adapter": cfg.adapter.method,
            "objective": cfg.objective.name,
            "steps": result.steps,
            "first_loss": result.losses[0],
            "final_loss": result.final_loss,
            "eval": evals,
            "trainable_params": result.trainable_params,
            "total_params": result.total_params,
            "trainable_ratio": result.trainable_params / result.total_params,
            "train_seconds": result.seconds,
            "eval_seconds": result.eval_seconds,  # of train_seconds: evaluation during training (train.eval_every)
            "tokens_per_s": result.tokens / max(result.seconds - result.eval_seconds, 1e-9),
            "evals": result.evals,
            "best_step": result.best_step,  # train.keep_best: the step saved as the adapter (adapter-last: the last)
            "stopped": result.stopped,  # train.early_stopping: when and why
            "compute": result.compute,  # N, D, C_train = 6ND, FLOP/s and share of the measured peak
        }
        if cfg.train.curriculum.enabled:  # the pacing the batches followed
            c = cfg.train.curriculum
            summary["curriculum"] = {"order": c.order, "pacing": c.pacing, "schedule": schedule(c, cfg.train.steps)}
        if cfg.train.active.enabled:
            summary["active"] = {**dataclasses.asdict(cfg.train.active), "selection": "active_selection.jsonl"}
        if not state.is_main_process:
            return run_dir
        write_text_atomic(run_dir / "train_summary.json", json.dumps(summary, indent=2))
        if _logs_rewards(run_dir / "train_log.jsonl"):  # online RL: reward, KL and length per step
            reward = getattr(cfg.objective, "reward", "")
            plot_rl_curves(
                run_dir / "train_log.jsonl", run_dir / "rl_curves.png", f"{cfg.objective.name.upper()}, reward {reward}"
            )
        print(
            f"Trained {result.trainable_params:,} of {result.total_params:,} parameters "
            f"({100 * summary['trainable_ratio']:.2f}%); loss {result.losses[0]:.3f} → {result.final_loss:.3f}. "
            f"Run: {run_dir}\nCompute: {describe_compute(result.compute)}",
            flush=True,
        )
        return run_dir


def _logs_rewards(log: Path) -> bool:
    return log.exists() and any('"reward_mean"' in line for line in log.read_text(encoding="utf-8").splitlines())
