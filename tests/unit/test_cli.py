import json
from pathlib import Path

import pytest

from tuneforge.cli import main


def test_help_lists_verbs(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert all(verb in out for verb in ("demo", "data", "report"))


def test_demo_help_documents_every_config_key(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = capsys.readouterr().out
    assert "train.steps (int, default 200, ≥ 1)" in out and "adapter.method" in out


@pytest.mark.parametrize("verb", [v for v in __import__("tuneforge.cli").cli.VERBS if v.config])
def test_every_config_verb_lists_its_dataclass_keys_with_their_help(verb, capsys):
    import dataclasses
    import importlib

    module, _, name = verb.config.partition(":")
    cls = getattr(importlib.import_module(module), name)
    with pytest.raises(SystemExit) as exc:
        main([*verb.words.split(), "--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "config keys" in out
    for f in dataclasses.fields(cls):  # every top-level key, with the help text its metadata gives
        assert f.name in out, f.name
        if f.metadata.get("help") and not dataclasses.is_dataclass(f.type):
            assert " ".join(f.metadata["help"].split()[:3]) in " ".join(out.split()), (f.name, f.metadata["help"])


def _all_verb_words() -> list[list[str]]:
    """Every command line `tuneforge W1 [W2] --help` can take: the groups and each verb in them."""
    from tuneforge.cli import VERBS

    words = {tuple(v.words.split()[:i]) for v in VERBS for i in range(1, len(v.words.split()) + 1)}
    return [list(w) for w in sorted(words)]


@pytest.mark.parametrize("words", _all_verb_words(), ids=" ".join)
def test_every_verb_and_group_renders_its_help(words, capsys):
    """A '%' in one help string once crashed `eval --help` and `safety --help` (issue 29)."""
    with pytest.raises(SystemExit) as exit_:
        main([*words, "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and out.startswith("usage: tuneforge " + " ".join(words))
    assert "%%" not in out


def test_every_declared_verb_parses_to_its_command():
    from tuneforge.cli import VERBS, build_parser

    parser = build_parser()
    for v in VERBS:
        if v.run is None:
            continue
        needed = {
            "data convert": ["a", "b", "--to", "jsonl"],
            "data augment": ["a", "b"],
            "data filter": ["a", "b"],
            "data dedup": ["a", "b"],
            "data decontam": ["a", "b", "--against", "seed:test"],
            "data mix": ["out", "a"],
            "data stats": ["f"],
            "eval compare": ["a", "b"],
            "eval bench": ["m"],
            "export": ["r"],
            "report": ["r"],
            "data build": ["c.yaml"],
            "data synth": ["c.yaml"],
            "safety train-detector": ["--out", "d"],
        }.get(v.words, [])
        assert parser.parse_args([*v.words.split(), *needed]).fn is v.run, v.words


def test_data_convert_and_stats(tmp_path, capsys):
    src = tmp_path / "alpaca.json"
    src.write_text(
        json.dumps(
            [{"instruction": "Define APR.", "input": "", "output": "Yearly cost of credit.", "domain": "finance"}]
        )
    )
    dst = tmp_path / "out.jsonl"
    assert main(["data", "convert", str(src), str(dst), "--to", "sharegpt"]) == 0
    assert json.loads(dst.read_text())["conversations"][0] == {"from": "human", "value": "Define APR."}
    assert main(["data", "stats", str(dst), "--tokenizer", "none", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert stats["records"] == 1 and stats["domains"] == {"finance": 1}
    assert stats["response_length"]["max"] == 4


def test_malformed_jsonl_exits_2_with_one_line(tmp_path, capsys):
    src = tmp_path / "bad.jsonl"
    src.write_text('{"messages": [{"role": "user", "content": "q"}]}\n')
    assert main(["data", "convert", str(src), str(tmp_path / "o.jsonl"), "--to", "jsonl"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{src}:1" in err and "assistant turn" in err
    assert not (tmp_path / "o.jsonl").exists()


def test_bad_config_key_exits_2_with_suggestion(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("train:\n  stepz: 3\n")
    assert main(["demo", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{cfg}:2" in err and "Did you mean: steps" in err


def test_debug_flag_shows_the_traceback(tmp_path, capsys):
    assert main(["--debug", "data", "stats", str(tmp_path / "missing.jsonl"), "--tokenizer", "none"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_help_and_data_convert_start_without_torch(tmp_path):
    """The parser is built on every command: it must not import torch (seconds) — config keys are
    listed lazily, only when a verb's help is shown."""
    import subprocess
    import sys

    src = tmp_path / "a.jsonl"
    src.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n')
    code = (
        f"import sys\nfrom tuneforge.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"assert main(['data', 'convert', {str(src)!r}, {str(tmp_path / 'b.json')!r}, '--to', 'alpaca']) == 0\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"
    help_text = subprocess.run(
        [sys.executable, "-m", "tuneforge.cli", "train", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "train.lr (float, default 0.0002, > 0)" in help_text  # the lazy epilog still lists every key


def test_start_up_never_tells_the_user_to_enable_remote_code():
    """bitsandbytes (imported by peft when installed) logged "… Set trust_remote_code=True …" on
    every run on CPUs with AVX512-BF16 (issue 29); tuneforge never enables remote code."""
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", "import tuneforge.train.adapters, peft"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert "trust_remote_code" not in run.stderr and "kernels-community" not in run.stderr, run.stderr


@pytest.mark.parametrize("verb", [["eval", "generate"], ["eval", "run"], ["safety", "run"], ["multitask", "run"]])
def test_a_first_key_value_word_is_an_override_never_a_config_path(verb):
    """As a Path, `models=[s=openai:m@http://host/v1]` became `http:/host` (issue 29)."""
    from tuneforge.cli import _config_and_overrides, build_parser

    word = "models=[s=openai:m@http://127.0.0.1:9/v1]"
    args = build_parser().parse_args([*verb, word, "seed=3"])
    assert _config_and_overrides(args) == (None, [word, "seed=3"])
    args = build_parser().parse_args([*verb, "./runs/a=b.yaml", "seed=3"])  # a path, even with '=' in it
    assert _config_and_overrides(args) == (Path("./runs/a=b.yaml"), ["seed=3"])
