"""Fuzzed boundaries (issue 29): a damaged model directory, an input that is no regular file, a
chat template that runs away, a thread count, a device or an attention the machine lacks, KTO's
batch size, non-finite mix ratios and weights, an object that is no metric, an unreachable `hf:`
dataset — each exits with code 2 and one line naming what, where and the fix, in seconds, with
nothing written (`fuzzing.expect_user_error`). Where the CLI is not the natural boundary, the
library function is called directly."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from fuzzing import expect_user_error

from tuneforge.errors import ConfigError, DataError, TuneforgeError


@contextmanager
def deadline(seconds: int):
    """Fail (instead of hanging the suite) when the block runs longer than `seconds`."""

    def fail(*_):
        raise TimeoutError(f"still running after {seconds} s: it would hang")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="session")
def good_model(tmp_path_factory, tiny_tok) -> Path:
    from tuneforge.models import tiny_model

    d = tmp_path_factory.mktemp("fuzz") / "model"
    tiny_model(tiny_tok, hidden=32).save_pretrained(d)
    tiny_tok.save_pretrained(d)
    return d


@pytest.fixture
def inputs(tmp_path, good_model) -> Path:
    """tmp_path/in: a good data file, a FIFO, a directory and a sparse file over the size limit."""
    from tuneforge.data.io import write_records
    from tuneforge.errors import MAX_TEXT_BYTES
    from tuneforge.records import Example, Message

    d = tmp_path / "in"
    d.mkdir()
    good = Example(messages=[Message("user", "What is APR?"), Message("assistant", "The yearly cost of a loan.")])
    write_records([good], d / "good.jsonl")
    os.mkfifo(d / "fifo.jsonl")
    (d / "dir.jsonl").mkdir()
    with open(d / "huge.jsonl", "wb") as f:
        f.truncate(MAX_TEXT_BYTES + 1)  # sparse: no disk used, but stat says 2 GiB + 1
    return d


# --- 1. model directories ------------------------------------------------------------------------


def _edit_config(**changes):
    def damage(m: Path):
        cfg = json.loads((m / "config.json").read_text())
        for k, v in changes.items():
            if v is _DROP:
                cfg.pop(k, None)
            else:
                cfg[k] = v
        (m / "config.json").write_text(json.dumps(cfg))

    return damage


_DROP = object()


def _write(name: str, data: bytes | str):
    def damage(m: Path):
        (m / name).unlink(missing_ok=True)
        (m / name).write_bytes(data.encode() if isinstance(data, str) else data)

    return damage


def _weights(edit):
    """Rewrite model.safetensors' bytes with `edit(bytes) -> bytes`."""

    def damage(m: Path):
        p = m / "model.safetensors"
        p.write_bytes(edit(p.read_bytes()))

    return damage


def _replace(name: str, kind: str):
    def damage(m: Path):
        (m / name).unlink()
        if kind == "dir":
            (m / name).mkdir()
        else:
            os.mkfifo(m / name)

    return damage


def _pickle_only(name: str):
    def damage(m: Path):
        (m / "model.safetensors").unlink()
        (m / name).write_bytes(b"\x80\x04K\x01.")  # a pickle: tuneforge must refuse it unread

    return damage


def _remove(name: str):
    return lambda m: (m / name).unlink()


def _tokenizer_template(text: str):
    def damage(m: Path):
        (m / "chat_template.jinja").unlink()
        cfg = json.loads((m / "tokenizer_config.json").read_text())
        (m / "tokenizer_config.json").write_text(json.dumps({**cfg, "chat_template": text}))

    return damage


NESTED_RANGE = "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}"

MODEL_DAMAGE = [  # (id, damage(model_dir), words the error line must hold)
    ("weights truncated to half", _weights(lambda b: b[: len(b) // 2]), ["damaged or truncated", "model.safetensors"]),
    ("weights truncated to 8 bytes", _weights(lambda b: b[:8]), ["damaged or truncated"]),
    ("weights empty", _weights(lambda b: b""), ["damaged or truncated", "0 bytes"]),
    ("weights header not JSON", _weights(lambda b: b[:8] + b"garbage!" + b[16:]), ["damaged or truncated"]),
    ("weights header length 2**62", _weights(lambda b: struct.pack("<Q", 2**62) + b[8:]), ["damaged or truncated"]),
    ("weights header past the end", _weights(lambda b: struct.pack("<Q", len(b)) + b[8:]), ["damaged or truncated"]),
    ("weights last byte cut", _weights(lambda b: b[:-1]), ["damaged or truncated"]),
    ("weights random bytes", _weights(lambda b: bytes(range(256)) * 4), ["damaged or truncated"]),
    ("weights a directory", _replace("model.safetensors", "dir"), ["not a regular file", "model.safetensors"]),
    ("weights a FIFO", _replace("model.safetensors", "fifo"), ["not a regular file"]),
    ("config not JSON", _write("config.json", "not json {"), ["not valid JSON", "config.json:1"]),
    ("config empty", _write("config.json", ""), ["not valid JSON", "config.json"]),
    ("config a list", _write("config.json", "[1, 2]"), ["JSON object", "list", "config.json"]),
    ("config a string", _write("config.json", '"llama"'), ["JSON object", "str"]),
    ("config null", _write("config.json", "null"), ["JSON object", "NoneType"]),
    ("config not UTF-8", _write("config.json", b'{"model_type": "caf\xe9"}'), ["not UTF-8", "config.json:1"]),
    ("config a directory", _replace("config.json", "dir"), ["directory", "config.json"]),
    ("config a FIFO", _replace("config.json", "fifo"), ["FIFO", "config.json"]),
    ("num_hidden_layers a string", _edit_config(num_hidden_layers="x"), ["num_hidden_layers='x'", "≥ 1"]),
    ("num_hidden_layers -1", _edit_config(num_hidden_layers=-1), ["num_hidden_layers=-1"]),
    ("num_hidden_layers 0", _edit_config(num_hidden_layers=0), ["num_hidden_layers=0"]),
    ("num_hidden_layers 1e5", _edit_config(num_hidden_layers=100000), ["num_hidden_layers=100000", "2 layers"]),
    ("num_hidden_layers 4 of 2", _edit_config(num_hidden_layers=4), ["num_hidden_layers=4", "random"]),
    ("num_hidden_layers a float", _edit_config(num_hidden_layers=2.0), ["num_hidden_layers=2.0"]),
    ("num_hidden_layers true", _edit_config(num_hidden_layers=True), ["num_hidden_layers=True"]),
    ("hidden_size doubled", _edit_config(hidden_size=64), ["differ in shape", "hidden_size"]),
    ("hidden_size 1e9", _edit_config(hidden_size=10**9), ["differ in shape"]),
    ("hidden_size a string", _edit_config(hidden_size="32"), ["hidden_size='32'"]),
    ("vocab_size smaller", _edit_config(vocab_size=100), ["differ in shape", "embed_tokens"]),
    ("vocab_size 0", _edit_config(vocab_size=0), ["vocab_size=0"]),
    ("num_attention_heads 0", _edit_config(num_attention_heads=0), ["num_attention_heads=0"]),
    ("intermediate_size null", _edit_config(intermediate_size=None), ["intermediate_size=None"]),
    ("rms_norm_eps a string", _edit_config(rms_norm_eps="tiny"), ["does not fit a llama model", "rms_norm_eps"]),
    ("unknown model_type", _edit_config(model_type="frobnicator"), ["'frobnicator'", "model_type"]),
    ("model_type missing", _edit_config(model_type=_DROP), ["no model_type"]),
    ("model_type a number", _edit_config(model_type=42), ["model_type 42"]),
    (
        "custom code (auto_map)",
        _edit_config(model_type="my_arch", auto_map={"AutoModelForCausalLM": "m.X"}),
        ["'my_arch' with auto_map", "trust_remote_code"],
    ),
    ("pickle-only weights (.bin)", _pickle_only("pytorch_model.bin"), ["pickle", "never unpickles", "safetensors"]),
    ("pickle-only weights (.pt)", _pickle_only("model.pt"), ["pickle", "model.pt"]),
    ("no weights", _remove("model.safetensors"), ["no weights"]),
    ("no config.json", _remove("config.json"), ["without config.json"]),
    ("runaway chat template", _write("chat_template.jinja", NESTED_RANGE), ["runs away", "chat_template.jinja"]),
    ("chat template not Jinja", _write("chat_template.jinja", "{% for m in messages %}"), ["not valid Jinja"]),
    ("chat template a FIFO", _replace("chat_template.jinja", "fifo"), ["FIFO", "chat_template.jinja"]),
    ("runaway template in tokenizer_config.json", _tokenizer_template(NESTED_RANGE), ["runs away", "tokenizer_config"]),
    ("tokenizer_config.json not JSON", _write("tokenizer_config.json", "["), ["tokenizer config is not valid JSON"]),
]

MODEL_VERBS = {  # how each verb is told the model; every one must refuse it before writing
    "eval": ["eval", "generate", "output_dir={o}", "models=[m={m}]", "device=cpu", "dtype=float32"],
    "train": ["train", "configs/lora.yaml", "output_dir={o}", "model.name={m}", "model.device=cpu"],
    "safety": ["safety", "run", "output_dir={o}", "models=[m={m}]", "device=cpu", "dtype=float32"],
    "stats": ["data", "stats", "{d}/good.jsonl", "--tokenizer", "{m}"],
}
TOKENIZER_DAMAGE = [
    ("tokenizer.json not JSON", _write("tokenizer.json", "garbage"), ["tokenizer", "JSONDecodeError"]),
    ("tokenizer.json a list", _write("tokenizer.json", "[]"), ["cannot load the tokenizer"]),
    ("tokenizer_config.json a list", _write("tokenizer_config.json", "[]"), ["cannot load the tokenizer"]),
]


def _damaged(inputs: Path, good_model: Path, damage) -> Path:
    m = inputs / "model"
    shutil.copytree(good_model, m)
    damage(m)
    return m


@pytest.mark.parametrize("verb", list(MODEL_VERBS))
@pytest.mark.parametrize("name,damage,words", MODEL_DAMAGE, ids=[c[0] for c in MODEL_DAMAGE])
def test_a_damaged_model_directory_is_one_line_before_anything_is_written(
    name, damage, words, verb, inputs, good_model, tmp_path, capsys
):
    m = _damaged(inputs, good_model, damage)
    start = time.monotonic()
    with deadline(60):
        expect_user_error(MODEL_VERBS[verb], words, tmp_path, capsys, d=inputs, o=tmp_path / "out", m=m)
    assert time.monotonic() - start < 30


@pytest.mark.parametrize("name,damage,words", TOKENIZER_DAMAGE, ids=[c[0] for c in TOKENIZER_DAMAGE])
def test_a_damaged_tokenizer_is_one_line(name, damage, words, inputs, good_model, tmp_path, capsys):
    m = _damaged(inputs, good_model, damage)
    expect_user_error(MODEL_VERBS["stats"], words, tmp_path, capsys, d=inputs, m=m)


def test_an_auto_map_beside_an_architecture_transformers_ships_loads_its_own_code(inputs, good_model):
    from tuneforge.models import load_model

    m = _damaged(inputs, good_model, _edit_config(auto_map={"AutoModelForCausalLM": "modeling_x.XForCausalLM"}))
    model, _ = load_model(str(m), "float32", "eager", "cpu")  # no modeling_x.py: only transformers' code ran
    assert type(model).__module__.startswith("transformers.models.llama")


def test_load_model_and_load_encoder_refuse_damaged_directories(inputs, good_model):
    from tuneforge.models import load_encoder, load_model

    m = _damaged(inputs, good_model, _weights(lambda b: b[:100]))
    with pytest.raises(DataError, match="damaged or truncated"):
        load_model(str(m), "float32", "sdpa", "cpu")
    with pytest.raises(DataError, match="damaged or truncated"):
        load_encoder(str(m))
    with pytest.raises(TuneforgeError, match="is a file"):
        load_encoder(str(m / "config.json"))


def test_a_good_model_still_loads_and_its_checks_are_quick(good_model):
    from tuneforge.models import check_model_dir, load_model

    check_model_dir(good_model)  # imports transformers once
    start = time.monotonic()
    check_model_dir(good_model)
    assert time.monotonic() - start < 1.0
    model, tok = load_model(str(good_model), "float32", "eager", "cpu")
    assert model.config.num_hidden_layers == 2 and tok.pad_token is not None


# --- devices and attention -----------------------------------------------------------------------


def _no_cuda():
    import torch

    return pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")


DEVICE_CASES = [
    ("eval on cuda", ["eval", "generate", "output_dir={o}", "models=[m={m}]", "device=cuda"], ["'cuda'", "no CUDA GPU"]),
    ("eval on cuda:0", ["eval", "generate", "output_dir={o}", "models=[m={m}]", "device=cuda:0"], ["'cuda:0'"]),
    ("eval on cuda:7", ["eval", "generate", "output_dir={o}", "models=[m={m}]", "device=cuda:7"], ["'cuda:7'"]),
    ("train on cuda", ["train", "configs/lora.yaml", "output_dir={o}", "model.name={m}", "model.device=cuda"],
     ["no CUDA GPU", "model.device=cpu"]),
    ("train on cuda:1", ["train", "configs/lora.yaml", "output_dir={o}", "model.name={m}", "model.device=cuda:1"],
     ["'cuda:1'"]),
    ("train bf16 on cuda", ["train", "configs/lora.yaml", "output_dir={o}", "model.name={m}", "model.device=cuda",
                            "model.dtype=bfloat16"], ["no CUDA GPU"]),
    ("safety on cuda", ["safety", "run", "output_dir={o}", "models=[m={m}]", "device=cuda"], ["no CUDA GPU"]),
]  # fmt: skip


@_no_cuda()
@pytest.mark.parametrize("name,argv,words", DEVICE_CASES, ids=[c[0] for c in DEVICE_CASES])
def test_a_gpu_this_machine_lacks_is_one_line(name, argv, words, inputs, good_model, tmp_path, capsys):
    expect_user_error(argv, words, tmp_path, capsys, o=tmp_path / "out", m=good_model)


def test_mps_without_an_apple_gpu_is_a_config_error():
    import torch

    from tuneforge.hardware import check_device_available

    if torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    with pytest.raises(ConfigError, match="'mps' is not available"):
        check_device_available("mps")


ATTENTION_CASES = [
    (attn, ["train", "configs/lora.yaml", "output_dir={o}", "model.name={m}", "model.device=cpu",
            f"model.attn_implementation={attn}"], [attn, "CUDA GPUs only", "sdpa"])
    for attn in ("flash_attention_2", "flash_attention_3")
]  # fmt: skip


@pytest.mark.parametrize("name,argv,words", ATTENTION_CASES, ids=[c[0] for c in ATTENTION_CASES])
def test_flash_attention_on_cpu_is_one_line(name, argv, words, good_model, tmp_path, capsys):
    expect_user_error(argv, words, tmp_path, capsys, o=tmp_path / "out", m=good_model)


def test_flash_attention_without_its_package_is_a_config_error(monkeypatch):
    import importlib.util

    from tuneforge.models import check_attention

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ConfigError, match="needs the package flash_attn"):
        check_attention("flash_attention_2", "cuda")
    check_attention("sdpa", "cpu")  # the others need nothing


# --- 2. inputs that are not regular files ------------------------------------------------------------

NOT_FILES = {  # spec → words of the error
    "/dev/zero": ["not a regular file", "character device", "/dev/zero"],
    "/dev/null": ["not a regular file", "character device"],
    "{d}/fifo.jsonl": ["FIFO", "fifo.jsonl"],
    "{d}/dir.jsonl": ["directory", "dir.jsonl"],
    "{d}/huge.jsonl": ["too large", "2 GiB limit", "huge.jsonl"],
}
READERS = {  # verb → argv reading the input X
    "data stats": ["data", "stats", "X", "--tokenizer", "none"],
    "data convert": ["data", "convert", "X", "{o}/y.jsonl", "--to", "jsonl"],
    "data dedup": ["data", "dedup", "X", "{o}/y.jsonl"],
    "data decontam": ["data", "decontam", "{d}/good.jsonl", "{o}/y.jsonl", "--against", "X"],
    "data mix": ["data", "mix", "{o}/y.jsonl", "X"],
    "data filter": ["data", "filter", "X", "{o}/y.jsonl"],
    "train data": ["train", "configs/lora.yaml", "output_dir={o}", "model.name={m}", "data.train=X"],
    "train config": ["train", "X"],
    "eval test set": ["eval", "generate", "output_dir={o}", "models=[m={m}]", "data.test=X"],
    "safety suite": ["safety", "run", "output_dir={o}", "models=[m={m}]", "suite=X"],
    "reflect items": ["reflect", "run", "output_dir={o}", "items=X"],
}
READER_CASES = [pytest.param(verb, spec, id=f"{verb}: {spec}") for verb in READERS for spec in NOT_FILES]


@pytest.mark.parametrize("verb,spec", READER_CASES)
def test_an_input_that_is_no_regular_file_is_one_line_in_seconds(verb, spec, inputs, good_model, tmp_path, capsys):
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero here")
    argv = [a.replace("X", spec) if a == "X" or a.endswith("=X") else a for a in READERS[verb]]
    with deadline(60):  # a FIFO used to block forever, /dev/zero to fill the memory
        expect_user_error(argv, NOT_FILES[spec], tmp_path, capsys, d=inputs, o=tmp_path / "out", m=good_model)


def test_read_text_refuses_what_is_no_regular_file_without_opening_it(inputs, tmp_path):
    from tuneforge.errors import read_text

    with deadline(10):
        for spec, words in NOT_FILES.items():
            with pytest.raises(DataError) as err:
                read_text(spec.format(d=inputs), "data file")
            assert all(w in str(err.value) for w in words), str(err.value)
    (tmp_path / "link").symlink_to("/dev/zero")
    with pytest.raises(DataError, match="character device"):
        read_text(tmp_path / "link")
    with pytest.raises(DataError, match="not found"):
        read_text(inputs / "good.jsonl" / "below-a-file")
    with pytest.raises(DataError, match="cannot be read"):
        read_text(tmp_path / ("x" * 5000))
    assert read_text(inputs / "good.jsonl").startswith("{")


# --- 3. chat templates -------------------------------------------------------------------------

RUNAWAY_TEMPLATES = [  # (id, template, words)
    ("nested range 1e5 x 1e5", NESTED_RANGE, ["runs away", "range()"]),
    ("nested range 1e6 x 1e6", NESTED_RANGE.replace("100000", "10**6"), ["runs away", "range()"]),
    ("triple nested range", "{% for a in range(99) %}{% for b in range(9999) %}{% for c in range(9999) %}"
                            "{% endfor %}{% endfor %}{% endfor %}", ["runs away"]),
    ("huge power", "{{ 10 ** (10 ** 10) }}", ["runs away", "10**10000000000"]),
    ("string repeated 1e8 times", "{% for c in 'x' * 10**8 %}{% endfor %}", ["runs away", "repeats"]),
    ("messages repeated 1e7 times", "{% for m in messages * 10**7 %}{{ m.content }}{% endfor %}", ["repeats"]),
    ("namespace doubling", "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
                           "{% endfor %}{{ ns.s }}", ["runs away", "builds a value"]),
    ("megabytes of output", "{% for a in range(99999) %}{{ 'y' * 100 }}{% endfor %}", ["runs away", "characters"]),
    ("recursive macro", "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", ["fails", "RecursionError"]),
    ("string plus number", "{% for m in messages %}{{ m.content + 1 }}{% endfor %}", ["fails", "TypeError"]),
    ("division by zero", "{{ 1 / 0 }}", ["fails", "ZeroDivisionError"]),
    ("attribute of undefined", "{{ nothing.here.at_all }}", ["fails", "UndefinedError"]),
    ("one range of 1e9", "{% for a in range(10**9) %}{% endfor %}", ["runs away", "range()"]),
    ("unclosed block", "{% for m in messages %}{{ m.content }}", ["not valid Jinja", "t.jinja:1"]),
]  # fmt: skip


@pytest.mark.parametrize("name,template,words", RUNAWAY_TEMPLATES, ids=[c[0] for c in RUNAWAY_TEMPLATES])
def test_a_chat_template_that_runs_away_or_fails_is_one_line(
    name, template, words, inputs, good_model, tmp_path, capsys
):
    (inputs / "t.jinja").write_text(template)
    argv = ["train", "configs/lora.yaml", "output_dir={o}", "model.name={m}", "model.chat_template={d}/t.jinja"]
    with deadline(60):
        line = expect_user_error(
            argv, [*words, "t.jinja"], tmp_path, capsys, d=inputs, o=tmp_path / "out", m=good_model
        )
    assert "model.chat_template" in line


GOOD_TEMPLATES = [
    "{% for m in messages %}{{ m.role }}: {{ m.content }}{% endfor %}",
    "{% if messages[0].role == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
    "{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}",
    "{% for m in messages %}{% if loop.index > 3 %}{% break %}{% endif %}{{ m.content }}{% endfor %}",
    "{% for m in messages %}{% generation %}{{ m.content }}{% endgeneration %}{% endfor %}",
    "{{ bos_token }}{{ messages | tojson }}{{ strftime_now('%Y') }}",
    "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}",
    "{% for i in range(messages | length) %}{{ messages[i].content }}{% endfor %}",
]


@pytest.mark.parametrize("template", GOOD_TEMPLATES)
def test_ordinary_chat_templates_pass_the_probe(template):
    from tuneforge.chat_template import check_template_text

    check_template_text(template, "t.jinja")


def test_the_shipped_templates_pass_the_probe_quickly():
    from tuneforge.chat_template import CHAT_TEMPLATES, check_template_text
    from tuneforge.models import CHATML_TEMPLATE

    start = time.monotonic()
    for text in [*CHAT_TEMPLATES.values(), CHATML_TEMPLATE]:
        check_template_text(text, "shipped")
    assert time.monotonic() - start < 2


# --- 4. thread counts --------------------------------------------------------------------------

BAD_THREADS = [("TUNEFORGE_THREADS", v) for v in ("99999", "0", "-1", "abc", "1.5", "1e3", "4,x", "²", "9" * 40)] + [
    ("OMP_NUM_THREADS", v) for v in ("99999", "0", "many", "4,99999")
]


@pytest.mark.parametrize("var,value", BAD_THREADS, ids=[f"{v}={x[:12]}" for v, x in BAD_THREADS])
def test_a_bad_thread_count_is_a_config_error_naming_the_variable(var, value, monkeypatch):
    from tuneforge.hardware import set_threads, thread_setting

    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError, match=var):
        thread_setting(var)
    with pytest.raises(ConfigError, match="whole number from 1 to"):
        set_threads()


@pytest.mark.parametrize("value,expected", [("1", 1), (" 2 ", 2), ("2,1", 2), ("", None)])
def test_usable_thread_counts_are_read(value, expected, monkeypatch):
    from tuneforge.hardware import thread_setting

    monkeypatch.setenv("TUNEFORGE_THREADS", value)
    assert thread_setting("TUNEFORGE_THREADS") == expected


THREAD_CLI_CASES = [
    pytest.param(var, value, verb, id=f"{' '.join(verb)} {var}={value}")
    for var, value in (("TUNEFORGE_THREADS", "99999"), ("TUNEFORGE_THREADS", "abc"), ("OMP_NUM_THREADS", "99999"))
    for verb in (["env", "--no-measure"], ["train", "configs/lora.yaml", "output_dir={o}"])
]


@pytest.mark.parametrize("var,value,verb", THREAD_CLI_CASES)
def test_a_bad_thread_count_is_one_line_from_the_cli(var, value, verb, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(var, value)
    with deadline(30):
        expect_user_error(verb, [var, "whole number"], tmp_path, capsys, o=tmp_path / "out")


# --- 5. KTO --------------------------------------------------------------------------------------


def _pairs(n: int):
    from tuneforge.records import Message, PreferencePair

    return [
        PreferencePair(prompt=[Message("user", f"Question {i}?")], chosen=f"Good answer {i}.", rejected=f"Bad {i}.")
        for i in range(n)
    ]


@pytest.mark.parametrize("n_pairs,batch_size", [(3, 1), (1, 1), (2, 3), (3, 5), (1, 4)])
def test_kto_batches_never_loop_whatever_the_batch_size(n_pairs, batch_size, tiny_tok):
    from itertools import islice

    from tuneforge.train.kto import kto_batches, unpair

    with deadline(20):  # every batch of one answer used to be skipped: an endless loop
        batches = list(islice(kto_batches(unpair(_pairs(n_pairs)), tiny_tok, batch_size, 64), 6))
    assert len(batches) == 6
    for b in batches:
        k = int(b["n"])
        assert 1 <= k <= batch_size and b["input_ids"].shape[0] == 2 * k and b["desirable"].shape == (k,)


def test_kto_with_one_answer_per_batch_pairs_it_with_another_prompts_answer(tiny_tok):
    from tuneforge.train.kto import kto_batches, unpair

    rows = unpair(_pairs(3))
    batch = next(kto_batches(rows, tiny_tok, 1, 64))
    answer, mismatched = (tiny_tok.decode(batch["input_ids"][i], skip_special_tokens=True) for i in (0, 1))
    question = answer.split("?")[0]
    assert mismatched.startswith(question) and mismatched.split("assistant")[-1] != answer.split("assistant")[-1]


def test_kto_without_pairs_is_a_data_error(tiny_tok):
    from tuneforge.train.kto import kto_batches

    with pytest.raises(DataError, match="no pairs"):
        next(kto_batches([], tiny_tok, 4))


def test_kto_trains_with_batch_size_one_from_the_cli(good_model, tmp_path, capsys):
    from tuneforge.cli import main

    argv = ["train", "configs/kto.yaml", f"output_dir={tmp_path / 'run'}", f"model.name={good_model}",
            "model.dtype=float32", "train.precision=fp32", "train.batch_size=1", "train.steps=2",
            "train.max_length=64"]  # fmt: skip
    with deadline(120):
        assert main(argv) == 0, capsys.readouterr().err[-2000:]
    assert (tmp_path / "run" / "train_summary.json").exists()


KTO_CASES = [
    ("negative desirable_weight", "objective.desirable_weight=-1", ["desirable_weight", "> 0"]),
    ("zero undesirable_weight", "objective.undesirable_weight=0", ["undesirable_weight", "> 0"]),
    ("NaN desirable_weight", "objective.desirable_weight=.nan", ["desirable_weight"]),
    ("batch_size 0", "train.batch_size=0", ["batch_size"]),
]


@pytest.mark.parametrize("name,override,words", KTO_CASES, ids=[c[0] for c in KTO_CASES])
def test_kto_settings_that_cannot_train_are_one_line(name, override, words, good_model, tmp_path, capsys):
    argv = ["train", "configs/kto.yaml", "output_dir={o}", "model.name={m}", override]
    with deadline(60):
        expect_user_error(argv, words, tmp_path, capsys, o=tmp_path / "out", m=good_model)


# --- 6a. data mix ----------------------------------------------------------------------------------

MIX_CASES = [
    ("ratio inf", ["--ratio", "inf"], ["--ratio", "finite"]),
    ("ratio -inf", ["--ratio=-inf"], ["--ratio"]),
    ("ratio 1e400", ["--ratio", "1e400"], ["--ratio", "finite"]),
    ("ratio nan", ["--ratio", "nan"], ["--ratio", "nan"]),
    ("ratio 0", ["--ratio", "0"], ["--ratio", "> 0"]),
    ("ratio -1", ["--ratio=-1"], ["--ratio"]),
    ("ratio 1e300", ["--ratio", "1e300"], ["mix total"]),
]


@pytest.mark.parametrize("name,flags,words", MIX_CASES, ids=[c[0] for c in MIX_CASES])
def test_a_mix_ratio_that_is_not_a_finite_positive_number_is_one_line(name, flags, words, inputs, tmp_path, capsys):
    argv = ["data", "mix", "{o}/y.jsonl", "{d}/good.jsonl", *flags]
    expect_user_error(argv, words, tmp_path, capsys, d=inputs, o=tmp_path / "out")


MIX_WEIGHT_CASES = [
    ("an infinite weight", ["{d}/good.jsonl:" + "9" * 400, "{d}/good.jsonl:1"], ["mixing weights", "inf"]),
    ("weights summing past 1e308", ["{d}/good.jsonl:" + "9" * 308, "{d}/good.jsonl:" + "9" * 308], ["below 1e308"]),
    ("all weights zero", ["{d}/good.jsonl:0", "{d}/good.jsonl:0"], ["positive sum"]),
]


@pytest.mark.parametrize("name,sources,words", MIX_WEIGHT_CASES, ids=[c[0] for c in MIX_WEIGHT_CASES])
def test_mix_weights_that_cannot_be_mixed_are_one_line(name, sources, words, inputs, tmp_path, capsys):
    expect_user_error(["data", "mix", "{o}/y.jsonl", *sources], words, tmp_path, capsys, d=inputs, o=tmp_path / "o")


@pytest.mark.parametrize(
    "weights", [[float("nan"), 1.0], [float("inf"), 1.0], [1e308, 1e308], [-1.0, 2.0], [float("-inf"), 1.0]]
)
def test_mix_counts_refuses_non_finite_weights(weights):
    from tuneforge.data.mix import mix_counts

    with pytest.raises(ConfigError, match="mixing weights"):
        mix_counts([3, 4], weights)


def test_mix_total_is_round_ratio_times_n_for_finite_ratios():
    from tuneforge.data.mix import mix_total

    assert mix_total(0.5, 10) == 5 and mix_total(2, 3) == 6
    for bad in (float("inf"), float("nan"), 0.0, -2.0):
        with pytest.raises(ConfigError, match="--ratio"):
            mix_total(bad, 10)


# --- 6b. metrics named by a dotted path ---------------------------------------------------------------

USER_METRICS = """
not_callable = 3

def no_args():
    return {"score": 1.0}

def only_predictions(predictions):
    return {"score": 1.0}

def returns_list(**kw):
    return [1.0]

def no_score(**kw):
    return {"per_item": None}

def text_score(**kw):
    return {"score": "high", "per_item": None}

def short_per_item(predictions, **kw):
    return {"score": 1.0, "per_item": [1.0]}

def text_per_item(predictions, **kw):
    return {"score": 1.0, "per_item": ["good"] * len(predictions)}

def raises(**kw):
    raise ValueError("boom\\nsecond line")

def good(predictions, references, instructions, encoder, **options):
    return {"score": 0.5, "per_item": [0.5] * len(predictions), "signature": "good"}
"""


@pytest.fixture
def user_metrics(tmp_path, monkeypatch) -> str:
    """A module of would-be metrics on sys.path, outside the folder the CLI runs in; returns its name."""
    d = tmp_path.parent / f"{tmp_path.name}-metrics"
    d.mkdir(exist_ok=True)
    (d / "fuzz_user_metrics.py").write_text(USER_METRICS)
    monkeypatch.syspath_prepend(str(d))
    return "fuzz_user_metrics"


METRIC_CASES = [  # refused before any model answers: eval run checks metrics first
    ("os:getcwd (no arguments)", "os:getcwd", ["metric 'os:getcwd'", "cannot take the metric arguments"]),
    ("math:pi (a number)", "math:pi", ["metric 'math:pi' is a float, not a function"]),
    ("json:dumps (other arguments)", "json:dumps", ["cannot take the metric arguments"]),
    ("builtins:len", "builtins:len", ["cannot take the metric arguments"]),
    ("a module that does not exist", "no_such_module_xyz:f", ["cannot import metric"]),
    ("an attribute that does not exist", "{u}:missing", ["cannot import metric", "missing"]),
    ("a user object that is no function", "{u}:not_callable", ["is a int, not a function"]),
    ("a user function without arguments", "{u}:no_args", ["cannot take the metric arguments", "def my_metric"]),
    ("a user function without references", "{u}:only_predictions", ["cannot take the metric arguments"]),
    ("a misspelt shipped metric", "rouge", ["unknown metric 'rouge'", "rouge_l"]),
    ("an empty name", "''", ["unknown metric"]),
]


@pytest.mark.parametrize("name,metric,words", METRIC_CASES, ids=[c[0] for c in METRIC_CASES])
def test_a_metric_that_cannot_run_is_one_line_before_answering(name, metric, words, user_metrics, tmp_path, capsys):
    argv = ["eval", "run", "output_dir={o}", f"metrics=[{metric}]"]
    expect_user_error(argv, [w.format(u=user_metrics) for w in words], tmp_path, capsys, o=tmp_path / "out",
                      u=user_metrics)  # fmt: skip


CALL_CASES = [  # found only when the function runs: named, never a traceback
    ("returns_list", ["returned a list", "numeric 'score'"]),
    ("no_score", ["returned a dict with keys ['per_item']"]),
    ("text_score", ["numeric 'score'"]),
    ("short_per_item", ["list of 3 numbers"]),
    ("text_per_item", ["list of 3 numbers"]),
    ("raises", ["failed: ValueError: boom", "Fix the function"]),
]


@pytest.mark.parametrize("fn,words", CALL_CASES, ids=[c[0] for c in CALL_CASES])
def test_a_user_metric_that_fails_or_returns_junk_is_a_named_error(fn, words, user_metrics):
    from tuneforge.evaluate.metrics import run_metric

    with pytest.raises(TuneforgeError) as err:
        run_metric(f"{user_metrics}:{fn}", {}, predictions=["a", "b", "c"], references=[["a"]] * 3,
                   instructions=["q"] * 3, encoder=None)  # fmt: skip
    assert all(w in str(err.value) for w in words) and "\n" not in str(err.value), str(err.value)


def test_a_good_user_metric_is_scored_like_a_shipped_one(user_metrics):
    from tuneforge.evaluate.scoring import score_generations
    from tuneforge.records import Generation, Message

    gens = [
        Generation(id=str(i), prompt=[Message("user", "q")], generation="a", references=["a"], model="m", domain=d)
        for i, d in enumerate(["x", "x", "y"])
    ]
    res = score_generations(gens, [f"{user_metrics}:good", "exact_match"], n_boot=10)
    assert res["flat"][f"{user_metrics}:good"] == 0.5 and res["flat"][f"{user_metrics}:good_for_y"] == 0.5
    assert res["overall"][f"{user_metrics}:good"]["signature"] == "good" and "exact_match" in res["flat"]


def test_builtins_without_a_signature_are_checked_when_called():
    from tuneforge.evaluate.metrics import run_metric

    inputs = dict(predictions=["a"], references=[["a"]], instructions=["q"], encoder=None)
    with pytest.raises(TuneforgeError, match="metric 'builtins:max' failed: TypeError"):
        run_metric("builtins:max", {}, **inputs)
    with pytest.raises(TuneforgeError, match="metric 'builtins:dict' returned a dict with keys"):
        run_metric("builtins:dict", {}, **inputs)


# --- 6c. hf: datasets while offline -------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch):
    """The hub unreachable, as on a machine without internet (whatever this one has)."""
    from huggingface_hub import HfApi

    def unreachable(*_, **__):
        raise ConnectionError("[Errno -2] Name or service not known")

    monkeypatch.setattr(HfApi, "dataset_info", unreachable)


HUB_CASES = [
    ("eval test set", ["eval", "generate", "output_dir={o}", "models=[m={m}]", "data.test=hf:someorg/not-cached"]),
    ("train data", ["train", "configs/lora.yaml", "output_dir={o}", "model.name={m}", "data.train=hf:someorg/not-cached"]),
    ("train data with a split", ["train", "configs/lora.yaml", "output_dir={o}", "model.name={m}",
                                 "data.train=hf:someorg/not-cached:test"]),
    ("data build source", ["data", "build", "{d}/build.yaml", "output_dir={o}", "manual.files=[hf:someorg/not-cached]"]),
    ("data stats", ["data", "stats", "hf:someorg/not-cached", "--tokenizer", "none"]),
]  # fmt: skip


@pytest.mark.parametrize("name,argv", HUB_CASES, ids=[c[0] for c in HUB_CASES])
def test_an_unreachable_hub_dataset_is_one_line_in_seconds(
    name, argv, no_network, inputs, good_model, tmp_path, capsys
):
    (inputs / "build.yaml").write_text("filters: {decontaminate: []}\n")
    start = time.monotonic()
    words = ["someorg/not-cached", "internet"] if name != "data stats" else ["someorg/not-cached"]
    with deadline(60):
        expect_user_error(argv, words, tmp_path, capsys, d=inputs, o=tmp_path / "out", m=good_model)
    assert time.monotonic() - start < 15


def test_an_offline_hub_dataset_not_in_the_cache_names_the_fix(monkeypatch):
    import datasets
    import huggingface_hub.constants

    from tuneforge.data.io import read_records

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    start = time.monotonic()
    with pytest.raises(DataError, match="not in the local Hugging Face cache.*internet"):
        read_records("hf:someorg/not-cached-anywhere")
    assert time.monotonic() - start < 15


def test_a_missing_local_hub_folder_is_not_asked_of_the_hub(no_network):
    from tuneforge.data.io import read_records

    with pytest.raises(DataError, match="no folder ./nowhere"):
        read_records("hf:./nowhere")
