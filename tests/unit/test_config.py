from pathlib import Path

import pytest

from tuneforge.config import bundled_config, load_config, save_config
from tuneforge.demo import DemoConfig
from tuneforge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_yaml_and_typed_overrides(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("train:\n  steps: 7\nadapter:\n  r: 4\n")
    cfg = load_config(
        DemoConfig, cfg_file, ["train.lr=0.001", "adapter.target_modules=[q_proj, v_proj]", "generation.do_sample=true"]
    )
    assert cfg.train.steps == 7 and cfg.adapter.r == 4
    assert cfg.train.lr == 0.001 and isinstance(cfg.train.lr, float)
    assert cfg.adapter.target_modules == ["q_proj", "v_proj"]
    assert cfg.generation.do_sample is True


def test_unknown_key_names_file_line_and_suggests(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("train:\n  steps: 7\n  stpes: 8\n")
    with pytest.raises(ConfigError) as exc:
        load_config(DemoConfig, cfg_file)
    msg = str(exc.value)
    assert "train.stpes" in msg and f"{cfg_file}:3" in msg and "Did you mean: steps" in msg


def test_all_errors_are_reported_at_once():
    with pytest.raises(ConfigError) as exc:
        load_config(DemoConfig, None, ["train.steps=many", "adapter.rank=8", "modle.name=x"])
    msg = str(exc.value)
    assert "train.steps" in msg and "must be int" in msg
    assert "adapter.rank" in msg and "Did you mean: r" in msg
    assert "modle" in msg and "Did you mean: model" in msg
    assert "command-line override" in msg


def test_value_checks_run_on_construction():
    with pytest.raises(ConfigError, match="schedule 'cosin' unknown.*Did you mean: cosine"):
        load_config(DemoConfig, None, ["train.schedule=cosin"])


def test_resolved_config_saves_and_reloads(tmp_path):
    cfg = load_config(DemoConfig, None, ["train.steps=3"])
    path = save_config(cfg, tmp_path / "config.yaml")
    assert load_config(DemoConfig, path) == cfg


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_bundled_config_loads(path):
    from tuneforge.compress.run import CompressRunConfig
    from tuneforge.data.build_config import BuildConfig
    from tuneforge.evaluate.run import EvalRunConfig
    from tuneforge.multitask.run import MultiTaskConfig
    from tuneforge.reflect.run import ReflectRunConfig
    from tuneforge.safety.run import SafetyRunConfig
    from tuneforge.scaling.run import ScalingConfig
    from tuneforge.train.run_config import TrainRunConfig

    special = {
        "demo.yaml": DemoConfig,
        "eval.yaml": EvalRunConfig,
        "eval_tools.yaml": EvalRunConfig,
        "safety.yaml": SafetyRunConfig,
        "superni_multitask.yaml": MultiTaskConfig,
        "reflect.yaml": ReflectRunConfig,
        "compress.yaml": CompressRunConfig,
        "scaling.yaml": ScalingConfig,
    }
    cls = special.get(path.name) or (BuildConfig if path.name.startswith("data_") else TrainRunConfig)
    assert isinstance(load_config(cls, path), cls)


def test_bundled_demo_config_is_found():
    assert bundled_config("demo").name == "demo.yaml"
    with pytest.raises(ConfigError, match="no bundled config"):
        bundled_config("nope")
