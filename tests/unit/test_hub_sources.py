"""`hf:` data sources through `datasets` (tuneforge.data.hub), offline: a dataset written with
`save_to_disk`, and a folder of parquet files read by `load_dataset` — the same call as for a hub id."""

import pytest

from tuneforge.data.hub import parse_hub_spec
from tuneforge.data.io import read_records
from tuneforge.errors import DataError
from tuneforge.records import Example, PreferencePair


@pytest.fixture
def alpaca_rows():
    return [
        {"instruction": f"Explain term {i}.", "input": "", "output": f"Term {i} means something specific."}
        for i in range(5)
    ]


def test_specs_name_a_dataset_its_config_and_split():
    assert parse_hub_spec("hf:org/name") == ("org/name", None, "train")
    assert parse_hub_spec("hf:org/name:test") == ("org/name", None, "test")
    assert parse_hub_spec("hf:org/name:train[:100]") == ("org/name", None, "train[:100]")
    assert parse_hub_spec("hf:org/name:legal") == ("org/name", "legal", "train")
    assert parse_hub_spec("hf:org/name:legal:validation") == ("org/name", "legal", "validation")
    with pytest.raises(DataError, match="hf:ORG/NAME"):
        parse_hub_spec("hf:org/name::test")


def test_a_saved_dataset_dict_loads_by_split_with_provenance(tmp_path, alpaca_rows):
    import datasets

    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(alpaca_rows), "test": datasets.Dataset.from_list(alpaca_rows[:2])}
    ).save_to_disk(tmp_path / "ds")
    train = read_records(f"hf:{tmp_path / 'ds'}", origin=True)
    test = read_records(f"hf:{tmp_path / 'ds'}:test")
    assert len(train) == 5 and len(test) == 2 and all(isinstance(r, Example) for r in train)
    assert train[3].messages[-1].content == "Term 3 means something specific."
    assert train[3].meta["source_file"] == f"hf:{tmp_path / 'ds'}" and train[3].meta["index"] == 3
    with pytest.raises(DataError, match="no split 'validation'"):
        read_records(f"hf:{tmp_path / 'ds'}:validation")


def test_a_parquet_folder_of_preference_pairs_loads_through_load_dataset(tmp_path):
    import datasets

    rows = [{"prompt": f"Q{i}?", "chosen": "A careful answer.", "rejected": "A careless one."} for i in range(4)]
    (tmp_path / "prefs" / "data").mkdir(parents=True)
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "prefs" / "data" / "train-00000-of-00001.parquet"))
    pairs = read_records(f"hf:{tmp_path / 'prefs'}")
    assert len(pairs) == 4 and all(isinstance(p, PreferencePair) for p in pairs)
    assert pairs[2].prompt[-1].content == "Q2?" and pairs[2].chosen == "A careful answer."


def test_a_dataset_with_no_known_columns_names_what_it_has(tmp_path):
    import datasets

    datasets.Dataset.from_list([{"question": "q", "answer": "a"}]).save_to_disk(tmp_path / "qa")
    with pytest.raises(DataError, match=r"columns \['answer', 'question'\].*instruction\+output"):
        read_records(f"hf:{tmp_path / 'qa'}")


def test_a_missing_dataset_is_a_data_error_with_the_spec(tmp_path):
    with pytest.raises(DataError, match="could not be loaded"):
        read_records(f"hf:{tmp_path / 'nothing-here'}")


def test_tuneforge_train_reads_an_hf_source_and_keys_resume_on_its_rows(tmp_path, tiny_lm, tiny_tok, examples, capsys):
    import datasets

    from tuneforge.cli import main
    from tuneforge.train.resume import data_digest

    tiny_lm.save_pretrained(tmp_path / "model")
    tiny_tok.save_pretrained(tmp_path / "model")
    rows = [ex.to_dict() for ex in examples]
    datasets.Dataset.from_list(rows).save_to_disk(tmp_path / "ds")
    spec = f"hf:{tmp_path / 'ds'}"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("adapter: {method: lora, r: 4}\n")
    args = ["train", str(cfg), f"output_dir={tmp_path / 'run'}", f"model.name={tmp_path / 'model'}", "model.dtype=float32",
            f"data.train={spec}", "data.eval=", "train.steps=2", "train.batch_size=2", "train.precision=fp32"]  # fmt: skip
    assert main(args) == 0
    before = data_digest(spec)
    datasets.Dataset.from_list(rows[:-1]).save_to_disk(tmp_path / "ds2")
    import shutil

    shutil.rmtree(tmp_path / "ds")
    shutil.move(tmp_path / "ds2", tmp_path / "ds")
    assert data_digest(spec) != before  # other rows: the run directory is not resumed with them
    assert main(args) == 2
    assert f"data {spec}: contents changed" in capsys.readouterr().err
