"""The single-step data verbs: each writes the kept records and every removed record, whole."""

import json

from tuneforge.cli import main
from tuneforge.data.file_steps import parse_source
from tuneforge.data.io import read_records, write_records
from tuneforge.records import EvalItem, Example, Message

LEAK = "Explain how compound interest differs from simple interest over ten years of monthly saving in a bank"


def _ex(i, q, a="A useful answer with several words.", domain="finance"):
    return Example(messages=[Message("user", q), Message("assistant", a)], id=f"m{i}", domain=domain)


def _rows(tmp_path):
    rows = [
        _ex(0, "What is APR on a credit card?"),
        _ex(1, "what is apr on a credit card"),  # exact dup
        _ex(2, "How do index funds work for a beginner saving monthly?"),
        _ex(3, "How do index funds work for a beginner saving each month?"),  # near dup
        _ex(4, LEAK + "?"),
        _ex(5, "Define liquidity.", "Define liquidity."),  # leak; parrot answer
        _ex(6, "Is a budget useful?", "Yes."),
        _ex(7, "Say <|im_end|> twice."),
    ]
    write_records(rows, tmp_path / "in.jsonl")
    return rows


def _removed(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_dedup_verb_keeps_first_and_writes_removed_records_whole(tmp_path, capsys):
    rows = _rows(tmp_path)
    assert main(["data", "dedup", str(tmp_path / "in.jsonl"), str(tmp_path / "out.jsonl"), "--threshold", "0.5"]) == 0
    report = json.loads(capsys.readouterr().out)
    kept = read_records(tmp_path / "out.jsonl")
    assert [r.id for r in kept] == ["m0", "m2", "m4", "m5", "m6", "m7"] and report["removed"] == 2
    removed = _removed(tmp_path / "out.removed.jsonl")
    assert [(r["id"], r["other"]) for r in removed] == [("m1", "m0"), ("m3", "m2")]
    assert Example.from_dict(removed[1]["record"]) == rows[3]  # nothing is lost


def test_decontam_verb_removes_the_planted_leak(tmp_path, capsys):
    _rows(tmp_path)
    write_records([EvalItem(messages=[Message("user", LEAK)], references=["-"], id="t1")], tmp_path / "test.jsonl")
    assert (
        main(
            [
                "data",
                "decontam",
                str(tmp_path / "in.jsonl"),
                str(tmp_path / "out.jsonl"),
                "--against",
                str(tmp_path / "test.jsonl"),
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["removed"] == 1 and len(read_records(tmp_path / "out.jsonl")) == 7
    (gone,) = _removed(tmp_path / "out.removed.jsonl")
    assert gone["id"] == "m4" and gone["other"] == "t1" and gone["record"]["messages"][0]["content"] == LEAK + "?"


def test_filter_verb_applies_length_and_format_checks_from_key_value_overrides(tmp_path, capsys):
    _rows(tmp_path)
    assert (
        main(
            [
                "data",
                "filter",
                str(tmp_path / "in.jsonl"),
                str(tmp_path / "out.jsonl"),
                "filters.min_response_words=2",
                "filters.dedup=false",
                "filters.decontaminate=[]",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["removed_by"] == {
        "length: response shorter than 2 words": 1,
        "format: response repeats the instruction": 1,
        "format: chat-template tokens in the text": 1,
    }
    assert [r.id for r in read_records(tmp_path / "out.jsonl")] == ["m0", "m1", "m2", "m3", "m4"]
    assert main(["data", "filter", str(tmp_path / "in.jsonl"), str(tmp_path / "o.jsonl"), "filters.dedupe=true"]) == 2
    assert "filters.dedup" in capsys.readouterr().err  # unknown key, with a suggestion


def test_mix_verb_weights_sources_and_rejects_partial_weights(tmp_path, capsys):
    write_records([_ex(i, f"A question {i}?") for i in range(10)], tmp_path / "a.jsonl")
    write_records([_ex(i + 100, f"B question {i}?", domain="legal") for i in range(4)], tmp_path / "b.jsonl")
    assert (
        main(
            [
                "data",
                "mix",
                str(tmp_path / "m.jsonl"),
                f"{tmp_path / 'a.jsonl'}:1",
                f"{tmp_path / 'b.jsonl'}:3",
                "--total",
                "20",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    mixed = read_records(tmp_path / "m.jsonl")
    assert len(mixed) == 20 and sum(r.domain == "legal" for r in mixed) == 15  # 3/4 of 20: b repeated
    capsys.readouterr()
    assert (
        main(["data", "mix", str(tmp_path / "m2.jsonl"), f"{tmp_path / 'a.jsonl'}:1", str(tmp_path / "b.jsonl")]) == 2
    )
    assert "weight to every source" in capsys.readouterr().err
    assert main(["data", "mix", str(tmp_path / "h.jsonl"), str(tmp_path / "a.jsonl"), "--ratio", "0.5"]) == 0
    assert len(read_records(tmp_path / "h.jsonl")) == 5
    assert parse_source("x.jsonl:2") == ("x.jsonl", 2.0) and parse_source("seed:train") == ("seed:train", None)


def test_augment_verb_appends_composites_and_synth_skips_filters(tmp_path, capsys):
    _rows(tmp_path)
    assert (
        main(
            [
                "data",
                "augment",
                str(tmp_path / "in.jsonl"),
                str(tmp_path / "aug.jsonl"),
                "augment.mosaic=3",
                "augment.mosaic_strategies=[format]",
            ]
        )
        == 0
    )
    out = read_records(tmp_path / "aug.jsonl")
    assert len(out) == 11 and all(r.meta["strategy"] == "format" for r in out[8:])
    cfg = tmp_path / "b.yaml"
    cfg.write_text(
        f"output_dir: {tmp_path / 'synth'}\nmanual: {{files: [{tmp_path / 'in.jsonl'}]}}\n"
        "augment: {token: 8, synonym_prob: 1.0}\n"
    )
    assert main(["data", "synth", str(cfg)]) == 0
    m = json.loads((tmp_path / "synth" / "manifest.json").read_text())
    assert m["removed"] == {} and m["stages"]["manual"] == 8 and m["final"] == 8 + m["stages"]["augment"]
    assert 0 < m["stages"]["augment"] < 8  # instructions with no word in the synonym table stay unchanged
