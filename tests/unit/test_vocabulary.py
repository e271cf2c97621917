"""One vocabulary across verbs (issue 30): the same thing has the same key in every verb's config —
one model is a `model` section (name, dtype, device), several are `models` beside one `dtype` and
`device`, the test set is `data.test`, decoding is `generation.*`, the run's folder `output_dir` —
and every dtype / device key is the one shared definition. An old key is an error naming the new."""

from __future__ import annotations

import dataclasses
import importlib
import typing

import pytest

from tuneforge.config import DEVICE_HELP, DTYPE_HELP, load_config
from tuneforge.errors import ConfigError
from tuneforge.generation import GenerationConfig
from tuneforge.train.config import ModelChoice

VERBS = {
    "demo": "tuneforge.demo:DemoConfig",
    "train": "tuneforge.train.run_config:TrainRunConfig",
    "eval": "tuneforge.evaluate.run:EvalRunConfig",
    "safety": "tuneforge.safety.run:SafetyRunConfig",
    "data build": "tuneforge.data.build_config:BuildConfig",
    "multitask": "tuneforge.multitask.run:MultiTaskConfig",
    "reflect": "tuneforge.reflect.run:ReflectRunConfig",
}


def _cls(where: str) -> type:
    module, _, name = where.partition(":")
    return getattr(importlib.import_module(module), name)


def _leaves(cls: type, prefix: str = ""):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            yield from _leaves(tp, f"{prefix}{f.name}.")
        yield f"{prefix}{f.name}", tp, f


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_names_the_shared_things_the_same_way(verb):
    cls = _cls(VERBS[verb])
    hints = typing.get_type_hints(cls)
    top = {f.name: hints[f.name] for f in dataclasses.fields(cls)}
    assert "output_dir" in top
    if "model" in top:  # one model: a section with name, dtype and device
        assert isinstance(top["model"], type) and issubclass(top["model"], ModelChoice), verb
    if "models" in top:  # several: one dtype and device for all of them
        assert {"dtype", "device"} <= set(top), verb
    assert not {"test", "test_per_domain", "eval_set", "test_set"} & set(top), f"{verb}: the test set is data.test"
    for key, tp, f in _leaves(cls):
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "dtype":
            assert DTYPE_HELP in f.metadata.get("help", ""), f"{verb}: {key} is not the shared dtype key"
        if leaf == "device":
            assert f.metadata.get("help") == DEVICE_HELP, f"{verb}: {key} is not the shared device key"
        if leaf == "generation":
            assert tp is GenerationConfig, f"{verb}: {key}"
        if leaf in ("test", "test_per_domain"):
            assert key.startswith("data.") or key.startswith("build."), f"{verb}: {key}"


@pytest.mark.parametrize(
    "cls,override,new",
    [
        ("eval", "test=seed:test", "data.test"),
        ("eval", "test_per_domain=2", "data.test_per_domain"),
        ("multitask", "dtype=float32", "model.dtype"),
        ("multitask", "device=cpu", "model.device"),
        ("multitask", "model=smollm2-135m-instruct", "model.name"),
    ],
)
def test_an_old_key_is_an_error_that_names_the_new_one(cls, override, new):
    with pytest.raises(ConfigError, match=f"write {new}="):
        load_config(_cls(VERBS[cls]), None, [override])
