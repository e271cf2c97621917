import json

import pytest

from tuneforge.cli import main
from tuneforge.data.io import write_records


@pytest.fixture
def tiny_run(tmp_path, tiny_lm, tiny_tok, examples):
    tiny_lm.save_pretrained(tmp_path / "model")
    tiny_tok.save_pretrained(tmp_path / "model")
    write_records(examples, tmp_path / "train.jsonl")
    cfg = tmp_path / "lora.yaml"
    cfg.write_text(f"""output_dir: {tmp_path / 'run'}
model: {{name: {tmp_path / 'model'}, dtype: float32, device: cpu}}
data: {{train: {tmp_path / 'train.jsonl'}, eval: {tmp_path / 'train.jsonl'}}}
adapter: {{method: lora, r: 4, target_modules: [q_proj, v_proj]}}
train: {{steps: 12, batch_size: 8, lr: 0.01, warmup_ratio: 0.0, precision: fp32, log_every: 4}}
""")
    return tmp_path, cfg


def test_train_writes_adapter_log_and_summary(tiny_run):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    tmp_path, cfg = tiny_run
    assert main(["train", str(cfg)]) == 0
    run = tmp_path / "run"
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["eval_loss"]["tuned"] < summary["eval_loss"]["base"]
    assert summary["final_loss"] < summary["first_loss"]
    assert 0 < summary["trainable_ratio"] < 0.5
    assert len((run / "train_log.jsonl").read_text().splitlines()) == 3
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    assert PeftModel.from_pretrained(base, str(run / "adapter")) is not None


def test_train_inspect_marks_the_targets(tiny_run, capsys):
    _, cfg = tiny_run
    assert main(["train", "inspect", str(cfg), "--n", "1"]) == 0
    out = capsys.readouterr().out
    assert "targets (mask=assistant)" in out
    assert "«Please consult a professional.<|im_end|>»" in out
    assert "<|im_start|>user" in out.split("«")[0]


def test_train_without_a_config_is_a_clear_error(capsys):
    assert main(["train", "steps=3"]) == 2
    assert "needs a config file" in capsys.readouterr().err
