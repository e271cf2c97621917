"""`tuneforge train`: any objective with any parameterisation, as a recipe that reads top to
bottom — resolve config → load model → build data → apply adapter → run the one loop → save.

`objective.name` picks the loss: `sft` (default), `dpo` (preference pairs), `distill` (KL to a
teacher mixed with cross-entropy) or `domain_adaptation` (L_general + α·L_domain + β·KL to the base).
`fit_sft` is the shared SFT core the demo uses too; `inspect_examples` shows what the loss sees."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneforge.chat_template import check_chat_template, check_end_of_turn, set_chat_template
from tuneforge.config import config_to_dict, save_config
from tuneforge.data.hub import HUB_PREFIX, hub_digest
from tuneforge.data.mix import mix_counts, mix_datasets, mix_report
from tuneforge.data.rules import references
from tuneforge.data.seed import load_examples, load_pairs, split_rows
from tuneforge.errors import ConfigError, read_text, suggest
from tuneforge.evaluate.bootstrap import mean_ci, paired_ratio_delta, paired_test, ratio_ci, wilson_interval
from tuneforge.evaluate.training_curves import plot_rl_curves
from tuneforge.files import check_output_dir, run_directory, write_text_atomic
from tuneforge.hardware import check_device_dtype, resolve_dtype, resolve_precision
from tuneforge.models import (
    EMBEDDED_MODEL,
    check_4bit_supported,
    check_attention,
    check_hub_model,
    load_model,
    resolve_model,
)
from tuneforge.records import Example
from tuneforge.tokenisation import (
    batch_stream,
    collate,
    count_targets,
    count_targets_per_row,
    encode_examples,
    target_spans,
)
from tuneforge.train.adapters import AdapterConfig, apply_adapter, save_trained
from tuneforge.train.distill import distill_setup
from tuneforge.train.domain_adapt import domain_adaptation_setup
from tuneforge.train.dpo import PAIR_LOSSES, REFERENCE_FREE, dpo_setup
from tuneforge.train.grpo import GRPOSettings, grpo_setup, make_reward_fn
from tuneforge.train.kto import kto_setup
from tuneforge.train.loop import (
    Objective,
    ObjectiveSetup,
    TrainConfig,
    TrainResult,
    distributed_state,
    heldout_loss,
    train_loop,
)
from tuneforge.train.memory import estimate_memory
from tuneforge.train.reward import reward_setup
from tuneforge.train.sft import sft_loss
from tuneforge.train.sharding import full_state_dict

SFT = Objective(
    "sft", sft_loss, count_targets, item_loss=lambda m, b: (sft_loss(m, b, per_row=True), count_targets_per_row(b))
)
OBJECTIVES = ("sft", "dpo", "ipo", "simpo", "orpo", "kto", "reward", "grpo", "distill", "domain_adaptation")


@dataclass
class ModelConfig:
    name: str = field(default=EMBEDDED_MODEL, metadata={"help": "hub id, local dir, .gguf, or the embedded default"})
    dtype: str = field(
        default="auto",
        metadata={
            "help": "parameter dtype of the (frozen) base: auto (bfloat16 where "
            "the hardware runs it natively, else float32) | bfloat16 | "
            "float32 | float16"
        },
    )
    attn_implementation: str = field(default="sdpa", metadata={"help": "sdpa | eager | flash_attention_2"})
    device: str = field(default="auto", metadata={"help": "auto (GPU if visible) | cpu | cuda | cuda:N"})
    chat_template: str = field(
        default="",
        metadata={"help": "'' = the tokenizer's own | chatml | llama3 | zephyr | alpaca | path/to/template.jinja"},
    )
    eos_token: str = field(default="", metadata={"help": "token generation stops on ('' = the tokenizer's EOS)"})

    def __post_init__(self):
        check_device_dtype(self.device, self.dtype, "model")


@dataclass
class SFTDataConfig:
    train: str | list[str] = field(
        default="seed:train", metadata={"help": "training file (any format), seed:train, or a list of them to mix"}
    )
    weights: list[float] = field(
        default_factory=list,
        metadata={"help": "mixing weights, one per train source ([] = concatenate as they are)", "ge": 0},
    )
    eval: str = field(default="seed:test", metadata={"help": "held-out file for eval loss ('' = none)"})


@dataclass
class ObjectiveConfig:
    name: str = field(
        default="sft",
        metadata={
            "help": "sft | dpo | ipo | simpo | orpo | kto (preference pairs) | reward (a reward model on pairs) | "
            "grpo (online RL on prompts) | distill | domain_adaptation"
        },
    )
    beta: float = field(
        default=0.1,
        metadata={
            "help": "dpo/ipo: β, the strength of the KL leash to the reference; simpo: β, the reward scale "
            "(≈2); orpo: λ, the weight of the odds-ratio term; grpo: β, the KL penalty to the reference "
            "(0 = none; the pair losses and kto need β > 0)",
            "ge": 0,
        },
    )
    gamma: float = field(default=0.5, metadata={"help": "simpo: γ, the target reward margin", "ge": 0})
    desirable_weight: float = field(default=1.0, metadata={"help": "kto: λ_D, weight of desirable answers", "gt": 0})
    undesirable_weight: float = field(
        default=1.0, metadata={"help": "kto: λ_U, weight of undesirable answers", "gt": 0}
    )
    label_smoothing: float = field(
        default=0.0, metadata={"help": "dpo: ε, share of preference labels assumed flipped", "ge": 0, "lt": 0.5}
    )
    reward: str = field(
        default="rule:tuneforge.data.rules.exact_match",
        metadata={
            "help": "grpo: rule:DOTTED.PATH (rule(answer, record)) | model:REWARD_RUN_DIR | "
            "judge:local:MODEL or judge:openai:MODEL@URL (1-10 rating)"
        },
    )
    group_size: int = field(default=4, metadata={"help": "grpo: G, completions sampled per prompt", "ge": 2})
    completion_tokens: int = field(default=32, metadata={"help": "grpo: new tokens per completion", "ge": 1})
    sample_temperature: float = field(default=1.0, metadata={"help": "grpo: sampling temperature", "gt": 0})
    clip_epsilon: float = field(default=0.2, metadata={"help": "grpo: ε, the policy-ratio clip", "gt": 0, "lt": 1})
    iterations: int = field(default=1, metadata={"help": "grpo: μ, optimizer steps per sampled batch", "ge": 1})
    teacher: str = field(default="", metadata={"help": "distill: teacher model (same tokenizer as model.name)"})
    temperature: float = field(default=2.0, metadata={"help": "distill: softmax temperature τ", "gt": 0})
    kl_weight: float = field(default=0.5, metadata={"help": "distill: α in (1-α)·CE + α·τ²·KL", "ge": 0, "le": 1})
    general: str = field(default="seed:train", metadata={"help": "domain_adaptation: general instruction data"})
    domain_weight: float = field(default=1.0, metadata={"help": "domain_adaptation: α on L_domain", "ge": 0})
    consistency_weight: float = field(
        default=0.1, metadata={"help": "domain_adaptation: β on KL(base ‖ model) over general data", "ge": 0}
    )

    def __post_init__(self):
        if self.name not in OBJECTIVES:
            raise ConfigError(
                f"objective.name '{self.name}' unknown.{suggest(self.name, OBJECTIVES)} "
                f"Use one of {', '.join(OBJECTIVES)}"
            )
        if self.name in ("dpo", "ipo", "simpo", "kto") and not self.beta > 0:
            raise ConfigError(
                f"objective.beta must be > 0 for {self.name}, got {self.beta} (its loss scales by β; 0.1 is typical)"
            )
        if self.name == "grpo" and (self.group_size < 2 or self.iterations < 1 or self.completion_tokens < 1):
            raise ConfigError(
                "objective.group_size must be ≥ 2 (advantages compare completions of one prompt), "
                "objective.iterations and objective.completion_tokens ≥ 1"
            )
        if self.name == "distill" and not self.teacher:
            raise ConfigError("objective.name=distill needs objective.teacher (a model sharing the tokenizer)")


@dataclass
class TrainRunConfig:
    output_dir: str = field(default="", metadata={"help": "run directory ('' = runs/train-<time>)"})
    model: ModelConfig = field(default_factory=ModelConfig)
    data: SFTDataConfig = field(default_factory=SFTDataConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def fit_sft(
    model,
    tok,
    train: list[Example],
    adapter: AdapterConfig,
    cfg: TrainConfig,
    run_dir: Path,
    eval_examples: Sequence[Example] = (),
) -> tuple[object, TrainResult, dict]:
    """Encode, adapt, train, save to run_dir/adapter; returns (model, result, eval losses)."""
    check_end_of_turn(tok, model)
    enc_train, dropped = encode_examples(train, tok, cfg.max_length, cfg.mask)
    if dropped:
        print(f"      {dropped} examples dropped: no target token within max_length", flush=True)
    eval_batches = []
    if eval_examples:
        enc_eval, _ = encode_examples(list(eval_examples), tok, cfg.max_length, cfg.mask)
        eval_batches = [collate(enc_eval[i : i + 16], tok.pad_token_id) for i in range(0, len(enc_eval), 16)]
    base = heldout_loss(model, eval_batches, SFT, cfg.precision) if eval_batches else None
    model = apply_adapter(model, adapter, cfg.seed)
    state = distributed_state()  # under accelerate launch / torchrun each process trains on its own shard
    batches = batch_stream(
        enc_train,
        cfg.batch_size,
        tok.pad_token_id,
        cfg.seed,
        pack_length=cfg.max_length if cfg.packing else 0,
        num_shards=state.num_processes,
        shard=state.process_index,
    )
    result = _train_and_save(model, tok, batches, SFT, cfg, run_dir)
    losses = loss_summary(base, heldout_loss(model, eval_batches, SFT, cfg.precision)) if base is not None else {}
    return model, result, losses


def loss_summary(base: dict, tuned: dict, n_boot: int = 1000, seed: int = 0) -> dict:
    """Held-out loss per target token before and after training, each with a bootstrap 95% CI
    over examples, and the paired change (tuned − base) with its CI (same examples resampled)."""
    return {
        "base": base["loss"],
        "tuned": tuned["loss"],
        "ci": {k: ratio_ci(r["sums"], r["units"], n_boot, seed) for k, r in (("base", base), ("tuned", tuned))},
        "delta": paired_ratio_delta(base["sums"], tuned["sums"], base["units"], n_boot, seed),
        "n_examples": len(base["units"]),
        "n_tokens": int(sum(base["units"])),
        "signature": f"heldout-loss|per-target-token|bootstrap{n_boot}-over-examples|seed:{seed}",
    }


def _preference(model, tok, cfg: TrainRunConfig, device: str, shard: dict, frozen) -> ObjectiveSetup:
    """dpo, ipo, simpo, orpo (pair losses) or kto (the pairs unpaired) on one pairs file."""
    o, t = cfg.objective, cfg.train
    eval_source = cfg.data.eval or _one_source(cfg.data.train)
    pairs, held = load_pairs(_one_source(cfg.data.train)), load_pairs(eval_source)
    common: dict[str, Any] = dict(beta=o.beta, max_length=t.max_length, batch_size=t.batch_size, seed=t.seed, **shard)
    if o.name == "kto":
        setup = kto_setup(
            pairs,
            held,
            tok,
            frozen,
            desirable_weight=o.desirable_weight,
            undesirable_weight=o.undesirable_weight,
            **common,
        )
    else:
        setup = dpo_setup(
            pairs, held, tok, frozen, name=o.name, gamma=o.gamma, label_smoothing=o.label_smoothing, **common
        )
    evaluate = lambda m: setup.evaluate(m) | {"on": eval_source}  # noqa: E731
    # reference-free losses can be measured on the untrained policy; for the others it is its own reference
    before = evaluate(model) if o.name in REFERENCE_FREE else None
    return dataclasses.replace(setup, evaluate=evaluate, before=before)


def _reward(model, tok, cfg: TrainRunConfig, device: str, shard: dict, frozen) -> ObjectiveSetup:
    """A reward model on one pairs file; held-out accuracy with a 95% Wilson interval over pairs."""
    t = cfg.train
    eval_source = cfg.data.eval or _one_source(cfg.data.train)
    setup = reward_setup(
        model,
        load_pairs(_one_source(cfg.data.train)),
        load_pairs(eval_source),
        tok,
        adapter_method=cfg.adapter.method,
        max_length=t.max_length,
        batch_size=t.batch_size,
        seed=t.seed,
        **shard,
    )

    def with_ci(metrics: dict) -> dict:
        return {k: v for k, v in metrics.items() if k != "correct"} | {
            "accuracy_ci": wilson_interval(sum(metrics["correct"]), len(metrics["correct"])),
            "on": eval_source,
        }

    assert setup.before is not None  # the new head is measured before training
    return dataclasses.replace(setup, evaluate=lambda m: with_ci(setup.evaluate(m)), before=with_ci(setup.before))


def _grpo(model, tok, cfg: TrainRunConfig, device: str, shard: dict, frozen) -> ObjectiveSetup:
    """Online GRPO on data.train's prompts; held-out greedy reward (exact match for the rule of that
    name) on data.eval with a bootstrap CI, and the paired change against the untuned model."""
    o, t = cfg.objective, cfg.train
    if not cfg.data.eval:
        raise ConfigError("objective.name=grpo needs data.eval: held-out prompts to measure the reward on")
    records = load_training_mix(cfg.data, t.seed)
    held = load_examples(cfg.data.eval)
    reward_fn = make_reward_fn(o.reward, device, Path(cfg.output_dir))
    settings = GRPOSettings(
        group_size=o.group_size, prompts_per_batch=t.batch_size, max_new_tokens=o.completion_tokens,
        temperature=o.sample_temperature, epsilon=o.clip_epsilon, beta=o.beta, iterations=o.iterations,
        max_length=t.max_length, seed=t.seed,
    )  # fmt: skip
    setup = grpo_setup(model, records, held, tok, reward_fn, settings, frozen, **shard)

    run_dir = Path(cfg.output_dir)

    def summarise(result: dict, before: dict | None = None) -> dict:
        if before is not None and distributed_state().is_main_process:  # every held-out answer, the curves
            rows = [
                {
                    "id": r.id,
                    "references": references(r),
                    "untuned": a,
                    "untuned_reward": ra,
                    "tuned": b,
                    "tuned_reward": rb,
                }  # fmt: skip
                for r, a, ra, b, rb in zip(
                    held, before["answers"], before["per_item"], result["answers"], result["per_item"], strict=True
                )
            ]
            write_text_atomic(
                run_dir / "heldout_answers.jsonl", "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows)
            )
            if (run_dir / "train_log.jsonl").exists():
                plot_rl_curves(run_dir / "train_log.jsonl", run_dir / "rl_curves.png", f"GRPO, reward {o.reward}")
        out = {
            "reward": result["reward"],
            "ci": mean_ci(result["per_item"]),
            "n": result["n"],
            "unscored": result["unscored"],
            "reward_spec": o.reward,
            "on": cfg.data.eval,
            "examples": [{"id": r.id, "answer": a} for r, a in zip(held[:5], result["answers"])],
        }
        if before is not None:
            out["delta"] = paired_test(before["per_item"], result["per_item"])
        return out

    untuned = setup.evaluate(model)
    return dataclasses.replace(
        setup, evaluate=lambda m: summarise(setup.evaluate(m), untuned), before=summarise(untuned)
    )


def _heldout_evaluator(tok, cfg: TrainRunConfig) -> Callable[[object], dict]:
    t = cfg.train
    held_out = load_examples(cfg.data.eval) if cfg.data.eval else []
    enc_eval = encode_examples(held_out, tok, t.max_length, t.mask)[0] if held_out else []
    eval_batches = [collate(enc_eval[i : i + 16], tok.pad_token_id) for i in range(0, len(enc_eval), 16)]

    def evaluate(m):
        if not eval_batches:
            return {}
        held = heldout_loss(m, eval_batches, SFT, t.precision)
        return {"loss": held["loss"], "ci": ratio_ci(held["sums"], held["units"]), "on": cfg.data.eval}

    return evaluate


def _distill(model, tok, cfg: TrainRunConfig, device: str, shard: dict, frozen) -> ObjectiveSetup:
    o, t = cfg.objective, cfg.train
    evaluate = _heldout_evaluator(tok, cfg)
    before = evaluate(model)
    domain, _ = encode_examples(load_training_mix(cfg.data, t.seed), tok, t.max_length, t.mask)
    teacher, teacher_tok = load_model(o.teacher, cfg.model.dtype, cfg.model.attn_implementation, device)
    if teacher_tok.get_vocab() != tok.get_vocab():
        raise ConfigError(
            f"objective.teacher {o.teacher} has a different tokenizer from model.name "
            f"{cfg.model.name}; token-level distillation needs a shared vocabulary"
        )
    setup = distill_setup(
        domain,
        teacher,
        tok.pad_token_id,
        evaluate,
        temperature=o.temperature,
        alpha=o.kl_weight,
        batch_size=t.batch_size,
        seed=t.seed,
        pack_length=t.max_length if t.packing else 0,
        **shard,
    )
    return dataclasses.replace(setup, before=before)


def _domain_adaptation(model, tok, cfg: TrainRunConfig, device: str, shard: dict, frozen) -> ObjectiveSetup:
    o, t = cfg.objective, cfg.train
    evaluate = _heldout_evaluator(tok, cfg)
    before = evaluate(model)
    domain, _ = encode_examples(load_training_mix(cfg.data, t.seed), tok, t.max_length, t.mask)
    general, _ = encode_examples(load_examples(o.general), tok, t.max_length, t.mask)
    setup = domain_adaptation_setup(
        domain,
        general,
        tok.pad_token_id,
        evaluate,
        frozen,
        alpha=o.domain_weight,
        beta=o.consistency_weight,
        batch_size=t.batch_size,
        seed=t.seed,
        **shard,
    )
    return dataclasses.replace(setup, before=before)


# objective name → (the entry's translation of the run config into the objective module's flat
# builder — dpo_setup, distill_setup, domain_adaptation_setup —, needs a frozen reference when the
# base weights themselves train, packs)
OBJECTIVE_BUILDERS = {
    "dpo": (_preference, True, False),
    "ipo": (_preference, True, False),
    "simpo": (_preference, False, False),
    "orpo": (_preference, False, False),
    "kto": (_preference, True, False),
    "reward": (_reward, False, False),
    "grpo": (_grpo, True, False),
    "distill": (_distill, False, True),
    "domain_adaptation": (_domain_adaptation, True, False),
}


ADAPT_FIRST = ("grpo",)


def fit_objective(model, tok, cfg: TrainRunConfig, run_dir: Path, device: str) -> tuple[object, TrainResult, dict]:
    """DPO, distillation or domain adaptation: look the objective up, build its loss and batches,
    adapt, train in the one loop, save to run_dir/adapter; returns (model, result, evaluations
    before/after)."""
    build, needs_reference, packs = OBJECTIVE_BUILDERS[cfg.objective.name]
    if cfg.train.packing and not packs:
        raise ConfigError(
            f"train.packing is for sft and distill; set train.packing=false for objective.name={cfg.objective.name}"
        )
    check_end_of_turn(tok, model)
    state = distributed_state()
    shard = {"num_shards": state.num_processes, "shard": state.process_index}
    # the base weights themselves train: keep a frozen copy as the reference (2x the weights)
    frozen = (
        copy.deepcopy(model).eval().requires_grad_(False)
        if needs_reference and cfg.adapter.method in ("full", "bitfit")
        else None
    )
    cfg = dataclasses.replace(cfg, output_dir=str(run_dir))  # builders may write beside the run
    if cfg.objective.name in ADAPT_FIRST:  # it samples from the model it trains: build on the adapted one
        model = apply_adapter(model, cfg.adapter, cfg.train.seed)
        setup = build(model, tok, cfg, device, shard, frozen)
    else:
        setup = build(model, tok, cfg, device, shard, frozen)
        model = apply_adapter(model if setup.model is None else setup.model, cfg.adapter, cfg.train.seed)
    result = _train_and_save(model, tok, setup.batches, setup.objective, cfg.train, run_dir)
    return model, result, {"base": setup.before, "tuned": setup.evaluate(model)}


def _train_and_save(model, tok, batches, objective: Objective, cfg: TrainConfig, run_dir: Path) -> TrainResult:
    """The one loop, then the trained weights to run_dir/adapter (by the main process only)."""
    result = train_loop(
        model, batches, objective, cfg, run_dir / "train_log.jsonl", checkpoint_dir=run_dir / "checkpoints"
    )
    state = distributed_state()
    gathered = full_state_dict(model)  # a sharded (FSDP) model's weights, gathered on the main process
    if state.is_main_process:
        save_trained(model, tok, run_dir / "adapter", gathered)
    state.wait_for_everyone()
    return result


def _one_source(train: str | list[str]) -> str:
    if isinstance(train, str):
        return train
    if len(train) != 1:
        raise ConfigError("preference objectives take one data.train file of preference pairs, not a mix")
    return train[0]


def resolve_auto(cfg, device: str):
    """A copy of a run config (any with `model` and `train` sections) whose `auto` model dtype and
    training precision are made concrete for `device`, so the saved config says what ran."""
    return dataclasses.replace(
        cfg,
        model=dataclasses.replace(cfg.model, dtype=resolve_dtype(cfg.model.dtype, device)),
        train=dataclasses.replace(cfg.train, precision=resolve_precision(cfg.train.precision, device)),
    )


# Keys that change how a run is watched, not what it computes: they may differ on a resume.
_RESUME_FREE = {"output_dir", "train.resume", "train.log_every", "train.report_to", "train.checkpoint_every"}


def _flatten(d: dict, prefix: str = "") -> dict:
    out: dict = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def run_fingerprint(cfg: TrainRunConfig) -> dict:
    """What a training run's result depends on: its resolved config and a digest of every data
    source it reads (file contents, or the shipped seed data)."""
    o = cfg.objective
    specs = [
        *([cfg.data.train] if isinstance(cfg.data.train, str) else cfg.data.train),
        cfg.data.eval,
        *([o.general] if o.name == "domain_adaptation" else []),
    ]
    return {
        "config": {k: v for k, v in _flatten(config_to_dict(cfg)).items() if k not in _RESUME_FREE},
        "data": {spec: data_digest(spec) for spec in specs if spec},
    }


def data_digest(spec: str) -> str:
    """SHA-256 of a data file's bytes, of the shipped seed data a `seed:` spec names, or of the rows
    of an `hf:` dataset."""
    if spec.startswith("seed:"):
        rows = load_pairs(spec) if spec.startswith("seed:preferences") else load_examples(spec)
        blob = json.dumps([r.to_dict() for r in rows], sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()
    if spec.startswith(HUB_PREFIX):
        return hub_digest(spec)
    path = Path(split_rows(spec)[0])  # FILE[a:b]: the rows are in the spec, the bytes in the file
    if not path.exists():
        raise ConfigError(f"data file not found: {spec}. Check data.train / data.eval / objective.general")
    return hashlib.sha256(read_text(path, "data file").encode("utf-8")).hexdigest()  # bounded, regular files only


def check_resumable(run_dir: Path, fingerprint: dict) -> None:
    """Refuse to continue a run directory whose checkpoints or adapter came from another config or
    other data: resuming would return the old model under the new config."""
    made = (run_dir / "checkpoints" / "latest").exists() or (run_dir / "adapter").exists()
    stored = run_dir / "run_fingerprint.json"
    if not made:
        return
    if not stored.exists():
        raise ConfigError(
            f"{run_dir} already holds a trained run with no record of what produced it, so it cannot "
            "be resumed safely. Use a new output_dir, or train.resume=false to train again in place"
        )
    old = json.loads(stored.read_text(encoding="utf-8"))
    diff = [
        f"{k}: {old['config'].get(k)!r} → {v!r}" for k, v in fingerprint["config"].items() if old["config"].get(k) != v
    ]
    diff += [f"{k} (removed)" for k in old["config"] if k not in fingerprint["config"]]
    diff += [f"data {k}: contents changed" for k, v in fingerprint["data"].items() if old["data"].get(k) != v]
    if diff:
        raise ConfigError(
            f"{run_dir} holds a run made with another config or data, so resuming it would return "
            f"that run's model: {'; '.join(diff)}. Use a new output_dir, or train.resume=false to "
            "train again in place"
        )


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
    # Everything the run reads is checked before anything is written: the data (read once, here),
    # the model spec, 4-bit support, and a previous run in the same directory.
    fingerprint = run_fingerprint(cfg)
    if cfg.objective.name == "sft":
        train = load_training_mix(cfg.data, cfg.train.seed)
        held_out = load_examples(cfg.data.eval) if cfg.data.eval else []
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
        if cfg.objective.name == "sft":
            _, result, losses = fit_sft(model, tok, train, cfg.adapter, cfg.train, run_dir, held_out)
            losses = (
                {k: {"loss": losses[k], "ci": losses["ci"][k], "on": cfg.data.eval} for k in ("base", "tuned")}
                | {k: losses[k] for k in ("delta", "n_examples", "n_tokens", "signature")}
                if losses
                else {}
            )
        else:
            _, result, losses = fit_objective(model, tok, cfg, run_dir, device)
        summary: dict[str, Any] = {
            "model": cfg.model.name,
            "adapter": cfg.adapter.method,
            "objective": cfg.objective.name,
            "steps": result.steps,
            "first_loss": result.losses[0],
            "final_loss": result.final_loss,
            "eval": losses,
            "trainable_params": result.trainable_params,
            "total_params": result.total_params,
            "trainable_ratio": result.trainable_params / result.total_params,
            "train_seconds": result.seconds,
            "tokens_per_s": result.tokens / max(result.seconds, 1e-9),
        }
        if not state.is_main_process:
            return run_dir
        write_text_atomic(run_dir / "train_summary.json", json.dumps(summary, indent=2))
        print(
            f"Trained {result.trainable_params:,} of {result.total_params:,} parameters "
            f"({100 * summary['trainable_ratio']:.2f}%); loss {result.losses[0]:.3f} → {result.final_loss:.3f}. "
            f"Run: {run_dir}",
            flush=True,
        )
        return run_dir


def load_training_mix(data: SFTDataConfig, seed: int = 0) -> list[Example]:
    """The training examples: one source, or several mixed by `data.weights`."""
    specs = [data.train] if isinstance(data.train, str) else list(data.train)
    if not specs:
        raise ConfigError("data.train is empty: give a file, seed:train, or a list of them")
    sources = [load_examples(s) for s in specs]
    if len(sources) == 1 and not data.weights:
        return sources[0]
    counts = mix_counts([len(s) for s in sources], data.weights)
    print(f"      mix: {mix_report(specs, [len(s) for s in sources], counts)}", flush=True)
    return mix_datasets(sources, data.weights, seed)


def inspect_examples(examples: list[Example], tokenizer, mask: str = "assistant", max_length: int = 1024) -> str:
    """Render examples as the model sees them, target text between «guillemets», with counts."""
    out = []
    for ex in examples:
        text, spans = target_spans(ex, tokenizer, mask)
        marked, last = [], 0
        for a, b in spans:
            marked += [text[last:a], "«", text[a:b], "»"]
            last = b
        marked.append(text[last:])
        enc, _ = encode_examples([ex], tokenizer, max_length, mask)
        out.append(
            f"── {ex.id or 'example'}: {len(enc[0].input_ids)} tokens, {enc[0].n_targets} targets "
            f"(mask={mask})\n{''.join(marked)}"
        )
    return "\n".join(out)


def inspect_run(cfg: TrainRunConfig, n: int = 2) -> str:
    """`tuneforge train inspect`: the first `n` training examples as the model will see them, the
    target text between «guillemets» (for DPO, the chosen conversation: its last answer is the target)."""
    from tuneforge.models import load_tokenizer
    from tuneforge.records import Message

    tok = set_chat_template(load_tokenizer(cfg.model.name), cfg.model.chat_template, cfg.model.eos_token)
    if cfg.objective.name in (*PAIR_LOSSES, "kto", "reward"):
        pairs = load_pairs(_one_source(cfg.data.train))[:n]
        examples = [Example(messages=[*p.prompt, Message("assistant", p.chosen)], id=f"{p.id} (chosen)") for p in pairs]
        return inspect_examples(examples, tok, "last", cfg.train.max_length)
    return inspect_examples(load_training_mix(cfg.data, cfg.train.seed)[:n], tok, cfg.train.mask, cfg.train.max_length)
