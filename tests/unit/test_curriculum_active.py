"""Curriculum learning (train/curriculum.py) and active learning by uncertainty sampling
(train/active.py): the pacing functions' schedules, easiest-first batches, the planted hard examples
picked, and both through `tuneforge train`."""

import json
import math
from pathlib import Path

import pytest

from tuneforge.cli import main
from tuneforge.data.io import read_records, write_records
from tuneforge.errors import ConfigError
from tuneforge.records import Example, Message
from tuneforge.tokenisation import batch_stream, encode_examples
from tuneforge.train.active import pick
from tuneforge.train.curriculum import CurriculumConfig, competence, curriculum_stream, schedule
from tuneforge.train.example_scores import example_scores
from tuneforge.train.loop import TrainConfig, train_loop
from tuneforge.train.sft import SFT

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_the_pacing_functions_give_the_specified_schedules():
    steps = 100  # full_at 0.8: every example eligible from step 80
    lin = CurriculumConfig(order="length", pacing="linear", start=0.2, full_at=0.8)
    assert [competence(lin, s, steps) for s in (0, 40, 80, 99)] == pytest.approx([0.2, 0.6, 1.0, 1.0])
    root = CurriculumConfig(order="length", pacing="root", start=0.2, full_at=0.8)
    assert competence(root, 20, steps) == pytest.approx(math.sqrt(0.04 + 0.96 * 0.25))  # t = 20/80
    assert competence(root, 20, steps) > competence(lin, 20, steps)  # root lets harder ones in sooner
    step = CurriculumConfig(order="length", pacing="step", start=0.2, full_at=0.8, stages=4)
    # four stages of 20 steps each: 0.2, 0.2 + 0.8/3, 0.2 + 1.6/3, 1.0
    assert [competence(step, s, steps) for s in (0, 19, 20, 40, 60, 79, 80)] == pytest.approx(
        [0.2, 0.2, 0.2 + 0.8 / 3, 0.2 + 1.6 / 3, 1.0, 1.0, 1.0]
    )
    assert schedule(lin, steps, 3) == [
        {"step": 1, "share": 0.2},
        {"step": 51, "share": 0.7},
        {"step": 100, "share": 1.0},
    ]


def test_a_curriculum_draws_early_batches_from_the_easiest_examples_only(tiny_tok):
    from conftest import make_examples

    encoded, _ = encode_examples(make_examples(32), tiny_tok)
    difficulty = [float(i) for i in range(len(encoded))]  # example i has difficulty i
    cfg = CurriculumConfig(order="length", pacing="linear", start=0.25, full_at=0.5)
    stream = curriculum_stream(encoded, difficulty, cfg, steps=20, batch_size=4, grad_accum=1, pad_id=0)
    batches = [next(stream) for _ in range(20)]
    rank = {tuple(e.input_ids): i for i, e in enumerate(encoded)}
    ranks = [[rank[tuple(r[r != 0].tolist())] for r in b["input_ids"]] for b in batches]
    for step, rows in enumerate(ranks):  # each row among the easiest c(step) share
        assert max(rows) < math.ceil(competence(cfg, step, 20) * 32), (step, rows)
    assert max(ranks[0]) < 8  # c(0) = 0.25 of 32
    assert max(r for rows in ranks[10:] for r in rows) >= 16  # from step 10 (full_at) harder ones come


def _train_args(tmp_path, data: str, *more: str) -> list[str]:
    """`tuneforge train` of the model saved in tmp_path/model on tmp_path/data (also the held-out set)."""
    return ["train", str(CONFIGS / "full.yaml"), f"output_dir={tmp_path / 'run'}", f"model.name={tmp_path / 'model'}",
            "model.dtype=float32", "model.device=cpu", f"data.train={tmp_path / data}", f"data.eval={tmp_path / data}",
            "train.batch_size=2", "train.precision=fp32", *more]  # fmt: skip


@pytest.fixture
def planted(tiny_lm, tiny_tok, examples):
    """A tiny model trained on the easy pattern, a pool of easy examples plus 3 planted hard ones."""
    encoded, _ = encode_examples(examples, tiny_tok)
    cfg = TrainConfig(steps=40, batch_size=4, lr=3e-3, warmup_ratio=0.0, precision="fp32")
    train_loop(tiny_lm, batch_stream(encoded, 4, tiny_tok.pad_token_id), SFT, cfg)
    hard = [
        Example(
            [Message("user", f"Question number {i}: what should I do?"), Message("assistant", text)], id=f"hard-{i}"
        )
        for i, text in enumerate(["zq xv jk wp", "7#Lm@!kQ}", "Bvxx qqq ZZZ"])
    ]
    pool = examples[:5] + hard[:1] + examples[5:] + hard[1:]
    return tiny_lm, tiny_tok, pool


def test_uncertainty_sampling_picks_the_planted_hard_examples(planted):
    import random

    model, tok, pool = planted
    encoded, _ = encode_examples(pool, tok)
    hard = {i for i, e in enumerate(pool) if e.id.startswith("hard")}
    for score in ("loss", "entropy"):
        chosen = {
            i for i, _ in pick(model, encoded, list(range(len(pool))), 3, score, tok.pad_token_id, random.Random(0))
        }
        assert chosen == hard, score
    scores = example_scores(model, encoded, tok.pad_token_id)
    assert min(scores["loss"][i] for i in hard) > max(s for i, s in enumerate(scores["loss"]) if i not in hard)


def test_the_per_example_loss_is_the_sft_loss_of_each_example(tiny_lm, tiny_tok, examples):
    from tuneforge.tokenisation import collate, count_targets
    from tuneforge.train.sft import sft_loss

    encoded, _ = encode_examples(examples, tiny_tok)
    scores = example_scores(tiny_lm, encoded, tiny_tok.pad_token_id, batch_size=3)
    for e, got in zip(encoded, scores["loss"]):
        one = collate([e], tiny_tok.pad_token_id)
        assert got == pytest.approx(float(sft_loss(tiny_lm, one).detach()) / count_targets(one), rel=1e-4)
    assert all(0 < h < math.log(tiny_tok.vocab_size + 1) for h in scores["entropy"])


def test_with_steps_equal_to_the_budget_every_chosen_example_is_trained_on_once(examples, tiny_tok):
    from conftest import make_examples
    from tuneforge.train.active import ActiveConfig, active_stream

    pool = make_examples(24)
    encoded, _ = encode_examples(pool, tiny_tok)
    cfg = ActiveConfig(rounds=3, fraction=0.5, score="random")  # 12 chosen, 4 a round
    stream = active_stream(
        None, pool, encoded, cfg, steps=6, batch_size=2, grad_accum=1, pad_id=0, seed=0, log_path=None
    )
    rows = [tuple(r[r != 0].tolist()) for _ in range(6) for r in next(stream)["input_ids"]]
    assert len(rows) == 12 and len(set(rows)) == 12  # each chosen example once, none twice
    with pytest.raises(ConfigError, match="fewer than train.active.rounds=3"):
        next(active_stream(None, pool, encoded, ActiveConfig(rounds=3, fraction=0.05), 6, 2, 1, 0, 0, None))


def test_active_learning_through_train_selects_in_rounds_with_scores_in_provenance(planted, tmp_path):
    model, tok, pool = planted
    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    write_records(pool, tmp_path / "pool.jsonl")
    args = _train_args(tmp_path, "pool.jsonl", "adapter.method=full", "train.steps=4", "train.active.rounds=2",
                       "train.active.fraction=0.4", "train.active.score=loss")  # fmt: skip
    assert main(args) == 0
    chosen = read_records(tmp_path / "run" / "active_selection.jsonl")
    assert len(chosen) == 4  # 0.4 of 11, in two rounds of 2
    assert [c.meta["active"]["round"] for c in chosen] == [1, 1, 2, 2]
    assert {c.id for c in chosen[:2]} <= {"hard-0", "hard-1", "hard-2"}  # round 1: the base model's most uncertain
    assert chosen[0].meta["active"]["score"] >= chosen[1].meta["active"]["score"]
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["active"]["rounds"] == 2 and summary["active"]["selection"] == "active_selection.jsonl"


def test_a_curriculum_through_train_logs_its_schedule(tiny_lm, tiny_tok, examples, tmp_path):
    tiny_lm.save_pretrained(tmp_path / "model")
    tiny_tok.save_pretrained(tmp_path / "model")
    write_records(examples, tmp_path / "train.jsonl")
    args = _train_args(tmp_path, "train.jsonl", "adapter.method=lora", "train.steps=6", "train.curriculum.order=loss",
                       "train.curriculum.pacing=step")  # fmt: skip
    assert main(args) == 0
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["curriculum"]["order"] == "loss" and summary["curriculum"]["schedule"][0]["share"] == 0.2
    assert summary["curriculum"]["schedule"][-1]["share"] == 1.0


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"curriculum": CurriculumConfig(order="loss"), "packing": True}, "train.packing=false"),
        (
            {
                "active": __import__("tuneforge.train.active", fromlist=["ActiveConfig"]).ActiveConfig(rounds=2),
                "checkpoint_every": 5,
            },
            "checkpoint_every=0",
        ),  # fmt: skip
    ],
)
def test_batch_choosers_refuse_what_they_cannot_honour(overrides, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**overrides)


def test_an_unknown_pacing_names_the_key_and_the_choices():
    with pytest.raises(ConfigError, match="train.curriculum.pacing 'sqrt' unknown.*linear, root, step"):
        CurriculumConfig(order="loss", pacing="sqrt")
