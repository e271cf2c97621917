"""Objectives are one registry (`tuneforge.train.objectives.REGISTRY`): each entry brings its own
options (keys, help, ranges), its builder, a bundled config and a line in the user's guide; the config
loader, `--help`, `train inspect`, the fingerprint and the one fit path read the table. Adding an
objective is a module and one registry line: the toy below is exactly that."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tuneforge.cli import main
from tuneforge.config import load_config
from tuneforge.errors import ConfigError
from tuneforge.train.context import BuildContext, ObjectiveOptions
from tuneforge.train.objectives import REGISTRY, ObjectiveEntry, fit
from tuneforge.train.run_config import TrainRunConfig, load_run_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_entry_has_options_a_builder_a_bundled_config_and_a_line_in_the_guide(name):
    e = REGISTRY[name]
    assert dataclasses.is_dataclass(e.options) and issubclass(e.options, ObjectiveOptions)
    assert callable(e.build) and e.summary and e.data in ("examples", "pairs", "prompts")
    bundled = ROOT / "configs" / f"{'lora' if name == 'sft' else name}.yaml"
    assert bundled.exists(), f"no bundled config for objective {name}: add configs/{name}.yaml"
    cfg = load_config(TrainRunConfig, bundled)
    assert cfg.objective.name == name and isinstance(cfg.objective, e.options)
    assert f"`{name}`" in (ROOT / "README.md").read_text(encoding="utf-8"), f"README names no `{name}`"
    assert f"`{name}`" in (ROOT / "docs" / "training.md").read_text(encoding="utf-8")


def test_an_objective_reads_only_its_own_keys_and_the_error_lists_them():
    cfg = load_config(TrainRunConfig, None, ["objective.name=simpo", "objective.gamma=0.8"])
    assert (cfg.objective.name, cfg.objective.gamma) == ("simpo", 0.8)
    with pytest.raises(ConfigError) as err:
        load_config(TrainRunConfig, None, ["objective.name=dpo", "objective.gamma=0.8"])
    assert "unknown config key 'objective.gamma'" in str(err.value)
    assert "objective (name=dpo): name, beta, label_smoothing" in str(err.value)
    with pytest.raises(ConfigError, match="'dop' unknown.*Did you mean: dpo"):
        load_config(TrainRunConfig, None, ["objective.name=dop"])


def test_a_run_saved_with_the_old_flat_objective_section_still_loads(tmp_path):
    flat = {"name": "dpo", "beta": 0.2, "gamma": 0.5, "label_smoothing": 0.1, "teacher": "", "group_size": 4}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"objective": flat}))
    cfg = load_run_config(tmp_path / "config.yaml")
    assert (cfg.objective.name, cfg.objective.beta, cfg.objective.label_smoothing) == ("dpo", 0.2, 0.1)


# --- a toy objective, added as a user would: options + builder (its module) and one registry line ---


@dataclass
class ToyOptions(ObjectiveOptions):
    scale: float = field(default=1.0, metadata={"help": "multiplies the SFT loss", "gt": 0})


def build_toy(ctx: BuildContext):
    from tuneforge.train import sft

    setup = sft.build(ctx)
    o = ctx.options
    assert isinstance(o, ToyOptions)
    scaled = dataclasses.replace(setup.objective, name="toy", loss=lambda m, b: o.scale * sft.sft_loss(m, b))
    return dataclasses.replace(setup, objective=scaled, summarise=None)


def test_a_toy_objective_is_one_registry_line_and_trains_through_the_one_fit_path(
    monkeypatch, tmp_path, tiny_lm, tiny_tok, capsys
):
    monkeypatch.setitem(REGISTRY, "toy", ObjectiveEntry("toy", ToyOptions, build_toy, "examples", "a scaled SFT loss"))
    cfg = load_config(
        TrainRunConfig, None, ["objective.name=toy", "objective.scale=2", "train.steps=2", "train.batch_size=2"]
    )
    assert isinstance(cfg.objective, ToyOptions) and cfg.objective.scale == 2
    with pytest.raises(ConfigError, match="objective.scale must be > 0"):
        load_config(TrainRunConfig, None, ["objective.name=toy", "objective.scale=0"])
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "objective.name=toy (a scaled SFT loss)" in out and "objective.scale (float, default 1.0, > 0)" in out
    from conftest import make_examples

    train_cfg = dataclasses.replace(cfg.train, precision="fp32", max_length=64)
    _, result, evals = fit(tiny_lm, tiny_tok, cfg.objective, train_cfg, cfg.adapter, tmp_path, examples=make_examples())
    assert result.steps == 2 and (tmp_path / "adapter").exists()
    assert set(evals) == {"base", "tuned"}
