"""A reward model: the base causal LM's transformer with a scalar head — transformers'
`AutoModelForSequenceClassification` with one label, the model TRL's RewardTrainer trains — fitted
on preference pairs with the Bradley–Terry loss

    L = −log σ(r(x, y_c) − r(x, y_r))        (per pair; the loop divides by the number of pairs)

where r(x, y) is the head's output at the conversation's last token. That pooling is transformers'
own (the last token that is not padding), so a saved reward model scores exactly the same when a
user loads it with `AutoModelForSequenceClassification.from_pretrained`.

`reward_model_from_causal` builds it from any loaded causal LM (a GGUF, the Hub or a directory):
the transformer's weights are copied, the head starts from the config's initialiser. Its
parameterisation is `lora` (PEFT's SEQ_CLS task: the head trains in full beside the adapter) or
`full`. `load_reward_model` loads a finished run as a scorer (`score_answers`) for preference data
and for online RL.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from tuneforge.data.seed import load_pairs
from tuneforge.errors import ConfigError
from tuneforge.intervals import wilson_interval
from tuneforge.records import Example, Message, PreferencePair
from tuneforge.tokenisation import collate, encode_example, model_inputs
from tuneforge.train.context import BuildContext, ObjectiveOptions
from tuneforge.train.dpo import encode_pair, pair_batches, pair_eval_batches
from tuneforge.train.loop import Objective, ObjectiveSetup

REWARD_ADAPTERS = ("lora", "full")


def bradley_terry_term(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Per-pair Bradley–Terry loss −log σ(r_c − r_r) of rewards of shape (P,)."""
    return -F.logsigmoid(chosen - rejected)


def _head_in_fp32(module, args):
    return (args[0].to(module.weight.dtype),)


def reward_model_from_causal(causal, pad_token_id: int, seed: int = 0):
    """A one-label sequence classifier with `causal`'s transformer weights (copied) and a new head
    drawn from `seed`. The head (hidden_size weights) is kept in fp32 so the small updates of
    training are not rounded away when the base is bf16; its input is cast to match."""
    from transformers import AutoModelForSequenceClassification

    config = copy.deepcopy(causal.config)
    config.num_labels, config.pad_token_id, config.architectures = 1, pad_token_id, None
    dtype = next(causal.parameters()).dtype
    torch.manual_seed(seed)
    try:
        model = AutoModelForSequenceClassification.from_config(
            config, dtype=dtype, attn_implementation=causal.config._attn_implementation
        )
    except ValueError as exc:
        raise ConfigError(f"no sequence-classification head for model type {config.model_type}: {exc}") from None
    model.base_model.load_state_dict(causal.base_model.state_dict())
    head = model.score if hasattr(model, "score") else model.classifier
    head.float().register_forward_pre_hook(_head_in_fp32)
    return model.to(next(causal.parameters()).device)


def rewards(model, batch: dict) -> torch.Tensor:
    """The reward of each row of a collated batch: (rows,), fp32."""
    return model(**model_inputs(batch)).logits[:, 0].float()


def reward_objective() -> Objective:
    """Summed Bradley–Terry loss of a `collate_pairs` batch (rows 0..P-1 chosen, P..2P-1 rejected)."""

    def loss(model, batch):
        p, r = int(batch["pairs"]), rewards(model, batch)
        return bradley_terry_term(r[:p], r[p:]).sum()

    return Objective("reward", loss, lambda batch: int(batch["pairs"]))


@torch.no_grad()
def reward_metrics(model, batches: list[dict]) -> dict:
    """Mean loss, accuracy (share of pairs with r_c > r_r), mean margin r_c − r_r, and the per-pair
    outcomes (`correct`, for a CI over pairs)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    margins = []
    for b in batches:
        b = {k: v.to(device) for k, v in b.items()}
        p, r = int(b["pairs"]), rewards(model, b)
        margins.append(r[:p] - r[p:])
    model.train(was_training)
    margin = torch.cat(margins)
    return {
        "loss": float(bradley_terry_term(margin, torch.zeros_like(margin)).mean()),
        "accuracy": float((margin > 0).float().mean()),
        "margin": float(margin.mean()),
        "pairs": int(margin.numel()),
        "correct": [int(m > 0) for m in margin.tolist()],
    }


def reward_setup(
    model,
    pairs: list[PreferencePair],
    held_out: list[PreferencePair],
    tokenizer,
    *,
    adapter_method: str,
    max_length: int = 1024,
    batch_size: int = 8,
    seed: int = 0,
    num_shards: int = 1,
    shard: int = 0,
) -> ObjectiveSetup:
    """The reward model in the one loop: `model` (a causal LM) becomes a scalar-head classifier
    (`setup.model`); Bradley–Terry on the pairs; accuracy on `held_out` before (the new head) and
    after training."""
    if adapter_method not in REWARD_ADAPTERS:
        raise ConfigError(
            f"a reward model trains with adapter.method lora or full (the head must train too), not {adapter_method}"
        )
    reward_model = reward_model_from_causal(model, tokenizer.pad_token_id, seed)
    encoded = [encode_pair(p, tokenizer, max_length) for p in pairs]
    eval_batches = pair_eval_batches(held_out, tokenizer, max_length)
    evaluate = lambda m: reward_metrics(m, eval_batches)  # noqa: E731
    return ObjectiveSetup(
        reward_objective(),
        pair_batches(encoded, batch_size, tokenizer.pad_token_id, seed, num_shards=num_shards, shard=shard),
        evaluate,
        evaluate(reward_model),
        model=reward_model,
    )


def load_reward_model(run_dir: str | Path, device: str = "cpu"):
    """(model, tokenizer) of a finished `objective.name=reward` run, ready to score."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tuneforge.config import read_yaml
    from tuneforge.models import load_model

    run_dir = Path(run_dir)
    config_path, adapter_dir = run_dir / "config.yaml", run_dir / "adapter"
    if not config_path.exists() or not adapter_dir.exists():
        raise ConfigError(f"{run_dir} is not a finished reward-model run (no config.yaml or adapter/)")
    # the saved config read as plain YAML: TrainRunConfig (train.run_config) sits above this module
    cfg = read_yaml(config_path, "run config")[0]
    if cfg.get("objective", {}).get("name") != "reward":
        raise ConfigError(
            f"{run_dir} was trained with objective.name={cfg.get('objective', {}).get('name')}, not a reward "
            "model. Train one with: tuneforge train configs/reward.yaml"
        )
    tok = AutoTokenizer.from_pretrained(adapter_dir)
    if (adapter_dir / "adapter_config.json").exists():
        from peft import PeftModel

        base, _ = load_model(cfg["model"]["name"], cfg["model"]["dtype"], "sdpa", device)
        model = PeftModel.from_pretrained(reward_model_from_causal(base, tok.pad_token_id), adapter_dir)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(adapter_dir).to(device)
    return model.eval(), tok


@torch.no_grad()
def score_answers(
    model, tokenizer, prompts: list[list[Message]], answers: list[str], batch_size: int = 8, max_length: int = 1024
) -> list[float]:
    """The reward of each (prompt conversation, answer): one float per answer."""
    if len(prompts) != len(answers):
        raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers")
    device = next(model.parameters()).device
    encoded = [
        encode_example(Example(messages=[*p, Message("assistant", a)]), tokenizer, max_length, mask="last")
        for p, a in zip(prompts, answers, strict=True)
    ]
    out: list[float] = []
    for i in range(0, len(encoded), batch_size):
        b = {k: v.to(device) for k, v in collate(encoded[i : i + batch_size], tokenizer.pad_token_id).items()}
        out += rewards(model, b).tolist()
    return out


@dataclass
class RewardOptions(ObjectiveOptions):
    """reward has no keys of its own: a scalar head on the model, Bradley–Terry on data.train's pairs."""


def build(ctx: BuildContext) -> ObjectiveSetup:
    """A reward model on one pairs file; held-out accuracy with a 95% Wilson interval over pairs."""
    t = ctx.train
    eval_source = ctx.eval_pairs_source()
    setup = reward_setup(
        ctx.model,
        ctx.training_pairs(),
        load_pairs(eval_source),
        ctx.tok,
        adapter_method=ctx.adapter.method,
        max_length=t.max_length,
        batch_size=t.batch_size,
        seed=t.seed,
        **ctx.shard,
    )

    def with_ci(metrics: dict) -> dict:
        return {k: v for k, v in metrics.items() if k != "correct"} | {
            "accuracy_ci": wilson_interval(sum(metrics["correct"]), len(metrics["correct"])),
            "on": eval_source,
        }

    assert setup.before is not None  # the new head is measured before training
    return dataclasses.replace(setup, evaluate=lambda m: with_ci(setup.evaluate(m)), before=with_ci(setup.before))
