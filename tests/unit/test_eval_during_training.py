"""Evaluation during training (`train.eval_every`), early stopping and the best checkpoint kept
(`train.keep_best`), on the tiny model: the logged evaluations are those of a separate evaluation
of the same weights, a planted overfitting run stops and keeps its best step's weights bit for bit,
and a run killed with SIGKILL resumes to the same decisions and the same weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from tuneforge.cli import main
from tuneforge.data.io import write_records
from tuneforge.errors import ConfigError
from tuneforge.records import Example, Message


@pytest.fixture
def planted(tmp_path, tiny_lm, tiny_tok):
    """A run that overfits: three nonsense answers learnt at a high rate, judged on held-out
    questions whose answers are other words."""
    tiny_lm.save_pretrained(tmp_path / "model")
    tiny_tok.save_pretrained(tmp_path / "model")
    train = [
        Example(messages=[Message("user", f"Code {i}?"), Message("assistant", w)], id=f"t{i}")
        for i, w in enumerate(["zebra quartz", "violet fjord", "mango blitz"])
    ]
    held = [
        Example(
            messages=[Message("user", f"Question number {i}: what should I do?"),
                      Message("assistant", "Please consult a professional.")],
            id=f"h{i}",
        )
        for i in range(8)
    ]  # fmt: skip
    write_records(train, tmp_path / "train.jsonl")
    write_records(held, tmp_path / "held.jsonl")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"""output_dir: {tmp_path / "run"}
model: {{name: {tmp_path / "model"}, dtype: float32, device: cpu}}
data: {{train: {tmp_path / "train.jsonl"}, eval: {tmp_path / "held.jsonl"}}}
adapter: {{method: lora, r: 8, target_modules: [q_proj, v_proj]}}
train: {{steps: 40, batch_size: 3, lr: 0.05, warmup_ratio: 0.0, precision: fp32, log_every: 2}}
""")
    return tmp_path, cfg


def _log(run) -> tuple[list[dict], list[dict]]:
    rows = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]
    return [r for r in rows if "loss" in r], [r for r in rows if "eval_loss" in r]


def _adapter(path) -> dict:
    return load_file(path / "adapter_model.safetensors")


def _same(adapter: dict, trainable: dict) -> bool:
    """The saved adapter holds exactly the trainable tensors (PEFT drops the adapter name)."""
    named = {k.replace(".default", ""): v for k, v in trainable.items()}
    return sorted(adapter) == sorted(named) and all(torch.equal(adapter[k], named[k]) for k in adapter)


def test_evaluations_are_logged_every_n_steps_and_match_a_separate_evaluation_of_those_weights(planted, tiny_tok):
    from tuneforge.data.seed import load_spec
    from tuneforge.intervals import ratio_ci
    from tuneforge.models import load_model
    from tuneforge.train.adapters import AdapterConfig, apply_adapter
    from tuneforge.train.loop import heldout_loss
    from tuneforge.train.sft import SFT, heldout_batches
    from tuneforge.train.sharding import load_trainable_state

    tmp_path, cfg = planted
    assert main(["train", str(cfg), "train.steps=12", "train.eval_every=4", "train.keep_best=3"]) == 0
    run = tmp_path / "run"
    train_rows, evals = _log(run)
    assert [r["step"] for r in evals] == [4, 8, 12] and [r["step"] for r in train_rows] == list(range(2, 13, 2))
    assert all(r["eval_loss_lo"] <= r["eval_loss"] <= r["eval_loss_hi"] and r["eval_s"] > 0 for r in evals)
    summary = json.loads((run / "train_summary.json").read_text())
    assert 0 < summary["eval_seconds"] < summary["train_seconds"]
    assert [e["step"] for e in summary["evals"]] == [4, 8, 12]
    assert summary["eval_seconds"] == pytest.approx(sum(r["eval_s"] for r in evals))  # apart from training time
    assert train_rows[-1]["eval_s"] == pytest.approx(sum(r["eval_s"] for r in evals[:-1]))  # before step 12's

    model, tok = load_model(str(tmp_path / "model"), "float32", device="cpu")
    model = apply_adapter(model, AdapterConfig(method="lora", r=8, target_modules=["q_proj", "v_proj"]))
    batches = heldout_batches(load_spec(str(tmp_path / "held.jsonl")), tok, 512, "assistant")
    for row in evals:  # each step's kept weights, evaluated on their own
        load_trainable_state(model, load_file(run / "checkpoints" / f"best-{row['step']}" / "trainable.safetensors"))
        held = heldout_loss(model, batches, SFT, "fp32")
        assert held["loss"] == pytest.approx(row["eval_loss"], rel=1e-6)
        assert ratio_ci(held["sums"], held["units"]) == pytest.approx([row["eval_loss_lo"], row["eval_loss_hi"]])


def test_early_stopping_stops_a_planted_overfitting_run_and_keeps_the_best_steps_weights(planted):
    tmp_path, cfg = planted
    args = ["train.eval_every=2", "train.early_stopping.patience=5", "train.keep_best=1"]
    assert main(["train", str(cfg), *args]) == 0
    run = tmp_path / "run"
    summary = json.loads((run / "train_summary.json").read_text())
    _, evals = _log(run)
    stopped, best = summary["stopped"]["step"], summary["best_step"]
    assert stopped < 40 and summary["steps"] == stopped and "did not improve" in summary["stopped"]["reason"]
    losses = {r["step"]: r["eval_loss"] for r in evals}
    assert best == min(losses, key=losses.get) and evals[-1]["step"] == stopped
    assert stopped == best + 5 * 2  # five evaluations two steps apart without improvement
    assert losses[stopped] > losses[best]  # it overfitted: held-out loss rose after the best step
    assert [d.name for d in (run / "checkpoints").glob("best-*")] == [f"best-{best}"]
    kept = load_file(run / "checkpoints" / f"best-{best}" / "trainable.safetensors")
    assert _same(_adapter(run / "adapter"), kept)  # the run's adapter is the best step's, bit for bit
    assert not _same(_adapter(run / "adapter-last"), kept)  # the last stays available beside it
    tuned = summary["eval"]["tuned"]["loss"]
    assert tuned == pytest.approx(losses[best], rel=1e-6)  # the summary evaluates what was saved


def test_keep_best_and_patience_without_evaluations_are_errors_naming_the_key():
    from tuneforge.train.loop import TrainConfig

    with pytest.raises(ConfigError, match="set train.eval_every"):
        TrainConfig(keep_best=2)
    with pytest.raises(ConfigError, match="early_stopping.metric 'eval_los' unknown.*eval_loss"):
        from tuneforge.train.best import EarlyStopping

        EarlyStopping(metric="eval_los")


_KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from conftest import make_examples
    from tuneforge.models import tiny_model, tiny_tokenizer
    from tuneforge.records import Example, Message
    from tuneforge.tokenisation import batch_stream, encode_examples
    from tuneforge.train.adapters import AdapterConfig, apply_adapter
    from tuneforge.train.loop import TrainConfig, heldout_loss, train_loop
    from tuneforge.train.objectives import eval_row
    from tuneforge.train.sft import SFT, heldout_batches

    out, kill_at = sys.argv[1], int(sys.argv[2])
    tok = tiny_tokenizer()
    train = [Example(messages=[Message("user", f"Code {{i}}?"), Message("assistant", w)])
             for i, w in enumerate(["zebra quartz", "violet fjord", "mango blitz"])]
    held = make_examples(8)
    encs, _ = encode_examples(train, tok)
    batches = heldout_batches(held, tok, 512, "assistant")
    model = apply_adapter(tiny_model(tok, hidden=32, seed=0), AdapterConfig(method="lora", r=4))
    cfg = TrainConfig(steps=24, batch_size=3, lr=0.05, warmup_ratio=0.0, precision="fp32", log_every=1,
                      checkpoint_every=5, eval_every=2, keep_best=2)

    def stream():
        for i, b in enumerate(batch_stream(encs, 3, tok.pad_token_id, seed=7)):
            if i == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)  # no finally, no cleanup: kill -9
            yield b

    result = train_loop(model, stream(), SFT, cfg, log_path=out + "/log.jsonl", checkpoint_dir=out + "/ckpt",
                        evaluate=lambda m: eval_row(heldout_loss(m, batches, SFT, "fp32")))
    print(result.best_step, [e["step"] for e in result.evals])
""")


def test_keep_best_survives_a_kill_9_and_resumes_to_the_same_decisions_and_weights(tmp_path):
    from pathlib import Path

    script = tmp_path / "run.py"
    script.write_text(_KILLED_RUN.format(tests=str(Path(__file__).parents[1])))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(out, kill_at):
        out.mkdir(exist_ok=True)
        return subprocess.run([sys.executable, str(script), str(out), str(kill_at)], capture_output=True, text=True,
                              env=env, timeout=300)  # fmt: skip

    straight = run(tmp_path / "straight", -1)
    assert straight.returncode == 0, straight.stderr
    killed = run(tmp_path / "killed", 17)  # dies in step 18: after the step-15 checkpoint and the step-16 evaluation
    assert killed.returncode == -signal.SIGKILL
    ckpt = tmp_path / "killed" / "ckpt"
    assert (ckpt / "latest").read_text() == "checkpoint-15"
    resumed = run(tmp_path / "killed", -1)
    assert resumed.returncode == 0, resumed.stderr
    last = lambda done: done.stdout.strip().splitlines()[-1]  # noqa: E731
    assert last(resumed) == last(straight)  # the same best step and evaluation steps
    best = sorted(d.name for d in ckpt.glob("best-*"))
    assert best == sorted(d.name for d in (tmp_path / "straight" / "ckpt").glob("best-*")) and len(best) == 2
    for name in best:  # the kept weights are the same tensors
        a = load_file(ckpt / name / "trainable.safetensors")
        b = load_file(tmp_path / "straight" / "ckpt" / name / "trainable.safetensors")
        assert all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-7) for k in a)
    rows = [json.loads(x) for x in (tmp_path / "killed" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval_loss" in r] == list(range(2, 25, 2))  # each evaluation once
