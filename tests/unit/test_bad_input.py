"""Bad input exits with code 2 and one line saying what, where and how to fix — no traceback, and
nothing written (issue 16). A table of malformed inputs across the verbs, run in-process."""

import json
import os
import stat

import pytest

from tuneforge.cli import main
from tuneforge.data.io import write_records
from tuneforge.records import Example, Message


def _tree(root):
    return sorted((str(p.relative_to(root)), p.stat().st_mtime_ns) for p in root.rglob("*"))


@pytest.fixture
def files(tmp_path):
    """Malformed inputs, each a file in tmp_path/in."""
    d = tmp_path / "in"
    d.mkdir()
    good = Example(
        messages=[Message("user", "What is APR?"), Message("assistant", "The yearly cost of a loan.")], id="a"
    )
    write_records([good], d / "good.jsonl")
    (d / "latin1.jsonl").write_bytes(b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n')
    (d / "deep.json").write_text("[" * 100000)
    (d / "notjson.jsonl").write_text('{"messages": [}\n')
    (d / "config_latin1.yaml").write_bytes(b"train:\n  lr: 1e-4 # \xe9\n")
    (d / "not.gguf").write_text("hello")
    (d / "model_no_weights").mkdir()
    (d / "model_no_weights" / "config.json").write_text("{}")
    (d / "a_file").write_text("x")
    (d / "task1_str.json").write_text(json.dumps({"Definition": ["Add."], "Instances": ["2+2"]}))
    (d / "task2_int.json").write_text(
        json.dumps({"Definition": ["Add."], "Instances": [{"input": "2+2", "output": 4}]})
    )
    (d / "si.jsonl").write_text(json.dumps({"id": "s1", "instruction": "Say hi.", "instances": ["x"]}) + "\n")
    (d / "alpaca.json").write_text(
        json.dumps([{"instruction": "Hi", "input": "", "output": "Hello", "history": [["only the user"]]}])
    )
    (d / "build.yaml").write_text("filters: {decontaminate: []}\n")
    (d / "suite_list.yaml").write_text("- a\n- b\n")
    (d / "suite_str.yaml").write_text("healthcare:\n  risky: [just a string]\n")
    (d / "deep.yaml").write_text("a: " + "[" * 50000 + "\n")
    (d / "unclosed.yaml").write_text("train:\n  lr: [1\n")
    (d / "sni" / "train").mkdir(parents=True)
    (d / "sni" / "test").mkdir()
    (d / "sni" / "train" / "task1_bad.json").write_bytes(b'{"Definition": ["caf\xe9"], "Instances": []}')
    (d / "items_latin1.yaml").write_bytes(b"- id: a\n  question: caf\xe9\n")
    (d / "broken.jinja").write_text("{% for m in messages %}{{ m.content }}\n{% endfor")
    return d


CASES = [  # (id, argv with {d} = inputs folder and {o} = output folder, words the error must contain)
    ("non-utf8 data file", ["data", "stats", "{d}/latin1.jsonl"], ["not UTF-8", "latin1.jsonl:1", "Re-save"]),
    ("deeply nested JSON", ["data", "stats", "{d}/deep.json"], ["nested too deeply", "deep.json:1"]),
    ("invalid JSON line", ["data", "stats", "{d}/notjson.jsonl"], ["invalid JSON", "notjson.jsonl:1"]),
    ("non-utf8 config", ["train", "{d}/config_latin1.yaml"], ["not UTF-8", "config_latin1.yaml:2"]),
    ("negative lr", ["train", "configs/lora.yaml", "output_dir={o}", "train.lr=-1"], ["train.lr must be > 0"]),
    ("unknown device", ["train", "configs/lora.yaml", "output_dir={o}", "model.device=tpu"], ["device 'tpu'", "cpu"]),
    ("unknown dtype", ["train", "configs/lora.yaml", "output_dir={o}", "model.dtype=float8"], ["dtype 'float8'"]),
    ("NaN number", ["train", "configs/lora.yaml", "output_dir={o}", "train.lr=.nan"], ["NaN"]),
    ("negative temperature", ["eval", "generate", "output_dir={o}", "generation.temperature=-1"], ["temperature"]),
    ("top_p above 1", ["eval", "generate", "output_dir={o}", "generation.top_p=2"], ["top_p"]),
    ("not a GGUF file", ["eval", "generate", "output_dir={o}", "models=[m={d}/not.gguf]"], ["not a GGUF file"]),
    (
        "model dir without weights",
        ["eval", "generate", "output_dir={o}", "models=[m={d}/model_no_weights]"],
        ["no weights"],
    ),
    ("model that is a plain file", ["eval", "generate", "output_dir={o}", "models=[m={d}/a_file]"], ["is a file"]),
    ("bad models entry", ["eval", "generate", "output_dir={o}", "models=[=x]"], ["label=spec"]),
    (
        "safety run with a model that is a file",
        ["safety", "run", "output_dir={o}", "models=[m={d}/a_file]"],
        ["is a file"],
    ),
    ("train output_dir is a file", ["train", "configs/lora.yaml", "output_dir={d}/a_file"], ["is a file"]),
    (
        "decontam n-gram 0",
        ["data", "decontam", "{d}/good.jsonl", "{o}/x.jsonl", "--against", "seed:test", "--ngram", "0"],
        ["n-gram length", "≥ 1"],
    ),
    (
        "decontam n-gram -2",
        ["data", "decontam", "{d}/good.jsonl", "{o}/x.jsonl", "--against", "seed:test", "--ngram", "-2"],
        ["n-gram length"],
    ),
    ("dedup n-gram 0", ["data", "dedup", "{d}/good.jsonl", "{o}/x.jsonl", "--ngram", "0"], ["--ngram", "≥ 1"]),
    ("mix total -5", ["data", "mix", "{o}/x.jsonl", "{d}/good.jsonl", "--total", "-5"], ["--total", "≥ 1"]),
    (
        "mix total a million from one row",
        ["data", "mix", "{o}/x.jsonl", "{d}/good.jsonl", "--total", "1000000"],
        ["mix total", "100×"],
    ),
    ("mix ratio NaN", ["data", "mix", "{o}/x.jsonl", "{d}/good.jsonl", "--ratio", "nan"], ["--ratio"]),
    ("SuperNI instance that is a string", ["data", "stats", "{d}/task1_str.json"], ["Instances[0]", "task1_str.json"]),
    ("SuperNI output that is a number", ["data", "stats", "{d}/task2_int.json"], ["Instances[0]", "'output'"]),
    ("Self-Instruct instance that is a string", ["data", "stats", "{d}/si.jsonl"], ["instances[0]", "si.jsonl:1"]),
    (
        "broken Jinja chat template",
        ["train", "configs/lora.yaml", "output_dir={o}", "model.chat_template={d}/broken.jinja"],
        ["not valid Jinja", "broken.jinja:"],
    ),
    (
        "unknown chat template name",
        ["train", "configs/lora.yaml", "output_dir={o}", "model.chat_template=chatmll"],
        ["chatml"],
    ),
    (
        "hub id while offline",
        ["eval", "generate", "output_dir={o}", "models=[m=someorg/not-cached-model]"],
        ["someorg/not-cached-model", "internet"],
    ),
    (
        "Alpaca history turn that is not a pair",
        ["data", "stats", "{d}/alpaca.json"],
        ["history[0] must be a [user, assistant] pair", "alpaca.json:1"],
    ),
    (
        "build from a file that is not UTF-8",
        ["data", "build", "{d}/build.yaml", "output_dir={o}", "manual.files=[{d}/latin1.jsonl]"],
        ["not UTF-8", "latin1.jsonl:1"],
    ),
    (
        "build decontaminating against a missing file",
        [
            "data",
            "build",
            "{d}/build.yaml",
            "output_dir={o}",
            "manual.files=[{d}/good.jsonl]",
            "filters.decontaminate=[{d}/missing.jsonl]",
        ],
        ["missing.jsonl"],
    ),
    (
        "build with a NaN rating threshold",
        [
            "data",
            "build",
            "{d}/build.yaml",
            "output_dir={o}",
            "manual.files=[{d}/good.jsonl]",
            "manual.rating_threshold=.nan",
        ],
        ["NaN"],
    ),
    (
        "safety suite that is a list",
        ["safety", "run", "output_dir={o}", "suite={d}/suite_list.yaml"],
        ["safety suite must be", "suite_list.yaml"],
    ),
    (
        "safety suite items that are strings",
        ["safety", "run", "output_dir={o}", "suite={d}/suite_str.yaml"],
        ["healthcare.risky", "'prompt'"],
    ),
    ("YAML config nested too deeply", ["train", "{d}/deep.yaml"], ["nested too deeply", "deep.yaml"]),
    ("YAML config with an unclosed bracket", ["train", "{d}/unclosed.yaml"], ["invalid YAML", "unclosed.yaml:3"]),
    ("pairwise judge with one model", ["eval", "run", "output_dir={o}", "judge.pairwise=true"], ["two models"]),
    (
        "human ratings file that is missing",
        ["eval", "run", "output_dir={o}", "human_ratings={d}/missing.jsonl"],
        ["missing.jsonl"],
    ),
    (
        "multitask on a missing SuperNI folder",
        ["multitask", "run", "output_dir={o}", "superni_dir={d}/nowhere"],
        ["SuperNI directory not found"],
    ),
    (
        "multitask on a task file that is not UTF-8",
        ["multitask", "run", "output_dir={o}", "superni_dir={d}/sni"],
        ["not UTF-8", "task1_bad.json"],
    ),
    (
        "reflect on an items file that is not UTF-8",
        ["reflect", "run", "output_dir={o}", "items={d}/items_latin1.yaml"],
        ["not UTF-8", "items_latin1.yaml"],
    ),
    ("report on a directory that is no run", ["report", "{d}"], ["no metrics.json"]),
    (
        "train on a file that is not UTF-8",
        ["train", "configs/lora.yaml", "output_dir={o}", "data.train={d}/latin1.jsonl"],
        ["not UTF-8"],
    ),
]


@pytest.mark.parametrize("name,argv,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(name, argv, words, files, tmp_path, capsys):
    out = tmp_path / "out"
    before = _tree(tmp_path)
    code = main([a.format(d=files, o=out) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len([line for line in err if line.startswith("tuneforge: error:")]) == 1
    assert "Traceback" not in "\n".join(err)
    assert all(w in err[-1] for w in words), err[-1]
    assert _tree(tmp_path) == before and not out.exists()  # nothing created, nothing changed


def test_a_float_written_as_yaml_1_1_reads_it_is_a_number(tmp_path):
    from tuneforge.config import load_config
    from tuneforge.train.run_config import TrainRunConfig

    cfg = load_config(TrainRunConfig, "configs/lora.yaml", ["train.lr=1e-4", "train.warmup_ratio=.5"])
    assert cfg.train.lr == 1e-4 and cfg.train.warmup_ratio == 0.5
    (tmp_path / "c.yaml").write_text("train:\n  lr: 3e-5\n")
    assert load_config(TrainRunConfig, tmp_path / "c.yaml").train.lr == 3e-5


def test_an_override_error_is_blamed_on_the_override_not_the_file_line(tmp_path):
    from tuneforge.config import load_config
    from tuneforge.errors import ConfigError
    from tuneforge.train.run_config import TrainRunConfig

    (tmp_path / "c.yaml").write_text("train:\n  lr: 0.001\n")
    with pytest.raises(ConfigError, match=r"'train\.lr' \(command-line override\)"):
        load_config(TrainRunConfig, tmp_path / "c.yaml", ["train.lr=abc"])


def test_written_data_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_records([Example(messages=[Message("user", "q"), Message("assistant", "a")])], tmp_path / "x.jsonl")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.jsonl").stat().st_mode) == 0o644
    assert json.loads((tmp_path / "x.jsonl").read_text())["messages"][0]["content"] == "q"


@pytest.mark.parametrize("name,argv,words", CASES, ids=[c[0] for c in CASES])
def test_a_failed_command_leaves_an_earlier_run_in_the_same_place_untouched(name, argv, words, files, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    for f, text in {
        "config.yaml": "earlier: run\n",
        "metrics.json": "{}",
        "x.jsonl": "{}\n",
        "train_summary.json": "{}",
    }.items():
        (out / f).write_text(text)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()}
    assert main([a.format(d=files, o=out) for a in argv]) == 2
    capsys.readouterr()
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()} == before
