import copy
import math

import pytest
import torch

from tuneforge.records import Message, PreferencePair
from tuneforge.tokenisation import collate, encode_examples
from tuneforge.train.adapters import AdapterConfig, apply_adapter
from tuneforge.train.distill import distill_objective, kl_term
from tuneforge.train.dpo import collate_pairs, dpo_objective, dpo_term, encode_pair, sequence_logps
from tuneforge.train.loop import TrainConfig, train_loop
from tuneforge.train.preference_losses import ipo_term, kto_term, orpo_term, simpo_term
from tuneforge.train.sft import sft_loss


def test_dpo_term_matches_the_formula_by_hand():
    # Δ = (−1 − −2) − (−1.5 − −1.5) = 1; β = 0.5
    args = [torch.tensor([x]) for x in (-1.0, -2.0, -1.5, -1.5)]
    plain = -math.log(1 / (1 + math.exp(-0.5)))
    assert float(dpo_term(*args, beta=0.5)) == pytest.approx(plain, rel=1e-6)
    smoothed = 0.9 * plain + 0.1 * -math.log(1 / (1 + math.exp(0.5)))
    assert float(dpo_term(*args, beta=0.5, label_smoothing=0.1)) == pytest.approx(smoothed, rel=1e-6)


def test_ipo_term_matches_the_formula_by_hand():
    # h = (−2 − −3) − (−2.5 − −2.5) = 1
    args = [torch.tensor([x]) for x in (-2.0, -3.0, -2.5, -2.5)]
    assert float(ipo_term(*args, beta=0.5)) == pytest.approx(0.0, abs=1e-9)  # the margin is at 1/(2β) = 1
    assert float(ipo_term(*args, beta=0.1)) == pytest.approx((1 - 5) ** 2, rel=1e-6)


def test_simpo_term_matches_the_formula_by_hand():
    # β·(π̄_c − π̄_r) − γ = 2·(−1 − −2) − 0.5 = 1.5 → −log σ(1.5) = log(1 + e^−1.5)
    got = simpo_term(torch.tensor([-1.0]), torch.tensor([-2.0]), beta=2.0, gamma=0.5)
    assert float(got) == pytest.approx(math.log(1 + math.exp(-1.5)), rel=1e-6)


def test_orpo_term_matches_the_formula_by_hand():
    # p_c = 0.5 → odds 1, log 0; p_r = 0.25 → odds 1/3; log σ(log 3) = −log(4/3)
    got = orpo_term(torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)]), weight=0.1)
    assert float(got) == pytest.approx(-math.log(0.5) + 0.1 * math.log(4 / 3), rel=1e-6)


def test_kto_term_matches_the_formula_by_hand():
    # r = π − ρ = [1, −0.5], z₀ = 0.2, β = 1: desirable 1 − σ(0.8); undesirable 1.5·(1 − σ(0.7))
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    got = kto_term(
        torch.tensor([-1.0, -1.0]),
        torch.tensor([-2.0, -0.5]),
        torch.tensor([True, False]),
        0.2,
        beta=1.0,
        undesirable_weight=1.5,
    )
    assert got.tolist() == pytest.approx([1 - sig(0.8), 1.5 * (1 - sig(0.7))], rel=1e-6)


@pytest.mark.parametrize("name", ["ipo", "simpo", "orpo"])
def test_each_pair_loss_trains_the_policy_towards_the_chosen_answers(tiny_lm, tiny_tok, name):
    from tuneforge.train.dpo import dpo_metrics, pair_batches, preference_objective

    encoded = [encode_pair(p, tiny_tok) for p in _pairs()]
    model = apply_adapter(tiny_lm, AdapterConfig(r=4, dropout=0.0))
    held = [collate_pairs(encoded, tiny_tok.pad_token_id)]
    beta = {"ipo": 0.5, "simpo": 2.0, "orpo": 0.5}[name]
    before = dpo_metrics(model, held, beta, name=name)
    cfg = TrainConfig(steps=12, batch_size=3, lr=5e-3, warmup_ratio=0.0, precision="fp32")
    train_loop(model, pair_batches(encoded, 3, tiny_tok.pad_token_id), preference_objective(name, beta), cfg)
    after = dpo_metrics(model, held, beta, name=name)
    assert after["loss"] < before["loss"] and after["reward_margin"] > before["reward_margin"]
    assert after["reward_accuracy"] == 1.0


def test_kto_batches_carry_answers_labels_and_mismatched_rows(tiny_tok):
    from tuneforge.train.kto import kto_batches, unpair

    rows = unpair(_pairs(2))
    assert [(p[0].content, a, d) for p, a, d in rows][:2] == [
        ("Should I check the rules 0?", "Yes, please consult a professional.", True),
        ("Should I check the rules 0?", "No idea, whatever.", False),
    ]
    batch = next(kto_batches(rows, tiny_tok, 4, seed=0))
    assert int(batch["n"]) == 4 and batch["input_ids"].shape[0] == 8 and batch["desirable"].sum() == 2
    text = [tiny_tok.decode(ids, skip_special_tokens=True) for ids in batch["input_ids"]]
    # mismatched row j = prompt of answer j, then answer j+1
    for j in range(4):
        prompt, answer = text[j].split("assistant")[0], text[(j + 1) % 4].split("assistant")[-1]
        assert text[4 + j].startswith(prompt.strip()) and text[4 + j].rstrip().endswith(answer.strip())


def test_kto_trains_the_policy_to_reward_the_desirable_answers(tiny_lm, tiny_tok):
    from tuneforge.train.dpo import dpo_metrics
    from tuneforge.train.kto import kto_batches, kto_objective, unpair

    model = apply_adapter(tiny_lm, AdapterConfig(r=4, dropout=0.0))
    held = [collate_pairs([encode_pair(p, tiny_tok) for p in _pairs()], tiny_tok.pad_token_id)]
    assert dpo_metrics(model, held, 0.5)["reward_margin"] == pytest.approx(0.0, abs=1e-6)  # policy = reference
    cfg = TrainConfig(steps=12, batch_size=4, lr=5e-3, warmup_ratio=0.0, precision="fp32")
    train_loop(model, kto_batches(unpair(_pairs()), tiny_tok, 4), kto_objective(beta=0.5), cfg)
    after = dpo_metrics(model, held, 0.5)
    assert after["reward_margin"] > 0.1 and after["reward_accuracy"] == 1.0


@pytest.mark.parametrize("tau", [1.0, 2.0])
def test_kl_term_matches_the_formula_by_hand(tau):
    student, teacher = torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]])
    p = [math.exp(math.log(3.0) / tau), 1.0]
    p = [x / sum(p) for x in p]
    expected = tau**2 * sum(pi * math.log(pi / 0.5) for pi in p)
    assert float(kl_term(student, teacher, tau)) == pytest.approx(expected, rel=1e-6)


def _pairs(n=6):
    return [
        PreferencePair(
            prompt=[Message("user", f"Should I check the rules {i}?")],
            chosen="Yes, please consult a professional.",
            rejected="No idea, whatever.",
            id=str(i),
        )
        for i in range(n)
    ]


def test_sequence_logps_is_minus_the_summed_sft_loss(tiny_lm, tiny_tok, examples):
    encs, _ = encode_examples(examples[:1], tiny_tok)
    batch = collate(encs, tiny_tok.pad_token_id)
    with torch.no_grad():
        assert float(sequence_logps(tiny_lm, batch)[0]) == pytest.approx(-float(sft_loss(tiny_lm, batch)), rel=1e-5)


def test_dpo_training_widens_the_chosen_rejected_margin(tiny_lm, tiny_tok):
    model = apply_adapter(tiny_lm, AdapterConfig(r=4))
    batch = collate_pairs([encode_pair(p, tiny_tok) for p in _pairs()], tiny_tok.pad_token_id)

    def margin():
        with torch.no_grad():
            lp = sequence_logps(model, batch)
        return float((lp[:6] - lp[6:]).mean())

    before = margin()
    objective = dpo_objective(beta=0.5)  # reference = the base model (adapter disabled)
    result = train_loop(
        model,
        iter([batch] * 15),
        objective,
        TrainConfig(steps=15, batch_size=6, lr=1e-2, warmup_ratio=0.0, precision="fp32"),
    )
    assert margin() > before + 0.5
    assert result.losses[-1] < result.losses[0] <= math.log(2) + 1e-4  # starts at log 2 (policy = reference)


def test_distillation_from_an_identical_teacher_is_pure_cross_entropy(tiny_lm, tiny_tok, examples):
    encs, _ = encode_examples(examples, tiny_tok)
    batch = collate(encs, tiny_tok.pad_token_id)
    teacher = copy.deepcopy(tiny_lm)
    objective = distill_objective(teacher, temperature=2.0, alpha=0.3)
    with torch.no_grad():
        assert float(objective.loss(tiny_lm, batch)) == pytest.approx(0.7 * float(sft_loss(tiny_lm, batch)), rel=1e-5)


def test_each_objective_module_exports_a_flat_builder_that_feeds_the_one_loop(tiny_lm, tiny_tok, examples):
    import copy
    import inspect

    from tuneforge.tokenisation import encode_examples
    from tuneforge.train.distill import distill_setup
    from tuneforge.train.domain_adapt import domain_adaptation_setup
    from tuneforge.train.dpo import dpo_setup
    from tuneforge.train.loop import ObjectiveSetup

    for builder in (dpo_setup, distill_setup, domain_adaptation_setup):  # no run config below the entry
        assert not any("Config" in str(p.annotation) for p in inspect.signature(builder).parameters.values())
    enc, _ = encode_examples(examples, tiny_tok, 128, "assistant")
    teacher = copy.deepcopy(tiny_lm)
    setups = [
        dpo_setup(_pairs(), _pairs()[:2], tiny_tok, beta=0.5, batch_size=2),
        distill_setup(enc, teacher, tiny_tok.pad_token_id, lambda m: {}, temperature=2.0, batch_size=2),
        domain_adaptation_setup(enc, enc, tiny_tok.pad_token_id, lambda m: {}, teacher, batch_size=2),
    ]
    cfg = TrainConfig(steps=2, batch_size=2, lr=1e-3, warmup_ratio=0.0, precision="fp32")
    trained = []
    for setup in setups:
        assert isinstance(setup, ObjectiveSetup)
        model = apply_adapter(copy.deepcopy(tiny_lm), AdapterConfig(r=4))
        result = train_loop(model, setup.batches, setup.objective, cfg)
        assert result.steps == 2 and all(math.isfinite(x) for x in result.losses), setup.objective.name
        trained.append(model)
    held_out = setups[0].evaluate(trained[0])  # DPO's metrics on its 2 held-out pairs
    assert held_out["pairs"] == 2 and 0.0 <= held_out["reward_accuracy"] <= 1.0 and math.isfinite(held_out["loss"])
