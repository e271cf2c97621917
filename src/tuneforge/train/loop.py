"""THE training loop. Every method (SFT, and later DPO, distillation, multi-task) is an
`Objective` — a summed loss plus the count that normalises it — and every parameterisation
(full, LoRA, …) is a model transform applied before this loop.

Gradient accumulation is normalised over the whole window: the loop first draws the k
micro-batches of an optimizer step, counts their target units N (summed over processes), and
back-propagates loss_sum_i · world_size / N for each, so k micro-batches give exactly the gradient
of one batch k times as large (DDP averages over processes, hence the world_size factor).
Runs on `accelerate.Accelerator`, so `accelerate launch` / torchrun add DDP, and an FSDP accelerate
config shards the model (`sharding.py`: accelerate shards it on GPUs, tuneforge with the same torch
`fully_shard` on CPU). Gradients are clipped on the prepared (possibly sharded) parameters, and every
process takes part in a checkpoint, which gathers the sharded state.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from tuneforge.config import SEED
from tuneforge.errors import ConfigError, DataError, suggest
from tuneforge.hardware import announce_precision, distributed_state, resolve_precision  # noqa: F401 (re-exported)
from tuneforge.tokenisation import MASKS, REASONING
from tuneforge.train.active import ActiveConfig
from tuneforge.train.best import EarlyStopping, EvalWatch, save_best
from tuneforge.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from tuneforge.train.compile import compile_blocks, uncompile_blocks
from tuneforge.train.compute import compute_accounting
from tuneforge.train.curriculum import CurriculumConfig
from tuneforge.train.sharding import fsdp_requested, shard_model, trainable_state
from tuneforge.train.trackers import check_trackers, open_trackers

SCHEDULES = ("cosine", "linear", "constant")
PRECISIONS = ("auto", "bf16", "fp32")


@dataclass
class TrainConfig:
    steps: int = field(default=200, metadata={"help": "optimizer steps", "ge": 1})
    batch_size: int = field(default=4, metadata={"help": "examples per micro-batch (per process)", "ge": 1})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimizer step", "ge": 1})
    lr: float = field(default=2e-4, metadata={"help": "peak learning rate", "gt": 0})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay", "ge": 0})
    warmup_ratio: float = field(default=0.05, metadata={"help": "share of steps spent warming up", "ge": 0, "lt": 1})
    schedule: str = field(default="cosine", metadata={"help": "cosine | linear | constant"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping (0 = off)", "ge": 0})
    max_length: int = field(default=512, metadata={"help": "tokens per example (right-truncated)", "ge": 1})
    mask: str = field(default="assistant", metadata={"help": "targets: assistant | last | all"})
    reasoning: str = field(
        default="train",
        metadata={"help": "an assistant's reasoning trace: train (a target) | mask (context only) | drop (left out)"},
    )
    packing: bool = field(
        default=False, metadata={"help": "pack examples into rows of max_length tokens (batch_size then counts rows)"}
    )
    precision: str = field(
        default="auto",
        metadata={"help": "auto (bf16 where the hardware runs it natively, else fp32) | bf16 (autocast) | fp32"},
    )
    compile: bool = field(
        default=False,
        metadata={
            "help": "torch.compile each transformer block (faster steps after a one-off compile of ~1-2 min on CPU)"
        },
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata={
            "help": "recompute each block's activations in the backward pass instead of storing them: "
            "less memory, ~30% more compute (what lets a 7B model train on one GPU)"
        },
    )
    seed: int = field(default=0, metadata={"help": "data order and initialisation seed", **SEED})
    log_every: int = field(default=10, metadata={"help": "log a metrics row every N steps", "ge": 1})
    checkpoint_every: int = field(
        default=0, metadata={"help": "save a resumable checkpoint every N steps (0 = off)", "ge": 0}
    )
    resume: bool = field(default=True, metadata={"help": "continue from the run's latest checkpoint if there is one"})
    eval_every: int = field(
        default=0,
        metadata={
            "help": "measure the held-out loss (with its 95% CI) every N steps and at the end (0 = only before and after)",
            "ge": 0,
        },
    )
    early_stopping: EarlyStopping = field(default_factory=EarlyStopping)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    active: ActiveConfig = field(default_factory=ActiveConfig)
    keep_best: int = field(
        default=0,
        metadata={
            "help": "keep the K best evaluated checkpoints by early_stopping.metric; the run's adapter is then the best "
            "one and adapter-last the last (0 = save the last)",
            "ge": 0,
        },
    )
    report_to: list[str] = field(
        default_factory=list,
        metadata={
            "help": "also log metrics to: tensorboard, mlflow, wandb ([] = only train_log.jsonl; nothing leaves the machine)"
        },
    )

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ConfigError(
                f"schedule '{self.schedule}' unknown.{suggest(self.schedule, SCHEDULES)} "
                f"Use one of {', '.join(SCHEDULES)}"
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"train.precision '{self.precision}' unknown.{suggest(self.precision, PRECISIONS)} "
                f"Use one of {', '.join(PRECISIONS)}"
            )
        for key, value, allowed in (("mask", self.mask, MASKS), ("reasoning", self.reasoning, REASONING)):
            if value not in allowed:
                raise ConfigError(
                    f"train.{key} '{value}' unknown.{suggest(value, allowed)} Use one of {', '.join(allowed)}"
                )
        for name in ("steps", "batch_size", "grad_accum", "max_length", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ConfigError(f"train.lr must be > 0, got {self.lr} (a typical LoRA rate is 2e-4)")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"train.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if (self.keep_best or self.early_stopping.patience) and not self.eval_every:
            raise ConfigError(
                "train.keep_best and train.early_stopping.patience act on evaluations during training: "
                "set train.eval_every (e.g. train.eval_every=20)"
            )
        for name in ("weight_decay", "max_grad_norm", "checkpoint_every", "eval_every", "keep_best"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must be ≥ 0, got {getattr(self, name)}")
        check_trackers(self.report_to)
        if self.curriculum.enabled or self.active.enabled:
            which = "train.curriculum" if self.curriculum.enabled else "train.active"
            if self.curriculum.enabled and self.active.enabled:
                raise ConfigError("train.curriculum and train.active both choose the batches: turn one off")
            if self.packing:
                raise ConfigError(f"{which} draws single examples: set train.packing=false")
            if self.active.enabled and self.active.rounds > self.steps:
                raise ConfigError(
                    f"train.active.rounds={self.active.rounds} is more than train.steps={self.steps}: each round "
                    "needs a step to train"
                )
            if self.active.enabled and self.checkpoint_every:
                raise ConfigError(
                    "train.active selects examples with the live weights, which a checkpoint cannot replay: "
                    "set train.checkpoint_every=0"
                )


@dataclass
class Objective:
    """A training objective: `loss(model, batch)` returns a summed loss; `count(batch)` the units
    (target tokens for SFT) that the loop divides by across the accumulation window."""

    name: str
    loss: Callable[[torch.nn.Module, dict], torch.Tensor]
    count: Callable[[dict], int]
    # Optional: `backward(model, batch, scale) -> float` computes and accumulates the gradient itself
    # (multi-task gradient surgery: per-task gradients, projected, then summed into .grad) instead
    # of backward(loss · scale); it returns the scaled loss value. `stats()` adds per-step metrics
    # (e.g. the gradient conflict score) to the log row.
    backward: Callable[[torch.nn.Module, dict, float], float] | None = None
    stats: Callable[[], dict] | None = None
    # Optional: `item_loss(model, batch) -> (sums (B,), units (B,))` per example, for held-out losses
    # with a bootstrap CI over examples (`heldout_loss`).
    item_loss: Callable[[torch.nn.Module, dict], tuple[torch.Tensor, torch.Tensor]] | None = None


@dataclass
class ObjectiveSetup:
    """What an objective brings to the one loop: its loss, its batch stream, and how to evaluate a
    model before and after training (`before` None = not measured). Each objective module exports a
    builder `build(ctx) -> ObjectiveSetup`; `tuneforge.train.objectives` lists them by name and its
    `fit` runs every one the same way."""

    objective: Objective
    batches: Iterator[dict]
    evaluate: Callable[[Any], dict]
    before: dict | None
    # the model to adapt and train in place of the loaded causal LM, when the objective changes the
    # architecture (a reward model: the same transformer with a scalar head)
    model: Any = None
    # (before, after) → the run's `eval` summary; None = {"base": before, "tuned": after}
    summarise: Callable[[Any, dict], dict] | None = None


@dataclass
class TrainResult:
    """`tokens` and `seconds` cover this call (not steps restored from a checkpoint)."""

    steps: int
    losses: list[float]
    tokens: int
    seconds: float
    trainable_params: int
    total_params: int
    eval_seconds: float = 0.0  # of `seconds`, the time spent evaluating during training
    evals: list[dict] = field(default_factory=list)  # every evaluation during training: step, metric, CI
    best_step: int | None = None  # with train.keep_best: the step whose weights the run keeps
    stopped: dict | None = None  # early stopping: {"step", "reason"}
    compute: dict = field(default_factory=dict)  # train/compute.py: N, D, C_train = 6ND, FLOP/s, share of peak

    @property
    def final_loss(self) -> float:
        tail = self.losses[-max(1, len(self.losses) // 10) :]
        return sum(tail) / len(tail)


def make_accelerator():
    """The process's Accelerator. Mixed precision is not set here: accelerate keeps one global
    state per process, so the loop applies bf16 autocast itself (as `tuneforge.hardware` resolves
    `train.precision`) and every run may choose."""
    from accelerate import Accelerator

    return Accelerator(cpu=not torch.cuda.is_available())


def _autocast(device: torch.device, precision: str):
    """bf16 autocast when `precision` is (or `auto` resolves to) bf16 on this device."""
    precision = resolve_precision(precision, device.type)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def _base(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def enable_gradient_checkpointing(model) -> None:
    """Activation checkpointing of every transformer block (transformers' own, non-reentrant: the
    same gradients, no need for inputs that require grad, so LoRA and compiled blocks work as they
    are). Training batches already run without the KV cache (`model_inputs`)."""
    base = _base(model)
    if not getattr(base, "supports_gradient_checkpointing", False):
        raise ConfigError(f"train.gradient_checkpointing: {type(base).__name__} does not support it. Set it to false")
    base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def train_loop(
    model: torch.nn.Module,
    batches: Iterator[dict],
    objective: Objective,
    cfg: TrainConfig,
    log_path: str | Path | None = None,
    accelerator=None,
    checkpoint_dir: str | Path | None = None,
    evaluate: Callable[[torch.nn.Module], dict] | None = None,
) -> TrainResult:
    """Run `cfg.steps` optimizer steps of `objective` over `batches` (an endless, deterministic
    iterator). With `checkpoint_dir`, save every `cfg.checkpoint_every` steps and, when
    `cfg.resume`, continue from the latest checkpoint: the same batches, in the same order.
    `evaluate(model) -> {"eval_loss", "eval_loss_lo", "eval_loss_hi"}` runs every `cfg.eval_every`
    steps and at the last; `cfg.early_stopping` and `cfg.keep_best` act on it (`train/best.py`)."""
    from transformers import get_scheduler

    accelerator = accelerator or make_accelerator()
    precision = resolve_precision(cfg.precision, accelerator.device.type)
    if accelerator.is_local_main_process:
        announce_precision(accelerator.device.type)
        print(
            f"tuneforge: training in {precision} on {accelerator.device.type} (train.precision={cfg.precision})",
            flush=True,
        )
    torch.manual_seed(cfg.seed)
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    if cfg.compile:
        compile_blocks(model)
    from accelerate.utils import DistributedType

    # accelerate shards under FSDP on accelerators; on CPU it falls back to DDP, so shard here
    # (one process has nothing to shard across)
    self_shard = (
        fsdp_requested() and accelerator.distributed_type != DistributedType.FSDP and accelerator.num_processes > 1
    )
    if self_shard:
        groups = shard_model(model)
        if accelerator.is_local_main_process:
            print(
                f"tuneforge: FSDP (torch fully_shard, {groups} shard groups) over {accelerator.num_processes} "
                f"{accelerator.device.type} processes",
                flush=True,
            )
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("the model has no trainable parameter. Check adapter.method")
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = get_scheduler(
        cfg.schedule if cfg.schedule != "constant" else "constant_with_warmup",
        optimizer,
        num_warmup_steps=int(cfg.warmup_ratio * cfg.steps),
        num_training_steps=cfg.steps,
    )
    # The scheduler is not prepared: accelerate would step it once per process per optimizer step,
    # running the schedule N times too fast on N processes. `cfg.steps` are global optimizer steps.
    if self_shard:
        optimizer = accelerator.prepare(optimizer)
    else:
        model, optimizer = accelerator.prepare(model, optimizer)
    # what the optimizer now holds: under accelerate's FSDP the parameters were replaced by shards
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    losses, tokens, first = [], 0, 0
    seen = {"tokens": 0, "targets": 0}  # every process's, since step 0 (a resume restores them): D for compute
    if cfg.eval_every and evaluate is None:
        raise ConfigError(f"train.eval_every: objective '{objective.name}' has no held-out loss to evaluate")
    watch = (
        # only the main process deletes evicted best folders (it alone writes them)
        EvalWatch(cfg.early_stopping, cfg.keep_best,
                  Path(checkpoint_dir) if checkpoint_dir and accelerator.is_main_process else None,
                  defer=bool(cfg.checkpoint_every))
        if cfg.eval_every and evaluate is not None
        else None
    )  # fmt: skip
    eval_seconds, stopped = 0.0, None
    latest = latest_checkpoint(Path(checkpoint_dir)) if checkpoint_dir and cfg.resume else None
    if watch is not None and cfg.keep_best and checkpoint_dir is None:
        raise ConfigError("train.keep_best needs a run directory to keep the checkpoints in")
    if latest is not None:
        counters = load_checkpoint(latest, accelerator.unwrap_model(model), optimizer, scheduler)
        first, losses, tokens = counters["step"], counters["losses"], counters["tokens"]
        seen = counters.get("seen", {"tokens": tokens * accelerator.num_processes, "targets": 0})
        eval_seconds = counters.get("eval_seconds", 0.0)
        if watch is not None:
            watch.restore(counters.get("watch"))
        for _ in range(first * cfg.grad_accum):  # replay the deterministic stream up to the checkpoint
            next(batches)
        print(f"tuneforge: resumed from {latest} at step {first}", flush=True)
    log = _open_log(Path(log_path), first) if log_path and accelerator.is_main_process else None
    trackers = open_trackers(cfg.report_to, Path(log_path).parent, asdict(cfg)) if log and log_path else []
    start, tokens_before, eval_seconds_here, seen_before = time.time(), tokens, 0.0, seen["tokens"]
    bar = tqdm(
        range(first, cfg.steps),
        desc=f"train {objective.name}",
        unit="step",
        initial=first,
        total=cfg.steps,
        disable=not accelerator.is_local_main_process,
    )
    try:
        for step in bar:
            micro = [next(batches) for _ in range(cfg.grad_accum)]
            local = [sum(objective.count(b) for b in micro), sum(int(b["num_tokens"]) for b in micro)]
            total, step_tokens = (
                int(x) for x in accelerator.reduce(torch.tensor(local, device=accelerator.device), "sum")
            )
            if total == 0:
                raise DataError(
                    f"optimizer step {step + 1} has no target units in its "
                    f"{cfg.grad_accum} micro-batch(es): the masks leave nothing to learn. "
                    "Check train.mask and the data's assistant turns"
                )
            step_loss = 0.0
            for i, b in enumerate(micro):
                b = {k: v.to(accelerator.device) for k, v in b.items()}
                sync = accelerator.no_sync(model) if i < len(micro) - 1 else nullcontext()
                if objective.backward is not None:
                    with _autocast(accelerator.device, precision):
                        step_loss += (
                            objective.backward(model, b, accelerator.num_processes / total) / accelerator.num_processes
                        )
                    continue
                with sync, _autocast(accelerator.device, precision):
                    loss = objective.loss(model, b) * accelerator.num_processes / total
                accelerator.backward(loss)
                step_loss += loss.item() / accelerator.num_processes
            step_loss = float(accelerator.reduce(torch.tensor(step_loss, device=accelerator.device), "sum"))
            if not math.isfinite(step_loss):  # checked before the update, so no weight is spoiled
                raise FloatingPointError(_non_finite_message(step_loss, step + 1, cfg, precision))
            grad_norm = accelerator.clip_grad_norm_(params, cfg.max_grad_norm) if cfg.max_grad_norm > 0 else None
            if grad_norm is not None and hasattr(grad_norm, "full_tensor"):  # a DTensor under FSDP
                grad_norm = grad_norm.full_tensor()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(step_loss)
            tokens += sum(int(b["num_tokens"]) for b in micro)
            seen["tokens"] += step_tokens
            seen["targets"] += total
            elapsed = time.time() - start
            rate = (tokens - tokens_before) / max(elapsed - eval_seconds_here, 1e-9)  # training time only
            bar.set_postfix(loss=f"{step_loss:.3f}", tok_s=f"{rate:.0f}")
            if log and ((step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps):
                window = losses[-((step % cfg.log_every) + 1) :]  # steps since the previous row
                row = {
                    "step": step + 1,
                    "loss": sum(window) / len(window),
                    "lr": scheduler.get_last_lr()[0],
                    "grad_norm": float(grad_norm) if grad_norm is not None else None,
                    "targets": total,
                    "tokens_seen": tokens,
                    "tokens_per_s": rate,
                    "elapsed_s": elapsed,
                    "eval_s": eval_seconds,  # of elapsed_s (and of earlier sessions, when resumed)
                    **(objective.stats() if objective.stats else {}),
                }
                log.write(json.dumps(row) + "\n")
                log.flush()
                for tracker in trackers:
                    tracker.log(row, step + 1)
            if watch and evaluate and ((step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps):
                t0 = time.time()
                row = evaluate(accelerator.unwrap_model(model))
                keep, stop = watch.observe(step + 1, row)
                if keep and checkpoint_dir:  # a collective under FSDP: every process gathers, the main one writes
                    tensors, _ = trainable_state(accelerator.unwrap_model(model))
                    save_best(Path(checkpoint_dir), step + 1, tensors, accelerator.is_main_process)
                spent = time.time() - t0
                eval_seconds += spent
                eval_seconds_here += spent
                model.train()
                if stop:
                    stopped = {
                        "step": step + 1,
                        "reason": f"{cfg.early_stopping.metric} did not improve by more than "
                        f"{cfg.early_stopping.min_delta} for {cfg.early_stopping.patience} evaluations "
                        f"(best {watch.best_value:.4f})",
                    }
                if log:
                    eval_row = {"step": step + 1, **row, "eval_s": spent, "best_step": watch.best_step}
                    log.write(json.dumps(eval_row) + "\n")
                    log.flush()
                    for tracker in trackers:
                        tracker.log({k: v for k, v in eval_row.items() if v is not None}, step + 1)
            if checkpoint_dir and cfg.checkpoint_every and ((step + 1) % cfg.checkpoint_every == 0 or stopped):
                counters = {"step": step + 1, "losses": losses, "tokens": tokens, "eval_seconds": eval_seconds,
                            "seen": seen}  # fmt: skip
                if watch is not None:
                    counters["watch"] = watch.state()
                save_checkpoint(
                    Path(checkpoint_dir),
                    accelerator.unwrap_model(model),
                    optimizer,
                    scheduler,
                    counters,
                    write=accelerator.is_main_process,
                )
                if watch is not None:
                    watch.checkpointed()
            if stopped:
                if accelerator.is_local_main_process:
                    print(f"tuneforge: early stopping at step {step + 1}: {stopped['reason']}", flush=True)
                break
    finally:
        if log:
            log.close()
        for tracker in trackers:
            tracker.close()
        if cfg.compile:
            uncompile_blocks(accelerator.unwrap_model(model))
    model = accelerator.unwrap_model(model)
    if cfg.gradient_checkpointing:
        _base(model).gradient_checkpointing_disable()
    model.eval()
    trainable, total_params = count_parameters(model)
    seconds = time.time() - start
    compute = compute_accounting(
        model, seen["tokens"], seen["targets"], seen["tokens"] - seen_before, seconds - eval_seconds_here,
        accelerator.device.type, precision,
        cfg.gradient_checkpointing, accelerator.num_processes,
    )  # fmt: skip
    return TrainResult(
        stopped["step"] if stopped else cfg.steps,
        losses,
        tokens - tokens_before,
        seconds,
        trainable,
        total_params,
        eval_seconds_here,
        watch.history if watch else [],
        watch.best_step if watch and cfg.keep_best else None,
        stopped,
        compute,
    )


def _non_finite_message(loss: float, step: int, cfg: TrainConfig, precision: str) -> str:
    fixes = ["lower train.lr"] + (["use train.precision=fp32"] if precision == "bf16" else [])
    if cfg.compile:
        # seen with torch 2.13: inductor's AVX2 kernels for SDPA attention with dynamic shapes and a
        # LoRA block give NaN where eager gives finite values (the bundled configs use eager attention)
        fixes.insert(
            0,
            "set train.compile=false, or model.attn_implementation=eager (torch.compile's CPU "
            "kernels gave NaN with SDPA attention on AVX2-only CPUs)",
        )
    return (
        f"loss became {loss} at step {step} (precision {precision}, train.compile={cfg.compile}). "
        f"Try: {'; '.join(fixes)}"
    )


def _open_log(path: Path, first_step: int):
    """Open the metrics log for appending after keeping only rows up to `first_step` (0 for a fresh
    run): rows a crashed run wrote after its last checkpoint would otherwise appear twice."""
    kept = []
    if first_step and path.exists():
        kept = [
            line
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= first_step
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    log = open(path, "w", encoding="utf-8")
    log.writelines(line + "\n" for line in kept)
    return log


@torch.no_grad()
def evaluate_loss(model, batches: list[dict], objective: Objective, precision: str = "auto") -> float:
    """Mean loss per unit (per target token for SFT) over fixed batches."""
    was_training = model.training
    model.eval()
    total, units = 0.0, 0
    device = next(model.parameters()).device
    for b in batches:
        b = {k: v.to(device) for k, v in b.items()}
        with _autocast(device, precision):
            total += float(objective.loss(model, b))
        units += objective.count(b)
    model.train(was_training)
    return total / max(units, 1)


@torch.no_grad()
def heldout_loss(model, batches: list[dict], objective: Objective, precision: str = "auto") -> dict:
    """Per-example loss sums and units over fixed batches: {"sums", "units"} (lists, one per
    example) and their ratio "loss" — the same number as `evaluate_loss`, with what a bootstrap
    over examples needs (`tuneforge.intervals.ratio_ci`)."""
    if objective.item_loss is None:
        raise ConfigError(f"objective '{objective.name}' has no per-example loss")
    was_training = model.training
    model.eval()
    sums, units = [], []
    device = next(model.parameters()).device
    for b in batches:
        b = {k: v.to(device) for k, v in b.items()}
        with _autocast(device, precision):
            s, u = objective.item_loss(model, b)
        sums += s.float().tolist()
        units += u.tolist()
    model.train(was_training)
    return {"loss": sum(sums) / max(sum(units), 1), "sums": sums, "units": units}


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())
