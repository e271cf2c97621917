"""Fuzz table of config values, config files and data records (issue 29): every bad value exits with
code 2 and one line naming the key, before anything is written.

The cases are generated from the config dataclasses: for every verb that takes a config, every
numeric key gets NaN, ±inf, 1e400 (an overflow to inf), a value just below its minimum and one just
above its maximum (an int without one: 2**63, past 64 bits), all as `key=value` overrides. Then YAML
files (duplicate keys, sexagesimal numbers, alias bombs) and JSON records (duplicate keys, NaN, a
lone surrogate, wrong types) that must be refused the same way.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import typing

import pytest
from fuzzing import expect_user_error

from tuneforge.cli import main
from tuneforge.config import range_text

# verb → (argv before the overrides, config dataclass); {o}: an output folder that must stay absent,
# {d}: the folder of input files
VERBS = {
    "demo": (["demo", "output_dir={o}"], "tuneforge.demo:DemoConfig"),
    "train": (["train", "configs/lora.yaml", "output_dir={o}"], "tuneforge.train.run_config:TrainRunConfig"),
    "eval generate": (["eval", "generate", "output_dir={o}"], "tuneforge.evaluate.run:EvalRunConfig"),
    "eval run": (["eval", "run", "output_dir={o}"], "tuneforge.evaluate.run:EvalRunConfig"),
    "safety run": (["safety", "run", "output_dir={o}"], "tuneforge.safety.run:SafetyRunConfig"),
    "data build": (["data", "build", "{d}/build.yaml", "output_dir={o}"], "tuneforge.data.build_config:BuildConfig"),
    "multitask run": (["multitask", "run", "output_dir={o}"], "tuneforge.multitask.run:MultiTaskConfig"),
    "reflect run": (["reflect", "run", "output_dir={o}"], "tuneforge.reflect.run:ReflectRunConfig"),
}


def _cls(where: str) -> type:
    module, _, name = where.partition(":")
    return getattr(importlib.import_module(module), name)


def _fields(cls: type, prefix: str = "", pick: tuple[str, ...] = ()):
    """(dotted key, type, metadata, the field object's id, overrides that make the key read) of every
    leaf key of a config dataclass; a section with variants (`objective`) gives every variant's keys,
    each with the `name=` override that picks it."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if "variants" in f.metadata:
            for name, variant in f.metadata["variants"].items():
                yield from _fields(variant, f"{prefix}{f.name}.", (*pick, f"{prefix}{f.name}.name={name}"))
        elif isinstance(tp, type) and dataclasses.is_dataclass(tp):
            yield from _fields(tp, f"{prefix}{f.name}.", pick)
        else:
            yield f"{prefix}{f.name}", tp, f.metadata, id(f), pick


def _number_type(tp) -> type | None:
    """int or float for a numeric key (or a list / dict of numbers), else None."""
    args = typing.get_args(tp)
    inner = args[-1] if typing.get_origin(tp) in (list, dict) and args else tp
    return inner if inner in (int, float) else None


def _bad_values(tp: type, meta) -> list[str]:
    """Values of a numeric key that must be refused, written as YAML."""
    step = 1 if tp is int else 0.5
    out = [".nan", ".inf", "-.inf", "1e400"]
    if "ge" in meta or "gt" in meta:
        out.append(repr(meta["ge"] - step if "ge" in meta else meta["gt"]))
    if "le" in meta or "lt" in meta:
        out.append(repr(meta["le"] + step if "le" in meta else meta["lt"]))
    elif tp is int:
        out.append(str(2**63))
    return out


def _wrap(tp, value: str) -> str:
    """The value as a list item or a dict value where the key takes those (braces doubled for format)."""
    origin = typing.get_origin(tp)
    return f"[{value}]" if origin is list else f"{{{{a: {value}}}}}" if origin is dict else value


def _value_cases():
    """Every verb × every numeric key; the whole list of bad values the first time a dataclass field
    is met (train.lr under `train`), one of them (1e400) where the same field comes back (train.lr
    under `demo`, the llm keys under preferences.judge), so the table stays quick."""
    seen = set()
    for verb, (argv, where) in VERBS.items():
        for key, tp, meta, field_id, pick in _fields(_cls(where)):
            number = _number_type(tp)
            if number is None:
                continue
            values = _bad_values(number, meta) if field_id not in seen else ["1e400"]
            seen.add(field_id)
            name = f"[{pick[-1].split('=')[1]}]" if pick else ""
            for value in values:
                argv_ = [*argv, *pick, f"{key}={_wrap(tp, value)}"]
                yield pytest.param(argv_, [key], id=f"{verb}:{key}{name}={value}")


LAUGHS = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    + [f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]" for p, n in zip("abcdefgh", "bcdefghi")]
)
INPUTS = {  # file name → text
    "build.yaml": "{}\n",
    "dup.yaml": "train:\n  lr: 0.001\n  steps: 5\n  lr: 0.002\n",
    "dup_sections.yaml": "train:\n  steps: 5\nadapter:\n  r: 4\ntrain:\n  lr: 0.1\n",
    "sexagesimal.yaml": "train:\n  steps: 1:30\n",
    "octal.yaml": "train:\n  lr: 0:0:1\n",
    "laughs.yaml": LAUGHS + "\n",
    "recursive.yaml": "a: &a [1, *a]\n",
    "laughs_suite.yaml": LAUGHS + "\nhealthcare: {risky: [{prompt: hi}]}\n",
    "dup_suite.yaml": "healthcare:\n  risky:\n    - prompt: a\n      prompt: b\n",
    "dup_items.yaml": "- id: a\n  instruction: Say hi.\n  id: b\n",
    "laughs_items.yaml": LAUGHS + "\n",
}
GOOD = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
_MSGS = json.dumps(GOOD["messages"])
RECORDS = {  # file name → (one JSONL line, words the error must hold)
    "dup_key.jsonl": (f'{{"messages": {_MSGS}, "id": "a", "id": "b"}}', ["duplicate key 'id'", "field 'id'"]),
    "dup_nested.jsonl": (
        '{"messages": [{"role": "user", "content": "q", "content": "r"}, {"role": "assistant", "content": "a"}]}',
        ["duplicate key 'content'"],
    ),
    "nan.jsonl": (f'{{"messages": {_MSGS}, "meta": {{"score": NaN}}}}', ["NaN is not a JSON number"]),
    "inf.jsonl": (f'{{"messages": {_MSGS}, "rating": Infinity}}', ["Infinity is not a JSON number"]),
    "neg_inf.jsonl": (f'{{"messages": {_MSGS}, "rating": -Infinity}}', ["-Infinity is not a JSON number"]),
    "overflow.jsonl": (f'{{"messages": {_MSGS}, "rating": 1e400}}', ["1e400 is too large"]),
    "long_int.jsonl": (f'{{"messages": {_MSGS}, "rating": {"9" * 5000}}}', ["5000 digits"]),
    "surrogate.jsonl": (
        '{"messages": [{"role": "user", "content": "q\\ud800"}, {"role": "assistant", "content": "a"}]}',
        ["lone UTF-16 surrogate", "field 'messages'"],
    ),
    "surrogate_key.jsonl": (f'{{"messages": {_MSGS}, "meta": {{"\\udc00": 1}}}}', ["lone UTF-16 surrogate"]),
    "dict_id.jsonl": (f'{{"messages": {_MSGS}, "id": {{"a": 1}}}}', ["'id' must be", "field 'id'"]),
    "bool_id.jsonl": (f'{{"messages": {_MSGS}, "id": true}}', ["'id' must be"]),
    "bool_domain.jsonl": (f'{{"messages": {_MSGS}, "domain": true}}', ["'domain' must be a string"]),
    "list_task.jsonl": (f'{{"messages": {_MSGS}, "task": ["t"]}}', ["'task' must be a string"]),
    "number_source.jsonl": (f'{{"messages": {_MSGS}, "source": 3}}', ["'source' must be a string"]),
    "string_references.jsonl": (
        '{"messages": [{"role": "user", "content": "q"}], "references": "the answer"}',
        ["'references' must be a list of strings"],
    ),
    "number_references.jsonl": (
        '{"messages": [{"role": "user", "content": "q"}], "references": ["a", 1]}',
        ["'references' must be a list of strings"],
    ),
    "generation_string_references.jsonl": (
        '{"id": "g", "prompt": [{"role": "user", "content": "q"}], "generation": "x", "model": "m", '
        '"references": "abc"}',
        ["'references' must be a list of strings"],
    ),
    "generation_settings_list.jsonl": (
        '{"id": "g", "prompt": [{"role": "user", "content": "q"}], "generation": "x", "model": "m", "settings": [1]}',
        ["'settings' must be an object"],
    ),
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz_config")
    d = root / "in"
    d.mkdir()
    for name, text in INPUTS.items():
        (d / name).write_text(text, encoding="utf-8")
    for name, (line, _) in RECORDS.items():
        (d / name).write_text(line + "\n", encoding="utf-8")
    (d / "array.json").write_text('[{"instruction": "a", "output": "b", "x": 1, "x": 2}]\n', encoding="utf-8")
    return root


FILE_CASES = [  # (id, argv, words)
    ("duplicate key", ["train", "{d}/dup.yaml"], ["duplicate key 'train.lr'", "lines 2 and 4", "dup.yaml:4"]),
    ("duplicate section", ["train", "{d}/dup_sections.yaml"], ["duplicate key 'train'", "lines 1 and 5"]),
    ("sexagesimal int", ["train", "{d}/sexagesimal.yaml"], ["'train.steps'", "must be int", "'1:30'"]),
    ("sexagesimal float", ["train", "{d}/octal.yaml"], ["'train.lr'", "must be float", "'0:0:1'"]),
    ("billion laughs config", ["train", "{d}/laughs.yaml"], ["aliases", "laughs.yaml"]),
    ("recursive alias", ["train", "{d}/recursive.yaml"], ["alias", "recursive.yaml:1"]),
    (
        "billion laughs override",
        ["train", "configs/lora.yaml", "output_dir={o}", "train.lr={{" + LAUGHS.replace("\n", ", ") + "}}"],
        ["'train.lr'"],
    ),
    (
        "billion laughs safety suite",
        ["safety", "run", "output_dir={o}", "suite={d}/laughs_suite.yaml"],
        ["aliases", "laughs_suite.yaml"],
    ),
    (
        "duplicate key in a safety suite",
        ["safety", "run", "output_dir={o}", "suite={d}/dup_suite.yaml"],
        ["duplicate key 'prompt'", "dup_suite.yaml:4"],
    ),
    (
        "duplicate key in reflect items",
        ["reflect", "run", "output_dir={o}", "items={d}/dup_items.yaml"],
        ["duplicate key 'id'", "dup_items.yaml:3"],
    ),
    (
        "billion laughs reflect items",
        ["reflect", "run", "output_dir={o}", "items={d}/laughs_items.yaml"],
        ["aliases", "laughs_items.yaml"],
    ),
    (
        "empty metrics",
        ["eval", "generate", "output_dir={o}", "metrics=[]"],
        ["config key metrics must hold at least one item"],
    ),
    (
        "empty demo metrics",
        ["demo", "output_dir={o}", "eval.metrics=[]"],
        ["config key eval.metrics must hold at least one item"],
    ),
    (
        "empty models",
        ["safety", "run", "output_dir={o}", "models=[]"],
        ["config key models must hold at least one item"],
    ),
    (
        "seed past 64 bits",
        ["train", "configs/lora.yaml", "output_dir={o}", f"train.seed={2**64 + 1}"],
        ["train.seed must be in [0, 4294967295], got 18446744073709551617"],
    ),
    ("beta 0 for dpo", ["train", "configs/dpo.yaml", "output_dir={o}", "objective.beta=0"], ["objective.beta", "> 0"]),
    ("duplicate key in a JSON array", ["data", "stats", "{d}/array.json"], ["duplicate key 'x'", "array.json:1"]),
]
FILE_CASES += [
    (f"record {name}", ["data", "convert", f"{{d}}/{name}", "{o}/out.jsonl", "--to", "jsonl"], [f"{name}:1", *words])
    for name, (_, words) in RECORDS.items()
]


@pytest.mark.parametrize("argv,words", list(_value_cases()))
def test_a_bad_config_value_is_refused_naming_the_key(argv, words, inputs, capsys):
    expect_user_error(argv, words, root=inputs, capsys=capsys, d=inputs / "in", o=inputs / "out")


@pytest.mark.parametrize("name,argv,words", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_a_bad_file_is_refused_with_its_line(name, argv, words, inputs, capsys):
    expect_user_error(argv, words, root=inputs, capsys=capsys, d=inputs / "in", o=inputs / "out")


def test_every_numeric_key_has_a_range():
    """A new numeric key must say what values it takes (metadata ge/gt/le/lt), or this fails."""
    missing = sorted(
        {
            f"{where}:{key}"
            for _, where in VERBS.values()
            for key, tp, meta, _, _ in _fields(_cls(where))
            if _number_type(tp) and not range_text(meta)
        }
    )
    assert not missing, missing


@pytest.mark.parametrize("verb", VERBS)
def test_help_shows_each_numeric_range(verb, capsys):
    argv, where = VERBS[verb]
    with pytest.raises(SystemExit):
        main([*verb.split(), "--help"])
    out = capsys.readouterr().out
    for key, tp, meta, _, _ in _fields(_cls(where)):
        if _number_type(tp) and typing.get_origin(tp) is None:
            assert f"  {key} ({tp.__name__}, default " in out and f", {range_text(meta)}): " in out, key


def test_help_line_of_a_float_key(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "train.lr (float, default 0.0002, > 0): peak learning rate" in out
    assert "train.seed (int, default 0, in [0, 4294967295])" in out
    assert "data.weights (list[float], default [], each ≥ 0)" in out


def test_yaml_1_2_numbers_and_a_float_without_a_dot(tmp_path):
    from tuneforge.config import load_config, parse_yaml
    from tuneforge.train.run_config import TrainRunConfig

    assert parse_yaml("a: 1:30\nb: 1e-4\nc: 017\nd: 0x1f\ne: .5\nf: -.inf\ng: 1_000\n")[0] == {
        "a": "1:30",
        "b": 1e-4,
        "c": 17,
        "d": 31,
        "e": 0.5,
        "f": float("-inf"),
        "g": "1_000",
    }
    (tmp_path / "c.yaml").write_text("train:\n  lr: 1e-4\n  steps: 90\n")
    cfg = load_config(TrainRunConfig, tmp_path / "c.yaml")
    assert cfg.train.lr == 1e-4 and cfg.train.steps == 90
