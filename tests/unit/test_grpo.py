"""Online GRPO: group-relative advantages and the clipped, KL-penalised token loss against hand
computations, and `tuneforge train` with objective.name=grpo on the tiny model (sampling inside the
loop, reward statistics logged, held-out reward before/after with CIs)."""

import json
import math

import pytest
import torch

from tuneforge.data.io import write_records
from tuneforge.errors import ConfigError
from tuneforge.records import Example, Message
from tuneforge.train.grpo import group_advantages, grpo_token_loss


def test_advantages_are_relative_to_the_group_and_zero_when_the_group_agrees():
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]), group_size=4)
    # group 1: mean 0.25, sample sd sqrt((0.75² + 3·0.25²)/3) = 0.5
    assert adv[:4].tolist() == pytest.approx([0.75 / 0.5001, -0.25 / 0.5001, -0.25 / 0.5001, -0.25 / 0.5001])
    assert adv[4:].tolist() == [0.0] * 4  # no variance: nothing to learn


def test_an_unscorable_completion_gets_no_advantage_and_stays_out_of_its_group():
    adv = group_advantages(torch.tensor([1.0, float("nan"), 0.0, 0.0]), group_size=4)
    sd = math.sqrt(((2 / 3) ** 2 + 2 * (1 / 3) ** 2) / 2)  # over the three scored rewards
    assert adv.tolist() == pytest.approx([(2 / 3) / (sd + 1e-4), 0.0, -(1 / 3) / (sd + 1e-4), -(1 / 3) / (sd + 1e-4)])


def test_the_token_loss_clips_the_ratio_and_adds_the_k3_kl():
    logp = torch.log(torch.tensor([[0.5, 0.5]]))
    old = torch.log(torch.tensor([[0.25, 0.25]]))  # ratio 2
    ref = torch.log(torch.tensor([[0.25, 0.5]]))
    for adv, policy in ((1.0, -1.2), (-1.0, 2.0)):  # A>0: min(2A, 1.2A) = 1.2A; A<0: min(−2, −1.2) = −2
        loss, kl = grpo_token_loss(logp, old, ref, torch.tensor([adv]), epsilon=0.2, beta=0.1)
        k3 = 0.5 - math.log(0.5) - 1  # exp(ref − logp) − (ref − logp) − 1 with ref − logp = log 0.5
        assert kl[0].tolist() == pytest.approx([k3, 0.0], abs=1e-6)
        assert loss[0].tolist() == pytest.approx([policy + 0.1 * k3, policy], abs=1e-6)


def test_at_the_sampling_policy_the_gradient_is_the_advantage_weighted_policy_gradient():
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -3.0]], requires_grad=True)
    adv = torch.tensor([0.7, -1.3])
    loss, _ = grpo_token_loss(logp, logp.detach(), logp.detach(), adv, beta=0.5)  # ratio 1, KL 0
    loss.sum().backward()
    assert logp.grad.flatten().tolist() == pytest.approx([-0.7, -0.7, 1.3, 1.3])  # −A per token


@pytest.fixture
def grpo_run(tmp_path, tiny_lm, tiny_tok):
    from tuneforge.config import load_config
    from tuneforge.train.run import train_model
    from tuneforge.train.run_config import TrainRunConfig

    tiny_lm.save_pretrained(tmp_path / "model")
    tiny_tok.save_pretrained(tmp_path / "model")
    prompts = [
        Example(messages=[Message("user", f"What is a loan {i}?"), Message("assistant", "Money.")], id=f"p{i}")
        for i in range(12)
    ]
    write_records(prompts[:8], tmp_path / "train.jsonl")
    write_records(prompts[8:], tmp_path / "held.jsonl")

    def run(*overrides):
        base = [f"output_dir={tmp_path / 'run'}", f"model.name={tmp_path / 'model'}", "model.dtype=float32",
                "model.device=cpu", "objective.name=grpo", f"data.train={tmp_path / 'train.jsonl'}",
                f"data.eval={tmp_path / 'held.jsonl'}", "objective.reward=rule:tuneforge.data.rules.brevity",
                "objective.group_size=4", "objective.completion_tokens=12", "adapter.method=lora", "adapter.r=4",
                "adapter.target_modules=[q_proj,v_proj,o_proj]", "train.batch_size=2", "train.precision=fp32",
                "train.log_every=1", "train.warmup_ratio=0"]  # fmt: skip
        return train_model(load_config(TrainRunConfig, None, [*base, *overrides]))

    return run


def test_grpo_samples_in_the_loop_logs_reward_statistics_and_measures_held_out_reward(grpo_run):
    run = grpo_run("train.steps=3", "train.lr=1e-3")
    rows = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert {"reward_mean", "reward_sd", "kl", "completion_tokens", "zero_variance_groups"} <= set(r)
        assert 0 <= r["zero_variance_groups"] <= 1 and r["completion_tokens"] > 0 and r["unscored"] == 0
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-6) and rows[-1]["kl"] > 0  # the policy leaves the reference
    ev = json.loads((run / "train_summary.json").read_text())["eval"]
    assert ev["base"]["n"] == ev["tuned"]["n"] == 4 and ev["tuned"]["reward_spec"].endswith("brevity")
    lo, hi = ev["tuned"]["ci"]
    assert lo <= ev["tuned"]["reward"] <= hi and ev["tuned"]["delta"]["n"] == 4
    answers = [json.loads(line) for line in (run / "heldout_answers.jsonl").read_text().splitlines()]
    assert [a["id"] for a in answers] == ["p8", "p9", "p10", "p11"] and answers[0]["references"] == ["Money."]
    assert sum(a["tuned_reward"] for a in answers) / 4 == pytest.approx(ev["tuned"]["reward"])
    assert (run / "rl_curves.png").stat().st_size > 10_000


def test_one_grpo_step_moves_probability_towards_the_higher_rewarded_completions(tiny_lm, tiny_tok):
    """A batch sampled in the loop, one SGD step on its loss: the log-probability of each completion
    moves with the sign of its advantage (Σ A_i·Δlog π_i > 0), and the best completion gains."""
    import copy

    from tuneforge.tokenisation import IGNORE
    from tuneforge.train.adapters import AdapterConfig, apply_adapter
    from tuneforge.train.grpo import GRPOSettings, grpo_batches, grpo_objective, token_logps

    reference = copy.deepcopy(tiny_lm).requires_grad_(False)
    model = apply_adapter(tiny_lm, AdapterConfig(method="full"), seed=0)
    prompts = [Example(messages=[Message("user", f"What is a loan {i}?"), Message("assistant", "x")]) for i in range(2)]
    e_share = lambda records, answers: [a.count("e") / max(1, len(a)) for a in answers]  # noqa: E731
    settings = GRPOSettings(group_size=8, prompts_per_batch=2, max_new_tokens=8)
    batch = next(grpo_batches(model, tiny_tok, prompts, e_share, settings, ref_model=reference))
    mask = batch["labels"][:, 1:] != IGNORE

    def sequence_logps():
        with torch.no_grad():
            return (token_logps(model, batch) * mask).sum(-1)

    before = sequence_logps()
    assert torch.allclose(before, (batch["old_logps"] * mask).sum(-1), atol=1e-4)  # π_old is the sampler
    loss = grpo_objective(beta=0.0).loss(model, batch) / mask.sum()
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.05 * p.grad
    change = sequence_logps() - before
    adv = batch["advantages"]
    assert adv.abs().sum() > 0 and float((adv * change).sum()) > 0
    assert change[adv.argmax()] > change[adv.argmin()]


def test_grpo_needs_held_out_prompts_and_a_known_reward(grpo_run):
    with pytest.raises(ConfigError, match="needs data.eval"):
        grpo_run("data.eval=", "train.steps=1")
    with pytest.raises(ConfigError, match="objective.reward 'exact' unknown"):
        grpo_run("objective.reward=exact", "train.steps=1")
    with pytest.raises(ConfigError, match="group_size must be ≥ 2"):
        grpo_run("objective.group_size=1", "train.steps=1")


def test_rows_of_a_data_file_are_chosen_with_a_slice(tmp_path):
    from tuneforge.data.seed import load_examples

    rows = [Example(messages=[Message("user", f"q{i}"), Message("assistant", "a")], id=f"r{i}") for i in range(5)]
    write_records(rows, tmp_path / "d.jsonl")
    assert [r.id for r in load_examples(f"{tmp_path / 'd.jsonl'}[:2]")] == ["r0", "r1"]
    assert [r.id for r in load_examples(f"{tmp_path / 'd.jsonl'}[3:]")] == ["r3", "r4"]


def test_rewards_come_from_a_rule_a_reward_model_or_a_judge(tmp_path, tiny_lm, tiny_tok):
    from test_reward import _pairs

    from tuneforge.config import load_config
    from tuneforge.train.grpo import make_reward_fn
    from tuneforge.train.reward import load_reward_model, score_answers
    from tuneforge.train.run import train_model
    from tuneforge.train.run_config import TrainRunConfig

    records = [Example(messages=[Message("user", "What is a loan?"), Message("assistant", "Money.")], id="q")] * 2
    answers = ["money", "a fox"]
    assert make_reward_fn("rule:tuneforge.data.rules.exact_match")(records, answers) == [1.0, 0.0]
    tiny_lm.save_pretrained(tmp_path / "model")
    tiny_tok.save_pretrained(tmp_path / "model")
    write_records(_pairs(4), tmp_path / "pairs.jsonl")
    run = train_model(load_config(TrainRunConfig, None, [
        f"output_dir={tmp_path / 'rm'}", f"model.name={tmp_path / 'model'}", "model.dtype=float32", "model.device=cpu",
        "objective.name=reward", f"data.train={tmp_path / 'pairs.jsonl'}", "data.eval=", "adapter.method=full",
        "train.steps=2", "train.batch_size=2", "train.precision=fp32"]))  # fmt: skip
    model, tok = load_reward_model(run)
    expected = score_answers(model, tok, [r.prompt for r in records], answers)
    assert make_reward_fn(f"model:{run}")(records, answers) == pytest.approx(expected)
    # a judge's rating is the reward; the tiny model writes no "Rating: N", so nothing is scored (None, not 0)
    judged = make_reward_fn(f"judge:local:{tmp_path / 'model'}", cache_dir=tmp_path)(records, answers)
    assert judged == [None, None] and (tmp_path / "judge_cache.sqlite").exists()
