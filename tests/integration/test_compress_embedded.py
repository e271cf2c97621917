"""The bundled compress config on the real embedded model (SmolLM2-135M-Instruct), cut short: Taylor
scores on a few examples, 25% of the heads and 50% of the MLP channels out, two distillation steps."""

import json
from pathlib import Path

import pytest

from tuneforge.cli import main

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_the_bundled_compress_config_shrinks_the_embedded_model_and_reports_its_loss(tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "c"
    args = ["compress", "run", str(ROOT / "configs" / "compress.yaml"), f"output_dir={out}", "calibration.examples=8",
            "calibration.max_length=128", "recovery.steps=2", "recovery.batch_size=2", "eval=seed:test[0:6]"]  # fmt: skip
    assert main(args) == 0
    s = json.loads((out / "compress_summary.json").read_text())
    cfg = AutoModelForCausalLM.from_pretrained(out / "model").config
    assert (cfg.num_attention_heads, cfg.intermediate_size) == (6, 768)  # 3 groups × 2 heads or 2 × 3, by score
    assert cfg.num_key_value_heads in (2, 3) and cfg.head_dim == 64
    assert cfg.num_hidden_layers == 30 and s["params"] < 0.8 * s["params_source"]
    h = s["heldout"]
    assert h["source"]["loss"] < h["pruned"]["loss"]  # pruning half the MLP costs loss before recovery
    assert h["recovered"]["loss"] > 0 and s["recovery"]["steps"] == 2
    printed = capsys.readouterr().out
    assert "held-out loss pruned" in printed and "note: heads: 9 query heads in 3 groups" in printed
