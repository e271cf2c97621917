import json
import os
import signal
import subprocess
import sys
import time

from test_llm import ScriptedServer

from tuneforge.cli import main
from tuneforge.data.io import read_records, write_records
from tuneforge.records import EvalItem, Example, Message

LEAK = "Explain how compound interest differs from simple interest over ten years of monthly saving in a bank"


def _ex(i, q, a="A useful answer.", rating=None):
    meta = {"rating": rating} if rating is not None else {}
    return Example(messages=[Message("user", q), Message("assistant", a)], id=f"m{i}", domain="finance", meta=meta)


def test_manual_import_rating_filter_dedup_and_decontamination(tmp_path, capsys):
    manual = [
        _ex(0, "What is APR?", rating=5),
        _ex(1, "What is APR?", rating=4),  # exact duplicate
        _ex(2, "Is a budget useful?", rating=1),  # below τ
        _ex(3, LEAK + " please?", rating=5),  # leaks the test prompt
        _ex(4, "How do index funds work?", rating=3),
        _ex(5, "Define liquidity.", "", rating=5),
    ]  # empty answer
    write_records(manual, tmp_path / "manual.jsonl")
    write_records([EvalItem(messages=[Message("user", LEAK)], references=["..."], id="t1")], tmp_path / "test.jsonl")
    cfg = tmp_path / "build.yaml"
    cfg.write_text(f"""output_dir: {tmp_path / "out"}
manual: {{files: [{tmp_path / "manual.jsonl"}], rating_threshold: 3}}
filters: {{decontaminate: [{tmp_path / "test.jsonl"}]}}
""")
    assert main(["data", "build", str(cfg)]) == 0
    out = tmp_path / "out"
    kept = read_records(out / "train.jsonl")
    assert [r.id for r in kept] == ["m0", "m4"]
    # every record names where it came from: the source, the file and the line it was read from
    assert [(r.source, r.meta["source_file"], r.meta["line"]) for r in kept] == [
        ("manual", str(tmp_path / "manual.jsonl"), 1),
        ("manual", str(tmp_path / "manual.jsonl"), 5),
    ]
    m = json.loads((out / "manifest.json").read_text())
    assert m["reports"]["manual"] == {"imported": 6, "rated": 6, "kept": 5, "q_manual": 5 / 6}
    assert m["removed"] == {"length": 1, "dedup": 1, "decontaminate": 1}
    assert m["stages"]["manual"] - sum(m["removed"].values()) == m["after_filters"] == m["final"] == 2
    removed = [json.loads(x) for x in (out / "removed.jsonl").read_text().splitlines()]
    assert {r["id"]: r["filter"] for r in removed} == {"m5": "length", "m1": "dedup", "m3": "decontaminate"}
    assert "Filters removed 3 records" in (out / "datacard.md").read_text()


def test_a_build_without_sources_is_a_clear_error(tmp_path, capsys):
    cfg = tmp_path / "b.yaml"
    cfg.write_text(f"output_dir: {tmp_path / 'o'}\n")
    assert main(["data", "build", str(cfg)]) == 2
    assert "enables no source" in capsys.readouterr().err


def test_a_killed_build_resumes_with_every_record_once_and_no_repeated_calls(tmp_path):
    server = ScriptedServer(script=[(200, 0.15)] * 1000)  # a slow teacher: time to kill the build part-way
    try:
        prompts = [
            EvalItem(messages=[Message("user", f"Question {i}?")], references=["-"], id=f"q{i}") for i in range(24)
        ]
        write_records(prompts, tmp_path / "prompts.jsonl")
        cfg = tmp_path / "build.yaml"
        cfg.write_text(f"""output_dir: {tmp_path / "out"}
llm: {{kind: openai, model: teacher, base_url: {server.url}, api_key_env: '', max_concurrency: 2, batch_size: 4}}
distill: {{prompts: {tmp_path / "prompts.jsonl"}}}
filters: {{decontaminate: []}}
""")
        cmd = [sys.executable, "-m", "tuneforge.cli", "data", "build", str(cfg)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while len(server.seen) < 10 and time.time() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        first_run = len(server.seen)
        assert 10 <= first_run < 24 and not (tmp_path / "out" / "train.jsonl").exists()
        assert subprocess.run(cmd, capture_output=True, text=True).returncode == 0
        asked = [s["body"]["messages"][-1]["content"] for s in server.seen]
        repeated = len(asked) - len(set(asked))
        assert repeated <= 4  # at most the one batch that was in flight when the process died
        records = read_records(tmp_path / "out" / "train.jsonl")
        assert sorted(r.id for r in records) == sorted(f"distill-q{i}" for i in range(24))
        assert all(
            r.source == "distill" and r.meta["generator"] and r.meta["prompt_id"] for r in records
        )  # generator provenance
        m = json.loads((tmp_path / "out" / "manifest.json").read_text())
        assert m["llm"]["cache_hits"] >= 8  # the batches committed before the kill were not asked again
        assert m["llm"]["calls"] + m["llm"]["cache_hits"] == 24
    finally:
        server.close()


def test_mix_weights_that_leave_out_a_present_source_are_an_error_not_a_silent_drop(tmp_path, capsys):
    write_records([_ex(i, f"Question {i} about loans?") for i in range(4)], tmp_path / "manual.jsonl")
    cfg = tmp_path / "b.yaml"
    cfg.write_text(f"""output_dir: {tmp_path / "o"}
manual: {{files: [{tmp_path / "manual.jsonl"}]}}
augment: {{mosaic: 2}}
mix: {{weights: {{manual: 1.0}}}}
""")
    assert main(["data", "build", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "no weight to the sources ['augment']" in err and "0 drops a source on purpose" in err
    assert main(["data", "build", str(cfg), "mix.weights={manual: 1.0, augment: 0}"]) == 0


def test_ratings_from_several_raters_are_averaged_and_a_bad_rating_is_a_clear_error(tmp_path, capsys):
    manual = [
        _ex(0, "What is APR?", rating=[4, 2]),
        _ex(1, "What is a bond?", rating="4.5"),
        _ex(2, "What is a loan?", rating=[2, 2, 3]),
    ]
    write_records(manual, tmp_path / "manual.jsonl")
    cfg = tmp_path / "b.yaml"
    cfg.write_text(
        f"output_dir: {tmp_path / 'o'}\nmanual: {{files: [{tmp_path / 'manual.jsonl'}], rating_threshold: 3}}\n"
        "filters: {decontaminate: []}\n"
    )
    assert main(["data", "build", str(cfg)]) == 0
    assert [r.id for r in read_records(tmp_path / "o" / "train.jsonl")] == ["m0", "m1"]  # means 3.0, 4.5; 2.33 out
    write_records([_ex(0, "What is APR?", rating="great")], tmp_path / "manual.jsonl")
    assert main(["data", "build", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "rating 'great'" in err and "manual.jsonl" in err and "list of numbers" in err
