"""Online GRPO (group relative policy optimisation) as an objective on the one loop.

Each batch is made from the current policy when the loop asks for it (`grpo_batches`): P prompts,
G sampled completions each (`generation.generate_batch`, the same decoding code as evaluation),
scored by a reward function (a rule, a reward model or a judge). Rewards become group-relative
advantages

    A_i = (r_i − mean(r_group)) / (sd(r_group) + 1e-4)

(a group whose rewards are all equal teaches nothing: A = 0, and its share is logged). Per
completion token t, with ρ_t = π(t)/π_old(t) (π_old: the policy that sampled, whose log-probs are
stored in the batch) and the k3 estimate of KL(π ‖ π_ref) to the reference (the base model under
the disabled adapter, as DPO uses):

    L_t = −min(ρ_t·A, clip(ρ_t, 1−ε, 1+ε)·A) + β·(exp(ref_t − logπ_t) − (ref_t − logπ_t) − 1)

summed over completion tokens; the loop divides by the number of completion tokens in the
optimizer step (token-level normalisation, as DAPO and TRL's `loss_type="dapo"`). With
`iterations` μ > 1 each sampled batch is used for μ optimizer steps, where the clip matters.

Completions are re-tokenised inside the chat template (the answer as the assistant turn, closed by
the end-of-turn token), so the policy also learns where to stop. Resuming from a checkpoint
replays the prompt order but samples afresh (sampling is not replayed).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from tuneforge.data.rules import references
from tuneforge.errors import ConfigError
from tuneforge.files import write_text_atomic
from tuneforge.generation import generate_batch
from tuneforge.hardware import distributed_state
from tuneforge.intervals import mean_ci, paired_test
from tuneforge.records import Example, Message
from tuneforge.tokenisation import IGNORE, collate, encode_example, model_inputs
from tuneforge.train.context import BuildContext, ObjectiveOptions
from tuneforge.train.dpo import shuffled_batches, under_reference
from tuneforge.train.loop import Objective, ObjectiveSetup

RewardFn = Callable[[list[Example], list[str]], list[float | None]]


def group_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """(P·G,) rewards, groups of G in a row → (P·G,) advantages (r − group mean) / (group sd + 1e-4);
    NaN rewards (an unscorable completion) get advantage 0 and stay out of their group's statistics."""
    r = rewards.view(-1, group_size).float()
    ok = ~torch.isnan(r)
    n = ok.sum(1, keepdim=True).clamp(min=1)
    mean = torch.where(ok, r, 0.0).sum(1, keepdim=True) / n
    var = torch.where(ok, (r - mean) ** 2, 0.0).sum(1, keepdim=True) / (n - 1).clamp(min=1)
    adv = (r - mean) / (var.sqrt() + 1e-4)
    return torch.where(ok, adv, 0.0).view(-1)


def token_logps(model, batch: dict) -> torch.Tensor:
    """log π of each next token: (R, T−1); positions without a target hold garbage, mask with labels."""
    labels = batch["labels"]
    logits = model(**model_inputs(batch)).logits[:, -labels.size(1) : -1].float()
    return torch.gather(logits.log_softmax(-1), 2, labels[:, 1:].clamp(min=0).unsqueeze(-1)).squeeze(-1)


def grpo_token_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    advantages: torch.Tensor,
    epsilon: float = 0.2,
    beta: float = 0.04,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token GRPO loss and per-token KL, both (R, T): see the module docstring."""
    ratio = torch.exp(logps - old_logps)
    adv = advantages.unsqueeze(-1)
    policy = -torch.min(ratio * adv, torch.clamp(ratio, 1 - epsilon, 1 + epsilon) * adv)
    diff = ref_logps - logps
    kl = torch.exp(diff) - diff - 1
    return policy + beta * kl, kl


def grpo_objective(epsilon: float = 0.2, beta: float = 0.04) -> Objective:
    """Summed GRPO loss over the completion tokens of a `grpo_batches` batch; stats: the last
    batch's reward mean/sd, zero-variance share, completion length and KL."""
    last: dict[str, float] = {}

    def loss(model, batch):
        mask = batch["labels"][:, 1:] != IGNORE
        per_token, kl = grpo_token_loss(
            token_logps(model, batch), batch["old_logps"], batch["ref_logps"], batch["advantages"], epsilon, beta
        )
        last["kl"] = float((kl.detach() * mask).sum() / mask.sum().clamp(min=1))
        for key in ("reward_mean", "reward_sd", "zero_variance_groups", "completion_tokens", "unscored"):
            last[key] = float(batch[key])
        return (per_token * mask).sum()

    return Objective(
        "grpo", loss, lambda batch: int((batch["labels"][:, 1:] != IGNORE).sum()), stats=lambda: dict(last)
    )


def _prompt_text(tokenizer, record: Example) -> str:
    conv = [{"role": m.role, "content": m.content} for m in record.prompt]
    return tokenizer.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)


@dataclass
class GRPOSettings:
    """How GRPO samples and weighs: G completions for each of P prompts per batch, and the loss's ε and β."""

    group_size: int = 4
    prompts_per_batch: int = 4
    max_new_tokens: int = 32
    temperature: float = 1.0
    top_p: float = 1.0
    epsilon: float = 0.2
    beta: float = 0.04
    iterations: int = 1
    max_length: int = 1024
    seed: int = 0


def grpo_batches(
    model,
    tokenizer,
    records: list[Example],
    reward_fn: RewardFn,
    settings: GRPOSettings,
    ref_model=None,
    num_shards: int = 1,
    shard: int = 0,
) -> Iterator[dict]:
    """Endless batches sampled from the current `model` when asked for (each used `iterations`
    times): (P·G, T) rows with `advantages`, `old_logps`, `ref_logps` and reward statistics."""
    g = settings
    group_size, max_new_tokens, max_length, seed = g.group_size, g.max_new_tokens, g.max_length, g.seed
    decode: dict[str, Any] = dict(do_sample=True, temperature=g.temperature, top_p=g.top_p)
    step = 0
    for idx in shuffled_batches(len(records), g.prompts_per_batch, seed, num_shards, shard):
        group = [records[i] for i in idx]
        was_training = model.training
        model.eval()
        torch.manual_seed(seed * 1_000_003 + step)
        step += 1
        with torch.no_grad():
            texts, _ = generate_batch(
                model, tokenizer, [_prompt_text(tokenizer, r) for r in group], max_new_tokens, decode, n=group_size
            )
        owners = [r for r in group for _ in range(group_size)]
        rewards = torch.tensor([float("nan") if x is None else float(x) for x in reward_fn(owners, texts)])
        encoded = [
            encode_example(Example(messages=[*r.prompt, Message("assistant", t)]), tokenizer, max_length, mask="last")
            for r, t in zip(owners, texts, strict=True)
        ]
        batch = collate(encoded, tokenizer.pad_token_id)
        device = next(model.parameters()).device
        on_device = {k: v.to(device) for k, v in batch.items()}
        with torch.no_grad():
            batch["old_logps"] = token_logps(model, on_device).cpu()
            batch["ref_logps"] = under_reference(model, ref_model, partial(token_logps, batch=on_device)).cpu()
        model.train(was_training)
        grouped = rewards.view(-1, group_size)
        scored = grouped[~torch.isnan(grouped).any(1)]
        batch["advantages"] = group_advantages(rewards, group_size)
        batch["reward_mean"] = torch.tensor(float(rewards.nanmean()) if (~rewards.isnan()).any() else float("nan"))
        batch["reward_sd"] = torch.tensor(
            float(rewards[~rewards.isnan()].std()) if (~rewards.isnan()).sum() > 1 else 0.0
        )
        batch["zero_variance_groups"] = torch.tensor(
            float((scored.max(1).values == scored.min(1).values).float().mean()) if len(scored) else float("nan")
        )
        batch["completion_tokens"] = torch.tensor(float(sum(e.n_targets for e in encoded) / len(encoded)))
        batch["unscored"] = torch.tensor(float(rewards.isnan().sum()))
        for _ in range(g.iterations):
            yield batch


@torch.no_grad()
def greedy_rewards(
    model, tokenizer, records: list[Example], reward_fn: RewardFn, max_new_tokens: int = 32, batch_size: int = 16
) -> tuple[list[str], list[float | None]]:
    """Greedy answers to `records` and their rewards (held-out evaluation)."""
    was_training = model.training
    model.eval()
    texts: list[str] = []
    greedy = dict(do_sample=False, temperature=None, top_p=None, top_k=None)
    for s in range(0, len(records), batch_size):
        chunk = [_prompt_text(tokenizer, r) for r in records[s : s + batch_size]]
        texts += generate_batch(model, tokenizer, chunk, max_new_tokens, greedy)[0]
    model.train(was_training)
    return texts, list(reward_fn(records, texts))


def grpo_setup(
    model,
    records: list[Example],
    held_out: list[Example],
    tokenizer,
    reward_fn: RewardFn,
    settings: GRPOSettings,
    ref_model=None,
    num_shards: int = 1,
    shard: int = 0,
) -> ObjectiveSetup:
    """GRPO in the one loop: the loss, batches sampled from `model` as it trains, and the held-out
    greedy reward (`per_item` for a CI) before and after. `model` must be the adapted model the
    loop trains (pass the same object to the loop)."""

    def evaluate(m) -> dict:
        answers, rewards = greedy_rewards(m, tokenizer, held_out, reward_fn, settings.max_new_tokens)
        scored = [r for r in rewards if r is not None]
        return {
            "reward": sum(scored) / len(scored) if scored else float("nan"),
            "per_item": rewards,
            "answers": answers,
            "n": len(held_out),
            "unscored": len(rewards) - len(scored),
        }

    batches = grpo_batches(model, tokenizer, records, reward_fn, settings, ref_model, num_shards, shard)
    return ObjectiveSetup(grpo_objective(settings.epsilon, settings.beta), batches, evaluate, None)


def make_reward_fn(spec: str, device: str = "cpu", cache_dir: Path | None = None) -> RewardFn:
    """objective.reward as a function (records, completions) -> rewards (None: unscorable, counted)."""
    kind, _, rest = spec.partition(":")
    if kind == "rule" and rest:
        from tuneforge.data.rules import load_rule

        rule = load_rule(rest)
        return lambda records, answers: [float(rule(a, r)) for r, a in zip(records, answers, strict=True)]
    if kind == "model" and rest:
        from tuneforge.train.reward import load_reward_model, score_answers

        reward_model, reward_tok = load_reward_model(rest, device)
        return lambda records, answers: list(
            score_answers(reward_model, reward_tok, [r.prompt for r in records], answers)
        )
    if kind == "judge" and rest:
        from tuneforge.data.quality import judge_prompt
        from tuneforge.llm.client import Sampling
        from tuneforge.llm.config import LLMConfig, make_llm
        from tuneforge.llm.verdicts import parse_rating

        where, _, name = rest.partition(":")
        model, _, url = name.partition("@")
        llm_cfg = LLMConfig(kind=where, model=model)
        if url:
            llm_cfg.base_url = url
        judge = make_llm(llm_cfg, (cache_dir or Path(".")) / "judge_cache.sqlite", desc="judge")

        def rate(records, answers):
            convs = [
                judge_prompt(Example(messages=[*r.prompt, Message("assistant", a)]))
                for r, a in zip(records, answers, strict=True)
            ]
            return [parse_rating(reply[0]) for reply in judge.chat(convs, Sampling(max_new_tokens=16))]

        return rate
    raise ConfigError(
        f"objective.reward '{spec}' unknown: write rule:DOTTED.PATH (e.g. rule:tuneforge.data.rules.exact_match), "
        "model:REWARD_RUN_DIR or judge:local:MODEL / judge:openai:MODEL@URL"
    )


@dataclass
class GRPOOptions(ObjectiveOptions):
    reward: str = field(
        default="rule:tuneforge.data.rules.exact_match",
        metadata={
            "help": "rule:DOTTED.PATH (rule(answer, record)) | model:REWARD_RUN_DIR | "
            "judge:local:MODEL or judge:openai:MODEL@URL (1-10 rating)"
        },
    )
    beta: float = field(default=0.1, metadata={"help": "β, the KL penalty to the reference (0 = none)", "ge": 0})
    group_size: int = field(default=4, metadata={"help": "G, completions sampled per prompt", "ge": 2})
    completion_tokens: int = field(default=32, metadata={"help": "new tokens per completion", "ge": 1})
    sample_temperature: float = field(default=1.0, metadata={"help": "sampling temperature", "gt": 0})
    clip_epsilon: float = field(default=0.2, metadata={"help": "ε, the policy-ratio clip", "gt": 0, "lt": 1})
    iterations: int = field(default=1, metadata={"help": "μ, optimizer steps per sampled batch", "ge": 1})


def build(ctx: BuildContext) -> ObjectiveSetup:
    """Online GRPO on data.train's prompts (`ctx.model` is already adapted: it samples from the model
    it trains); held-out greedy reward on data.eval with a bootstrap CI, the paired change against
    the untuned model, and every held-out answer in heldout_answers.jsonl."""
    o, t = ctx.options, ctx.train
    assert isinstance(o, GRPOOptions)
    if not ctx.data.eval and ctx.eval_examples is None:
        raise ConfigError("objective.name=grpo needs data.eval: held-out prompts to measure the reward on")
    held = ctx.held_out_examples()
    reward_fn = make_reward_fn(o.reward, ctx.device, ctx.run_dir)
    settings = GRPOSettings(
        group_size=o.group_size, prompts_per_batch=t.batch_size, max_new_tokens=o.completion_tokens,
        temperature=o.sample_temperature, epsilon=o.clip_epsilon, beta=o.beta, iterations=o.iterations,
        max_length=t.max_length, seed=t.seed,
    )  # fmt: skip
    setup = grpo_setup(ctx.model, ctx.training_examples(), held, ctx.tok, reward_fn, settings, ctx.frozen, **ctx.shard)

    def summarise(result: dict, before: dict | None = None) -> dict:
        if before is not None and distributed_state().is_main_process:
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
            text = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows)
            write_text_atomic(ctx.run_dir / "heldout_answers.jsonl", text)
        out = {
            "reward": result["reward"],
            "ci": mean_ci(result["per_item"]),
            "n": result["n"],
            "unscored": result["unscored"],
            "reward_spec": o.reward,
            "on": ctx.data.eval,
            "examples": [{"id": r.id, "answer": a} for r, a in zip(held[:5], result["answers"])],
        }
        if before is not None:
            out["delta"] = paired_test(before["per_item"], result["per_item"])
        return out

    untuned = setup.evaluate(ctx.model)
    return dataclasses.replace(
        setup, evaluate=lambda m: summarise(setup.evaluate(m), untuned), before=summarise(untuned)
    )
