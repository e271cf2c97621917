"""The reward model: Bradley–Terry loss, the scalar head on the base's transformer, a `tuneforge
train` run with objective.name=reward, and the saved run scoring the same when loaded back."""

import math

import pytest
import torch

from tuneforge.data.io import write_records
from tuneforge.errors import ConfigError
from tuneforge.records import Message, PreferencePair
from tuneforge.tokenisation import collate, encode_example
from tuneforge.train.reward import (
    bradley_terry_term,
    load_reward_model,
    reward_model_from_causal,
    rewards,
    score_answers,
)


def test_bradley_terry_loss_is_minus_log_sigmoid_of_the_reward_margin():
    loss = bradley_terry_term(torch.tensor([2.0, 0.0, 3.0]), torch.tensor([1.0, 1.0, 3.0]))
    hand = [math.log(1 + math.exp(-1.0)), math.log(1 + math.exp(1.0)), math.log(2.0)]  # 0.3133, 1.3133, 0.6931
    assert loss.tolist() == pytest.approx(hand, abs=1e-6)


def test_the_reward_model_keeps_the_transformer_and_scores_each_row_at_its_last_token(tiny_lm, tiny_tok):
    from tuneforge.records import Example

    model = reward_model_from_causal(tiny_lm, tiny_tok.pad_token_id, seed=0)
    causal_weights = tiny_lm.model.state_dict()
    for name, w in model.model.state_dict().items():
        assert torch.equal(w, causal_weights[name]), name
    texts = ["a loan is money you borrow", "the quick brown fox jumps over the lazy dog again and again"]
    encoded = [
        encode_example(Example(messages=[Message("user", "q"), Message("assistant", t)]), tiny_tok, 128, mask="last")
        for t in texts
    ]
    batch = collate(encoded, tiny_tok.pad_token_id)  # the short row is right-padded
    together = rewards(model.eval(), batch)
    for i, enc in enumerate(encoded):
        alone = collate([enc], tiny_tok.pad_token_id)
        assert rewards(model, alone)[0].item() == pytest.approx(together[i].item(), abs=1e-5)
        hidden = model.model(input_ids=alone["input_ids"]).last_hidden_state[0, -1]
        assert model.score(hidden).item() == pytest.approx(together[i].item(), abs=1e-5)  # the last real token
    assert together[0] != together[1]


CHOSEN = ["Please consult a professional.", "A loan is money you borrow. Please consult a professional first."]
REJECTED = ["The quick brown fox jumps over the lazy dog, and the lazy dog sleeps.", "The fox."]


def _pairs(n: int, offset: int = 0) -> list[PreferencePair]:
    """Unseen prompts for the held-out pairs; the chosen answer is sometimes the shorter one, so
    answer length alone does not separate them."""
    return [
        PreferencePair(
            prompt=[Message("user", f"What is a loan {i}?")],
            chosen=CHOSEN[i % 2],
            rejected=REJECTED[(i // 2) % 2],
            id=f"p{i}",
        )
        for i in range(offset, offset + n)
    ]


@pytest.fixture
def reward_run(tmp_path, tiny_lm, tiny_tok):
    from tuneforge.config import load_config
    from tuneforge.train.run import train_model
    from tuneforge.train.run_config import TrainRunConfig

    tiny_lm.save_pretrained(tmp_path / "model")
    tiny_tok.save_pretrained(tmp_path / "model")
    write_records(_pairs(8), tmp_path / "train.jsonl")
    write_records(_pairs(6, offset=100), tmp_path / "held.jsonl")

    def run(method: str = "lora", steps: int = 25):
        overrides = [f"output_dir={tmp_path / method}", f"model.name={tmp_path / 'model'}", "model.dtype=float32",
                     "model.device=cpu", "objective.name=reward", f"data.train={tmp_path / 'train.jsonl'}",
                     f"data.eval={tmp_path / 'held.jsonl'}", f"adapter.method={method}", "adapter.r=4",
                     "adapter.target_modules=[q_proj,v_proj]", f"train.steps={steps}", "train.batch_size=4",
                     "train.lr=5e-3", "train.precision=fp32", "train.warmup_ratio=0"]  # fmt: skip
        return train_model(load_config(TrainRunConfig, None, overrides))

    return run


@pytest.mark.parametrize("method", ["lora", "full"])
def test_a_reward_run_learns_to_rank_held_out_chosen_answers_above_rejected(reward_run, method):
    import json

    run = reward_run(method)
    ev = json.loads((run / "train_summary.json").read_text())["eval"]
    assert ev["tuned"]["pairs"] == 6 and ev["tuned"]["on"].endswith("held.jsonl")
    assert ev["tuned"]["accuracy"] == 1.0 and ev["tuned"]["margin"] > ev["base"]["margin"] + 1.0
    assert ev["tuned"]["loss"] < ev["base"]["loss"]
    lo, hi = ev["tuned"]["accuracy_ci"]
    assert 0.5 < lo < 1.0 and hi == pytest.approx(1.0)  # Wilson interval of 6/6: [0.61, 1.0], not a degenerate [1, 1]


def test_a_saved_reward_run_scores_the_same_loaded_back_and_merged(reward_run, tmp_path):
    import json

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tuneforge.train.export import export_run

    run = reward_run("lora", steps=10)
    model, tok = load_reward_model(run)
    held = _pairs(6, offset=100)  # the run's held-out pairs
    prompts = [p.prompt for p in held] * 2
    answers = [p.chosen for p in held] + [p.rejected for p in held]
    scores = score_answers(model, tok, prompts, answers, batch_size=4)
    margins = [c - r for c, r in zip(scores[:6], scores[6:], strict=True)]
    tuned = json.loads((run / "train_summary.json").read_text())["eval"]["tuned"]  # measured in the run
    assert sum(margins) / 6 == pytest.approx(tuned["margin"], abs=1e-4)
    assert sum(m > 0 for m in margins) / 6 == pytest.approx(tuned["accuracy"])
    merged_dir = export_run(run, merge=True)
    merged = AutoModelForSequenceClassification.from_pretrained(merged_dir, dtype=torch.float32).eval()
    merged_scores = score_answers(merged, AutoTokenizer.from_pretrained(merged_dir), prompts, answers)
    assert merged_scores == pytest.approx(scores, abs=1e-4)  # what a user loads with transformers


def test_a_reward_model_needs_lora_or_full(reward_run):
    with pytest.raises(ConfigError, match="lora or full"):
        reward_run("ia3", steps=1)


def test_only_a_reward_run_loads_as_a_reward_model(tmp_path):
    with pytest.raises(ConfigError, match="not a finished reward-model run"):
        load_reward_model(tmp_path)
    (tmp_path / "adapter").mkdir()
    (tmp_path / "config.yaml").write_text("objective:\n  name: dpo\nmodel:\n  name: x\n")
    with pytest.raises(ConfigError, match="objective.name=dpo, not a reward model"):
        load_reward_model(tmp_path)
