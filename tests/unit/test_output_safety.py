"""Outputs never destroy what they did not create (issue 29): an export or a run refuses a folder
that holds the user's files, another command's output or its own inputs, leaves it byte-identical,
and a failed command leaves nothing new behind."""

import os
from pathlib import Path

import pytest
from fuzzing import expect_user_error, tree

from tuneforge.cli import main
from tuneforge.data.io import write_records


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished LoRA run of the tiny model, and a folder of the user's beside it."""
    from conftest import make_examples
    from tuneforge.models import tiny_model, tiny_tokenizer

    root = tmp_path_factory.mktemp("out")
    tok = tiny_tokenizer()
    tiny_model(tok, hidden=32, layers=2, seed=0).save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    write_records(make_examples(), root / "train.jsonl")
    (root / "lora.yaml").write_text(f"""output_dir: {root / "run"}
model: {{name: {root / "model"}, dtype: float32, device: cpu}}
data: {{train: {root / "train.jsonl"}}}
adapter: {{method: lora, r: 4, target_modules: [q_proj, v_proj]}}
train: {{steps: 2, batch_size: 4, lr: 0.01, warmup_ratio: 0.0, precision: fp32}}
""")
    assert main(["train", str(root / "lora.yaml")]) == 0
    (root / "mine").mkdir()
    (root / "mine" / "thesis.txt").write_text("four years of work\n")
    os.symlink(root / "run" / "adapter", root / "adapter_link")
    os.symlink(root / "mine", root / "mine_link")
    return root


EXPORT_OUTS = [  # (case, --out relative to the root, words the error holds)
    ("a folder of the user's", "mine", ["already holds files tuneforge did not write", "thesis.txt"]),
    ("a symlink to a folder of the user's", "mine_link", ["did not write"]),
    ("the run itself", "run", ["holds an input"]),
    ("the run, reached through ..", "run/adapter/..", ["holds an input"]),
    ("the folder above the run", ".", ["holds an input"]),
    ("the run's adapter", "run/adapter", ["is an input"]),
    ("a symlink to the run's adapter", "adapter_link", ["is an input"]),
    ("inside the run's adapter", "run/adapter/sub", ["inside a folder this command reads"]),
    ("the base model's folder", "model", ["did not write"]),
    ("a file", "train.jsonl", ["is a file"]),
]
MODES = [[], ["--merge"], ["--gguf"]]


@pytest.mark.parametrize("mode", MODES, ids=lambda m: " ".join(m) or "adapter")
@pytest.mark.parametrize("case,out,words", EXPORT_OUTS, ids=[c[0] for c in EXPORT_OUTS])
def test_export_refuses_an_out_it_did_not_make_and_leaves_it_byte_identical(case, out, words, mode, trained, capsys):
    argv = ["export", str(trained / "run"), "--out", str(trained / out), *mode]
    expect_user_error(argv, words, trained, capsys)
    expect_user_error([*argv, "--overwrite"], words, trained, capsys)  # --overwrite replaces only its own export


def test_export_of_an_unfinished_run_is_refused(trained, capsys, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained / "run", run)
    (run / ".incomplete").write_text("")
    expect_user_error(["export", str(run), "--merge"], ["did not finish"], tmp_path, capsys)


def test_a_second_export_needs_overwrite_and_replaces_only_an_export_of_the_same_run(trained, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained / "run", run)
    out = tmp_path / "exported"
    assert main(["export", str(run), "--out", str(out)]) == 0
    first = tree(out)
    expect_user_error(["export", str(run), "--out", str(out), "--merge"], ["--overwrite"], tmp_path, capsys)
    assert main(["export", str(run), "--out", str(out), "--merge", "--overwrite"]) == 0
    assert (out / "model.safetensors").exists() and tree(out) != first
    other = tmp_path / "other"
    shutil.copytree(trained / "run", other)
    expect_user_error(["export", str(other), "--out", str(out), "--overwrite"], ["another run"], tmp_path, capsys)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_a_failed_export_leaves_nothing_behind(trained, tmp_path, capsys):
    out = tmp_path / "new" / "deeper"
    expect_user_error(
        ["export", str(trained / "run"), "--out", str(out), "--gguf", "--quant", "q3"], ["--quant"], tmp_path, capsys
    )
    assert not (tmp_path / "new").exists()
    expect_user_error(
        ["export", str(trained / "run"), "--out", str(out), "--quant", "q8_0"], ["--gguf"], tmp_path, capsys
    )


def test_train_refuses_an_output_dir_holding_the_users_config(trained, tmp_path, capsys):
    user = tmp_path / "D"
    user.mkdir()
    text = (trained / "lora.yaml").read_text().replace(str(trained / "run"), str(user))
    (user / "config.yaml").write_text(text)
    expect_user_error(["train", str(user / "config.yaml"), f"output_dir={user}"], ["did not write", "config.yaml"],
                      tmp_path, capsys)  # fmt: skip
    assert (user / "config.yaml").read_text() == text


def test_a_run_that_fails_before_its_work_starts_leaves_no_folder(trained, tmp_path, capsys):
    (tmp_path / "not_a_model").mkdir()
    (tmp_path / "not_a_model" / "config.json").write_text("{}")
    out = tmp_path / "runs" / "r1"
    argv = ["train", str(trained / "lora.yaml"), f"output_dir={out}", f"model.name={tmp_path / 'not_a_model'}"]
    expect_user_error(argv, [], tmp_path, capsys)
    assert not (tmp_path / "runs").exists()


LABELS = ["../../x", "../x", "..", ".", "a/b", "/abs", "a\\b", "x y", "sp\u00e4t/../../z"]


@pytest.mark.parametrize("label", LABELS)
def test_a_model_label_cannot_name_files_outside_the_run(label, tmp_path, capsys):
    out = tmp_path / "eval"
    for verb in (["eval", "generate"], ["eval", "run"], ["safety", "run"]):
        argv = [*verb, f"output_dir={out}", f"models=[{label}=smollm2-135m-instruct]"]
        expect_user_error(argv, ["label", "letters, digits"], tmp_path, capsys)


@pytest.mark.parametrize(
    "name", ["../secret.txt", "../../secret.txt", "/etc/hostname", "sub/../../secret.txt", "link.md"]
)
def test_a_reflect_document_must_stay_inside_the_documents_folder(name, tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ok.md").write_text("# Fine\nA document.\n")
    (tmp_path / "secret.txt").write_text("a secret")
    os.symlink(tmp_path / "secret.txt", docs / "link.md")
    (tmp_path / "items.yaml").write_text(f"- id: a\n  domain: legal\n  instruction: Say it.\n  documents: ['{name}']\n")
    argv = [
        "reflect",
        "run",
        f"output_dir={tmp_path / 'out'}",
        f"items={tmp_path / 'items.yaml'}",
        f"documents_dir={docs}",
    ]
    expect_user_error(argv, ["outside the documents folder", name], tmp_path, capsys)


def test_evaluating_a_run_uses_the_runs_own_chat_template(trained, tmp_path, capsys):
    """The template the run trained on, not the base tokenizer's (issue 29); one that raises is a
    one-line error before any answer."""
    from tuneforge.chat_template import CHAT_TEMPLATES
    from tuneforge.evaluate.model_spec import load_eval_model

    run = tmp_path / "run"
    assert main(["train", str(trained / "lora.yaml"), f"output_dir={run}", "model.chat_template=alpaca"]) == 0
    _, tok, _ = load_eval_model(str(run), "float32", "cpu")
    _, base_tok, _ = load_eval_model(str(trained / "model"), "float32", "cpu")
    assert tok.chat_template == CHAT_TEMPLATES["alpaca"] != base_tok.chat_template
    for f in run.glob("adapter/*"):
        if f.name in ("chat_template.jinja", "tokenizer_config.json") and "alpaca" not in f.name:
            text = f.read_text().replace("{% for", "{{ raise_on_purpose() }}{% for", 1)
            f.write_text(text)
    argv = ["eval", "generate", f"output_dir={tmp_path / 'eval'}", f"models=[t={run}]", "data.test_per_domain=1"]
    expect_user_error(argv, ["the run's chat template"], tmp_path, capsys)


def test_eval_score_refuses_answers_made_from_another_test_set(trained, tmp_path, capsys):
    from tuneforge.records import EvalItem, Message

    items = [
        EvalItem([Message("user", f"Question {i}?")], [f"Answer {i}."], id=f"q{i}", domain="legal") for i in range(3)
    ]
    write_records(items, tmp_path / "mine.jsonl")
    out = tmp_path / "eval"
    model = f"models=[m={trained / 'model'}]"
    gen = [
        "eval",
        "generate",
        f"output_dir={out}",
        model,
        f"data.test={tmp_path / 'mine.jsonl'}",
        "generation.max_new_tokens=2",
    ]
    assert main(gen) == 0
    score = ["eval", "score", f"output_dir={out}", model, "metrics=[rouge_l]", "bootstrap=0"]
    expect_user_error([*score, "data.test=seed:test"], ["not made from data.test=seed:test", "q0"], tmp_path, capsys)
    assert main([*score, f"data.test={tmp_path / 'mine.jsonl'}"]) == 0


FILE_STEPS = {  # argv with {i} = the input file and {o} = the output path
    "convert": ["data", "convert", "{i}", "{o}", "--to", "sharegpt"],
    "dedup": ["data", "dedup", "{i}", "{o}"],
    "decontam": ["data", "decontam", "{i}", "{o}", "--against", "seed:test"],
    "filter": ["data", "filter", "{i}", "{o}", "filters.decontaminate=[]"],
    "augment": ["data", "augment", "{i}", "{o}", "augment.mosaic=2"],
    "mix": ["data", "mix", "{o}", "{i}"],
}
FILE_OUTS = [  # (case, output relative to the root, words)
    ("the input itself", "in/train.jsonl", ["is an input"]),
    ("a link to the input", "in/link.jsonl", ["is an input"]),
    ("the input through ..", "in/../in/train.jsonl", ["is an input"]),
    ("a folder", "in", ["is a folder"]),
    ("under a file", "in/train.jsonl/x.jsonl", ["is a file, not a folder"]),
]


@pytest.mark.parametrize("case,out,words", FILE_OUTS, ids=[c[0] for c in FILE_OUTS])
@pytest.mark.parametrize("step", sorted(FILE_STEPS))
def test_a_data_step_never_writes_over_its_input(step, case, out, words, tmp_path, capsys):
    from conftest import make_examples

    (tmp_path / "in").mkdir()
    write_records(make_examples(), tmp_path / "in" / "train.jsonl")
    os.symlink(tmp_path / "in" / "train.jsonl", tmp_path / "in" / "link.jsonl")
    argv = [a.format(i=tmp_path / "in" / "train.jsonl", o=tmp_path / out) for a in FILE_STEPS[step]]
    expect_user_error(argv, words, tmp_path, capsys)


@pytest.mark.parametrize("out", ["/dev/null", "/dev/full", "/dev/zero"])
def test_a_device_is_never_an_output_file(out, tmp_path, capsys):
    from conftest import make_examples

    write_records(make_examples(), tmp_path / "train.jsonl")
    for step in ("convert", "dedup", "mix"):
        argv = [a.format(i=tmp_path / "train.jsonl", o=out) for a in FILE_STEPS[step]]
        expect_user_error(argv, ["not a regular file"], tmp_path, capsys)
    assert Path(out).is_char_device()


@pytest.mark.parametrize(
    "code,words", [(28, ["disk is full"]), (30, ["read-only"]), (13, ["permission denied"]), (122, ["quota"])]
)
def test_a_full_or_read_only_disk_is_one_line_and_leaves_no_temporary_file(code, words, tmp_path, capsys, monkeypatch):
    import tuneforge.files
    from conftest import make_examples

    write_records(make_examples(), tmp_path / "train.jsonl")

    def fail(src, dst):
        raise OSError(code, os.strerror(code), str(dst))

    monkeypatch.setattr(tuneforge.files.os, "replace", fail)
    argv = ["data", "convert", str(tmp_path / "train.jsonl"), str(tmp_path / "out.jsonl"), "--to", "alpaca"]
    line = expect_user_error(argv, words, tmp_path, capsys)
    assert "out.jsonl" in line


@pytest.mark.parametrize("step", sorted(FILE_STEPS))
def test_a_data_step_replaces_an_existing_file_only_with_overwrite(step, tmp_path, capsys):
    from conftest import make_examples

    write_records(make_examples(), tmp_path / "train.jsonl")
    (tmp_path / "mine.jsonl").write_text("MY DATA\n")
    argv = [a.format(i=tmp_path / "train.jsonl", o=tmp_path / "mine.jsonl") for a in FILE_STEPS[step]]
    expect_user_error(argv, ["already exists", "--overwrite"], tmp_path, capsys)
    assert main([*argv, "--overwrite"]) == 0 and (tmp_path / "mine.jsonl").read_text() != "MY DATA\n"


@pytest.mark.parametrize("step", ["dedup", "decontam", "filter"])
def test_the_removed_records_file_is_neither_an_input_nor_a_file_of_the_users(step, tmp_path, capsys):
    from conftest import make_examples

    rows = make_examples()
    write_records(rows + rows, tmp_path / "z.removed.jsonl")  # the input is named like the sidecar
    argv = [a.format(i=tmp_path / "z.removed.jsonl", o=tmp_path / "z.jsonl") for a in FILE_STEPS[step]]
    expect_user_error([*argv, "--overwrite"], ["z.removed.jsonl", "is an input"], tmp_path, capsys)
    (tmp_path / "y.removed.jsonl").write_text("MINE\n")
    argv = [a.format(i=tmp_path / "z.removed.jsonl", o=tmp_path / "y.jsonl") for a in FILE_STEPS[step]]
    expect_user_error(argv, ["y.removed.jsonl", "already exists"], tmp_path, capsys)


def test_export_overwrite_never_takes_a_file_the_earlier_export_did_not_write(trained, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained / "run", run)
    assert main(["export", str(run)]) == 0
    (run / "export" / "notes").mkdir()
    (run / "export" / "notes" / "mine.txt").write_text("my notes")
    expect_user_error(["export", str(run), "--overwrite"], ["did not write", "mine.txt"], tmp_path, capsys)


def test_safety_suite_export_replaces_a_file_only_with_overwrite(tmp_path, capsys):
    (tmp_path / "mine.jsonl").write_text("MINE\n")
    argv = ["safety", "suite", "--export", str(tmp_path / "mine.jsonl")]
    expect_user_error(argv, ["already exists"], tmp_path, capsys)
    expect_user_error(["safety", "suite", "--export", str(tmp_path)], ["is a folder"], tmp_path, capsys)
    assert main([*argv, "--overwrite"]) == 0 and (tmp_path / "mine.jsonl").read_text() != "MINE\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["data", "convert", "{i}", "/proc/tuneforge-x.jsonl", "--to", "jsonl"],
        ["export", "{run}", "--out", "/proc/tuneforge-x"],
        ["safety", "suite", "--export", "/proc/tuneforge-x.jsonl"],
        ["train", "{cfg}", "output_dir=/proc/tuneforge-x"],
    ],
    ids=["convert", "export", "safety suite", "train"],
)
def test_an_output_where_nothing_can_be_created_is_one_line(argv, trained, tmp_path, capsys):
    from conftest import make_examples

    write_records(make_examples(), tmp_path / "in.jsonl")
    fmt = {"i": tmp_path / "in.jsonl", "run": trained / "run", "cfg": trained / "lora.yaml"}
    expect_user_error(argv, ["/proc"], tmp_path, capsys, **fmt)
