import importlib.util

import pytest

from tuneforge.errors import ConfigError
from tuneforge.tokenisation import batch_stream, count_targets, encode_examples
from tuneforge.train.adapters import AdapterConfig, apply_adapter
from tuneforge.train.loop import Objective, TrainConfig, train_loop
from tuneforge.train.sft import sft_loss


def test_unknown_or_missing_trackers_fail_at_config_time():
    with pytest.raises(ConfigError, match="Did you mean: tensorboard"):
        TrainConfig(report_to=["tensorbord"])
    if importlib.util.find_spec("mlflow") is None:
        with pytest.raises(ConfigError, match="pip install mlflow"):
            TrainConfig(report_to=["mlflow"])


def test_off_by_default():
    assert TrainConfig().report_to == []


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="tensorboard not installed")
def test_tensorboard_receives_the_logged_rows(tiny_lm, tiny_tok, examples, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    encs, _ = encode_examples(examples, tiny_tok)
    cfg = TrainConfig(steps=4, batch_size=4, log_every=2, precision="fp32", report_to=["tensorboard"])
    result = train_loop(
        apply_adapter(tiny_lm, AdapterConfig(r=4)),
        batch_stream(encs, 4, tiny_tok.pad_token_id),
        Objective("sft", sft_loss, count_targets),
        cfg,
        log_path=tmp_path / "train_log.jsonl",
    )
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    losses = [(e.step, e.value) for e in events.Scalars("train/loss")]
    assert [s for s, _ in losses] == [2, 4]
    assert losses[1][1] == pytest.approx(sum(result.losses[2:]) / 2, rel=1e-5)
