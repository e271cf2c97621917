"""Cases a blind fuzz of the CLI found after the first pass of issue 29 (a tester who had not read
the tests): each exits 2 with one line and leaves the folder as it was, or — for valid input that
was refused — now works."""

import pytest
from fuzzing import expect_user_error

from tuneforge.cli import main
from tuneforge.data.io import write_records

USAGE = [
    [],
    ["frobnicate"],
    ["data"],
    ["eval"],
    ["data", "convert"],
    ["data", "frob"],
    ["data", "stats", "--bogus", "x"],
]


@pytest.mark.parametrize("argv", USAGE, ids=lambda a: " ".join(a) or "no verb")
def test_a_usage_mistake_is_one_line_naming_the_help_to_read(argv, tmp_path, capsys):
    expect_user_error(argv, ["--help`"], tmp_path, capsys)


@pytest.fixture
def inputs(tmp_path):
    from conftest import make_examples
    from tuneforge.models import tiny_model, tiny_tokenizer

    d = tmp_path / "in"
    d.mkdir()
    write_records(make_examples(), d / "train.jsonl")
    tok = tiny_tokenizer()
    tiny_model(tok, hidden=32, layers=2).save_pretrained(d / "model")
    tok.save_pretrained(d / "model")
    (d / "raise.jinja").write_text('{{ raise_exception("nope") }}')
    (d / "yes.yaml").write_text(
        f"model: {{name: {d / 'model'}}}\ndata: {{train: {d / 'train.jsonl'}}}\ntrain:\n  packing: yes\n"
    )
    return d


TRAIN = ["train", "configs/lora.yaml", "model.name={d}/model", "model.dtype=float32", "data.train={d}/train.jsonl",
         "train.steps=1", "output_dir={o}"]  # fmt: skip
CASES = [  # (id, argv with {d} = inputs and {o} = an output path, words)
    ("mix ratio whose product overflows", ["data", "mix", "{o}.jsonl", "{d}/train.jsonl", "--ratio", "1e308"],
     ["--ratio"]),
    ("a template that refuses every conversation", [*TRAIN, "model.chat_template={d}/raise.jinja"],
     ["chat template refuses", "nope"]),
    ("a rule that is not (answer, record)", ["data", "build", "configs/data_preferences.yaml", "output_dir={o}",
     "preferences.scorer=rule", "preferences.rule=os.system"], ["does not take (answer, record)"]),
    ("augment a billion composites of 8 records", ["data", "augment", "{d}/train.jsonl", "{o}.jsonl",
     "augment.mosaic=1000000000"], ["augment.mosaic", "100×"]),
    ("answers longer than the model's context", ["eval", "generate", "output_dir={o}", "models=[m={d}/model]",
     "generation.max_new_tokens=100000", "data.test_per_domain=1"], ["max_new_tokens", "context of 512"]),
    ("YAML 1.1 yes for a boolean", ["train", "{d}/yes.yaml", "output_dir={o}"], ["train.packing", "'yes'"]),
    ("bootstrap of a trillion", ["eval", "run", "output_dir={o}", "bootstrap=1000000000000"], ["bootstrap"]),
    ("a key the filter step would ignore", ["data", "filter", "{d}/train.jsonl", "{o}.jsonl", "augment.mosaic=3"],
     ["data filter reads only filters.* and llm.*", "augment.mosaic"]),
    ("a key the augment step would ignore", ["data", "augment", "{d}/train.jsonl", "{o}.jsonl",
     "filters.min_response_words=3"], ["data augment reads only augment.* and llm.*", "filters.min_response_words"]),
    ("compare with a trillion resamples", ["eval", "compare", "a:x", "b:y", "--bootstrap", "1000000000000"],
     ["--bootstrap", "≤ 100000"]),
]  # fmt: skip


@pytest.mark.parametrize("name,argv,words", CASES, ids=[c[0] for c in CASES])
def test_found_by_the_blind_fuzz_is_one_line_and_writes_nothing(name, argv, words, inputs, tmp_path, capsys):
    expect_user_error(argv, words, tmp_path, capsys, d=inputs, o=tmp_path / "out")


def test_a_file_that_starts_with_a_utf8_bom_is_read(tmp_path, capsys):
    from conftest import make_examples

    write_records(make_examples(), tmp_path / "plain.jsonl")
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + (tmp_path / "plain.jsonl").read_bytes())
    assert main(["data", "stats", str(tmp_path / "bom.jsonl"), "--tokenizer", "none", "--json"]) == 0
    assert '"records": 8' in capsys.readouterr().out
