"""`tuneforge export RUN --gguf` on a LoRA run of the embedded model, loaded back two ways:
transformers (`gguf_file=`) against the merged model — logits, greedy answers, chat prompt and stop
token — and llama.cpp (llama-cpp-python, built for the served-model tests), whose greedy answers
must stop at the end-of-turn token."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tuneforge.cli import main

pytestmark = pytest.mark.slow
PROMPTS = [
    "Reply with one word: what colour is the sky on a clear day?",
    "What is 2 + 2? Answer with the number only.",
    "Name one thing a budget helps with, in one short sentence.",
    "Is it safe to share my bank PIN with a caller? Answer briefly.",
]
F16_LOGIT_TOL = 0.25  # max |Δ logit| merged fp32 vs GGUF f16 (measured 0.11 on Zen 5; logits sd ≈ 8)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    run = tmp_path_factory.mktemp("gguf") / "run"
    args = ["train", str(Path(__file__).resolve().parents[2] / "configs" / "lora.yaml"), f"output_dir={run}", "train.steps=4", "train.batch_size=2",
            "train.lr=1e-3", "data.eval=", "train.precision=fp32", "model.dtype=float32"]  # fmt: skip
    assert main(args) == 0
    for quant in ("f16", "q8_0"):  # both quantisations land side by side in RUN/gguf
        assert main(["export", str(run), "--gguf", "--quant", quant]) == 0
    assert main(["export", str(run), "--gguf", "--quant", "q8_0"]) == 2  # an existing one needs --overwrite
    assert main(["export", str(run), "--merge"]) == 0  # the reference: the merged model in RUN/merged
    return run


def _load(run, quant=None):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where, kw = (run / "merged", {}) if quant is None else (run / "gguf", {"gguf_file": f"model-{quant}.gguf"})
    model = AutoModelForCausalLM.from_pretrained(where, dtype=torch.float32, **kw).eval()
    return model, AutoTokenizer.from_pretrained(where, **kw)


def _prompt_ids(tok, text):
    prompt = tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)
    return prompt, tok(prompt, return_tensors="pt").input_ids


@torch.no_grad()
def test_the_f16_gguf_gives_the_merged_model_logits_answers_prompt_and_stop_token(exported):
    from tuneforge.models import load_model

    merged, tok = _load(exported)
    gguf_model, gguf_tok = _load(exported, "f16")
    base, _ = load_model("smollm2-135m-instruct", "float32", "sdpa", "cpu")
    assert gguf_tok.eos_token == tok.eos_token == "<|im_end|>"  # the end-of-turn token survives export
    for text in PROMPTS:
        prompt, ids = _prompt_ids(tok, text)
        assert _prompt_ids(gguf_tok, text)[0] == prompt  # the chat template survives export
        logits, from_gguf = merged(ids).logits, gguf_model(ids).logits
        assert (logits - from_gguf).abs().max() < F16_LOGIT_TOL
        # it is the tuned model that was exported: much nearer the merged weights than the base's
        assert (logits - from_gguf).abs().mean() < 0.2 * (logits - base(ids).logits).abs().mean()
        greedy = merged.generate(ids, max_new_tokens=24, do_sample=False)
        assert torch.equal(gguf_model.generate(ids, max_new_tokens=24, do_sample=False), greedy)


@torch.no_grad()
def test_the_q8_0_gguf_stays_close_to_the_merged_model(exported):
    merged, tok = _load(exported)
    quantised, _ = _load(exported, "q8_0")
    size = {q: (exported / "gguf" / f"model-{q}.gguf").stat().st_size for q in ("f16", "q8_0")}
    assert size["q8_0"] < 0.6 * size["f16"]
    agree, total = 0, 0
    for text in PROMPTS:
        ids = _prompt_ids(tok, text)[1]
        a, b = merged(ids).logits[0], quantised(ids).logits[0]
        assert (a - b).abs().mean() < 0.5  # measured 0.22 (logits sd ≈ 8)
        agree += int((a.argmax(-1) == b.argmax(-1)).sum())
        total += a.shape[0]
    assert agree / total > 0.9  # next-token choice at every prompt position (measured 0.97)


def test_the_modelfile_carries_the_template_system_and_stop(exported):
    text = (exported / "gguf" / "Modelfile").read_text()
    assert text.startswith("FROM ./model-q8_0.gguf\n")  # the last export wrote it
    assert 'PARAMETER stop "<|im_end|>"' in text and "{{ $m.Content }}" in text and "{{ json $t }}" in text
    # SmolLM2's default system message is in the template (a conversation with tools has none), not SYSTEM
    assert "SYSTEM" not in text and "{{ else }}<|im_start|>system\nYou are a helpful AI assistant named SmolLM" in text


def test_llama_cpp_renders_the_same_prompt_and_stops_at_the_end_of_turn(exported):
    probe = subprocess.run([sys.executable, "-c", "import llama_cpp"], capture_output=True)
    if probe.returncode:
        if os.environ.get("TUNEFORGE_REQUIRE_SERVER"):
            pytest.fail("llama-cpp-python is not installed, and CI requires the llama.cpp checks")
        pytest.skip("llama-cpp-python is not installed (scripts/install_server.sh installs it)")
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    _, tok = _load(exported)
    llm = Llama(model_path=str(exported / "gguf" / "model-f16.gguf"), n_ctx=1024, n_threads=2, verbose=False)
    meta = llm.metadata
    assert int(meta["tokenizer.ggml.eos_token_id"]) == int(meta["tokenizer.ggml.eot_token_id"]) == tok.eos_token_id
    formatter = Jinja2ChatFormatter(meta["tokenizer.chat_template"], eos_token=tok.eos_token, bos_token="")
    stopped = 0
    for text in PROMPTS:
        messages = [{"role": "user", "content": text}]
        assert formatter(messages=messages).prompt == _prompt_ids(tok, text)[0]
        choice = llm.create_chat_completion(messages, max_tokens=96, temperature=0)["choices"][0]
        answer = choice["message"]["content"]
        assert answer.strip() and "<|im_end|>" not in answer and "<|im_start|>" not in answer
        stopped += choice["finish_reason"] == "stop"
    assert stopped >= 3  # short questions end at <|im_end|> (a 135M model may still ramble on one)


def test_a_run_from_a_hub_style_base_exports_the_same_gguf_as_from_the_gguf_base(exported, tmp_path):
    """The embedded model saved as a Hub model directory (config.json, safetensors, tokenizer.json):
    the same run from it exports a GGUF whose tokenizer llama.cpp's converter would write (written
    from tokenizer.json, not copied) and whose tensors equal the GGUF-based run's."""
    import gguf

    from tuneforge.models import load_model

    base = tmp_path / "hf_base"
    model, tok = load_model("smollm2-135m-instruct", "float32", "sdpa", "cpu")
    model.save_pretrained(base)
    tok.save_pretrained(base)
    run = tmp_path / "run"
    args = ["train", str(Path(__file__).resolve().parents[2] / "configs" / "lora.yaml"), f"output_dir={run}", "train.steps=4", "train.batch_size=2",
            "train.lr=1e-3", "data.eval=", "train.precision=fp32", "model.dtype=float32", f"model.name={base}"]  # fmt: skip
    assert main(args) == 0
    assert main(["export", str(run), "--gguf", "--quant", "f16"]) == 0
    ours, theirs = (gguf.GGUFReader(str(r / "gguf" / "model-f16.gguf")) for r in (run, exported))
    for key in ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                "tokenizer.ggml.merges", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id",
                "tokenizer.chat_template"):  # fmt: skip
        assert ours.fields[key].contents() == theirs.fields[key].contents(), key
    assert [t.name for t in ours.tensors] == [t.name for t in theirs.tensors]
    for a, b in zip(ours.tensors, theirs.tensors, strict=True):
        assert a.data.shape == b.data.shape and (a.data.astype("float32") == b.data.astype("float32")).all(), a.name
