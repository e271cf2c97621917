import json

import pytest

from tuneforge.data.io import FORMATS, convert_file, detect_format, read_records, write_records
from tuneforge.errors import DataError, UnknownNameError
from tuneforge.records import Example, Message, PreferencePair

MULTI_TURN = Example(
    messages=[
        Message("system", "You advise travellers."),
        Message("user", "Visa?"),
        Message("assistant", "Check the embassy."),
        Message("user", "And ETIAS?"),
        Message("assistant", "Apply online."),
    ],
    id="t-1",
    domain="travel",
    task="visa",
    source="manual",
    meta={"kind": "fact"},
)


@pytest.mark.parametrize(
    "fmt,suffix", [("jsonl", ".jsonl"), ("alpaca", ".json"), ("alpaca", ".jsonl"), ("sharegpt", ".jsonl")]
)
def test_lossless_round_trip(tmp_path, examples, fmt, suffix):
    records = examples + [MULTI_TURN]
    path = write_records(records, tmp_path / f"out{suffix}", fmt)
    assert detect_format(path) == fmt
    assert read_records(path) == records


def test_openai_keeps_messages_only(tmp_path, examples):
    path = write_records(examples, tmp_path / "openai.jsonl", "openai")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert all(set(r) == {"messages"} for r in rows)
    assert [r.messages for r in read_records(path)] == [e.messages for e in examples]


def test_alpaca_input_field_is_split_back(tmp_path):
    src = tmp_path / "alpaca.json"
    src.write_text(json.dumps([{"instruction": "Summarise.", "input": "Long text.", "output": "Short."}]))
    [ex] = read_records(src)
    assert ex.instruction == "Summarise.\n\nLong text."
    out = write_records([ex], tmp_path / "again.json", "alpaca")
    assert json.loads(out.read_text()) == [{"instruction": "Summarise.", "input": "Long text.", "output": "Short."}]


def test_preference_pairs_round_trip(tmp_path):
    pairs = [PreferencePair(prompt=[Message("user", "q")], chosen="good", rejected="bad", id="p1")]
    path = write_records(pairs, tmp_path / "prefs.jsonl")
    assert read_records(path) == pairs


def test_superni_real_task_file_round_trips(tmp_path, shared_data):
    src = shared_data / "superni" / "train" / "task1451_drug_dose_extraction.json"
    records = read_records(src)
    original = json.loads(src.read_text())
    assert len(records) == len(original["Instances"]) == 200
    assert records[0].task == "task1451_drug_dose_extraction"
    assert records[0].messages[0].content == original["Definition"][0]
    out = write_records(records, tmp_path / src.name, "superni")  # the task name is the file name
    rebuilt = json.loads(out.read_text())
    assert rebuilt["Instances"] == original["Instances"]
    assert rebuilt["Definition"] == original["Definition"]
    assert rebuilt["Categories"] == original["Categories"]
    assert read_records(out) == records


def test_superni_multiple_references_are_kept(shared_data):
    records = read_records(shared_data / "superni" / "test" / "task039_qasc_find_overlapping_words.json")
    multi = [r for r in records if len(r.meta["references"]) > 1]
    assert multi, "task039 has instances with several reference outputs"


def test_self_instruct_seed_tasks_round_trip_exactly(tmp_path, shared_data):
    src = shared_data / "self_instruct" / "seed_tasks.jsonl"
    records = read_records(src)
    assert len(records) == 175
    assert sum(r.meta["is_classification"] for r in records) == 26
    out = write_records(records, tmp_path / "seed.jsonl", "self_instruct")
    original = [json.loads(line) for line in src.read_text().splitlines() if line.strip()]
    assert [json.loads(line) for line in out.read_text().splitlines()] == original


def test_malformed_line_names_file_line_and_field_and_writes_nothing(tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text(
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'
        '{"messages": [{"role": "robot", "content": "q"}]}\n'
    )
    dst = tmp_path / "out.jsonl"
    with pytest.raises(DataError) as exc:
        convert_file(src, dst, "alpaca")
    assert exc.value.line == 2 and exc.value.field == "messages[0].role"
    assert f"{src}:2" in str(exc.value) and "robot" in str(exc.value)
    assert not dst.exists() and not list(tmp_path.glob(".out.jsonl*"))


def test_invalid_json_reports_its_line(tmp_path):
    src = tmp_path / "broken.jsonl"
    src.write_text('{"prompt": "a", "completion": "b"}\n\n{"prompt": "a", "completion": \n')
    with pytest.raises(DataError, match=r"broken.jsonl:3"):
        read_records(src)


def test_json_array_error_reports_the_element_line(tmp_path):
    src = tmp_path / "alpaca.json"
    src.write_text('[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c"}\n]\n')
    with pytest.raises(DataError) as exc:
        read_records(src)
    assert exc.value.line == 3 and exc.value.field == "output"


def test_existing_output_survives_a_failed_conversion(tmp_path):
    dst = tmp_path / "keep.jsonl"
    dst.write_text("precious\n")
    src = tmp_path / "bad.jsonl"
    src.write_text('{"instruction": 1, "output": "x"}\n')
    with pytest.raises(DataError):
        convert_file(src, dst, "jsonl", overwrite=True)  # even when allowed to replace it
    assert dst.read_text() == "precious\n"


def test_alpaca_cannot_hold_non_alternating_turns(tmp_path):
    ex = Example(messages=[Message("user", "a"), Message("user", "b"), Message("assistant", "c")])
    with pytest.raises(DataError, match="alternate"):
        write_records([ex], tmp_path / "x.json", "alpaca")


def test_unknown_format_suggests(tmp_path, examples):
    with pytest.raises(UnknownNameError, match="Did you mean: sharegpt"):
        write_records(examples, tmp_path / "x.jsonl", "sharegtp")
    assert set(FORMATS) >= {"jsonl", "openai", "alpaca", "sharegpt", "superni", "self_instruct"}


def test_our_jsonl_loads_in_hf_datasets(tmp_path, examples):
    import datasets

    path = write_records(examples, tmp_path / "train.jsonl")
    ds = datasets.load_dataset("json", data_files=str(path), split="train")
    assert ds[0]["messages"][1] == {"role": "assistant", "content": examples[0].response}
    assert ds.num_rows == len(examples)
