"""The Ollama Modelfile derived from a chat template (tuneforge.train.gguf_export), checked against
the Jinja template by rendering the emitted Go template with a small interpreter of the part of Go's
text/template it uses (range over .Messages, .Role, .Content, trim markers)."""

import copy
import re

import pytest

from tuneforge.chat_template import set_chat_template
from tuneforge.errors import ConfigError
from tuneforge.train.gguf_export import PROBES, chat_pieces, modelfile, render_pieces


def go_render(template: str, messages: list[dict]) -> str:
    """Go text/template semantics for `{{- range .Messages }}…{{ .Role }}…{{ .Content }}…{{ end }}`."""
    top: list = []
    body = top  # where parsed pieces go: the top level, or the open range's body
    for piece in re.split(r"({{-?\s*.*?\s*-?}})", template):
        if not piece.startswith("{{"):
            body.append(("text", piece))
            continue
        if piece.startswith("{{-") and body and body[-1][0] == "text":  # trim the text before
            body[-1] = ("text", body[-1][1].rstrip())
        action = piece.strip("{}-").strip()
        if action == "range .Messages":
            body = []
        elif action == "end":
            top.append(("range", body))
            body = top
        else:
            body.append(("field", action))
    out = []
    for kind, value in top:
        if kind == "text":
            out.append(value)
        elif kind == "range":
            for m in messages:
                fields = {".Role": m["role"], ".Content": m["content"]}
                out += [v if k == "text" else fields[v] for k, v in value]
        else:
            raise AssertionError(f"{value} outside the range over .Messages")
    return "".join(out)


def _modelfile_fields(text: str) -> dict:
    return {
        "template": re.search(r'TEMPLATE """(.*?)"""', text, re.S).group(1),
        "system": (re.search(r'SYSTEM """(.*?)"""', text, re.S) or [None, ""])[1],
        "stops": re.findall(r'PARAMETER stop "(.*?)"', text),
    }


@pytest.mark.parametrize("template", ["chatml", "llama3", "zephyr"])
def test_the_modelfile_template_renders_every_probe_as_the_chat_template_does(tiny_tok, template):
    tok = set_chat_template(copy.deepcopy(tiny_tok), template)
    fields = _modelfile_fields(modelfile("model-f16.gguf", tok))
    for conv in PROBES:
        expected = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
        messages = (
            conv
            if not fields["system"] or conv[0]["role"] == "system"
            else [{"role": "system", "content": fields["system"]}, *conv]
        )  # fmt: skip  (what Ollama does with SYSTEM)
        assert go_render(fields["template"], messages) == expected
        assert render_pieces(chat_pieces(tok), conv) == expected
    assert fields["stops"] and fields["stops"][0] == tok.eos_token


def test_a_default_system_message_becomes_the_modelfile_system(tiny_tok):
    tok = set_chat_template(copy.deepcopy(tiny_tok), "chatml")
    tok.chat_template = (
        "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nBe brief.<|im_end|>\n{% endif %}"
        + tok.chat_template
    )
    fields = _modelfile_fields(modelfile("m.gguf", tok))
    assert fields["system"] == "Be brief."
    conv = PROBES[0]
    expected = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
    assert go_render(fields["template"], [{"role": "system", "content": "Be brief."}, *conv]) == expected


def test_text_that_would_break_out_of_its_modelfile_quotes_is_refused(tiny_tok):
    from tuneforge.train.gguf_export import _modelfile_arg

    tok = set_chat_template(copy.deepcopy(tiny_tok), "chatml")
    injected = 'Be brief."""\nFROM ./evil.gguf\nPARAMETER temperature 9\nSYSTEM """'
    tok.chat_template = (
        "{% if messages[0]['role'] != 'system' %}<|im_start|>system\n" + injected + "<|im_end|>\n{% endif %}"
    ) + tok.chat_template
    assert chat_pieces(tok).default_system == injected  # the template itself is fine; only quoting it is not
    with pytest.raises(ConfigError, match=r"default system message would break out of the Modelfile's SYSTEM"):
        modelfile("m.gguf", tok)
    with pytest.raises(ConfigError, match="stop token would break out"):
        _modelfile_arg("PARAMETER stop", '</s>"\nFROM ./evil.gguf', "the stop token")
    assert _modelfile_arg("SYSTEM", 'Say "hi".', "x") == 'SYSTEM """Say "hi"."""'  # inner quotes are fine


def test_a_template_that_renders_roles_differently_is_refused(tiny_tok):
    tok = set_chat_template(copy.deepcopy(tiny_tok), "alpaca")
    with pytest.raises(ConfigError, match="Ollama TEMPLATE"):
        modelfile("m.gguf", tok)


@pytest.fixture(scope="module")
def embedded_hf_tok(tmp_path_factory):
    """The embedded model's tokenizer as a Hub model directory holds it (tokenizer.json)."""
    from transformers import AutoTokenizer

    from tuneforge.embedded import embedded_gguf_path

    path, where = embedded_gguf_path(), tmp_path_factory.mktemp("hf_tok")
    AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name).save_pretrained(where)
    return AutoTokenizer.from_pretrained(where)


def test_a_hub_tokenizer_is_written_as_llama_cpp_wrote_the_embedded_gguf(embedded_hf_tok):
    from tuneforge.embedded import embedded_gguf_path
    from tuneforge.train.gguf_export import gguf_tokenizer_fields, hf_tokenizer_fields

    written = hf_tokenizer_fields(embedded_hf_tok, 49152)
    copied = gguf_tokenizer_fields(embedded_gguf_path(), embedded_hf_tok, 49152)
    assert written["tokenizer.ggml.pre"] == "smollm"  # the probe hash agrees with llama.cpp's table
    for key in ("tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                "tokenizer.ggml.merges", "tokenizer.ggml.add_bos_token", "tokenizer.ggml.unknown_token_id"):  # fmt: skip
        assert written[key] == copied[key], key
    assert len(written["tokenizer.ggml.merges"]) == 48900 and written["tokenizer.ggml.token_type"].count(3) == 17


def test_ids_past_the_tokenizer_are_unused_pads(embedded_hf_tok):
    from tuneforge.train.gguf_export import hf_tokenizer_fields

    fields = hf_tokenizer_fields(embedded_hf_tok, 49152 + 2)
    assert fields["tokenizer.ggml.tokens"][-2:] == ["[PAD49152]", "[PAD49153]"]
    assert fields["tokenizer.ggml.token_type"][-2:] == [5, 5]  # gguf.TokenType.UNUSED


def test_an_unknown_pre_tokenizer_is_refused_with_the_converter_command(embedded_hf_tok):
    import copy

    from tokenizers import pre_tokenizers

    from tuneforge.train.gguf_export import hf_tokenizer_fields

    tok = copy.deepcopy(embedded_hf_tok)  # splitting digits differently changes the probe's ids
    tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    with pytest.raises(ConfigError, match="pre-tokenizer .*probe hash [0-9a-f]{64}.*convert_hf_to_gguf.py"):
        hf_tokenizer_fields(tok, 49152)


@pytest.mark.parametrize("kind", ["unigram", "bpe_byte_fallback"])
def test_a_sentencepiece_style_tokenizer_is_refused_with_the_converter_command(kind):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    from tuneforge.train.gguf_export import hf_tokenizer_fields

    if kind == "unigram":  # Llama 2 / Mistral 7B v0.1 style
        model = models.Unigram([("<unk>", 0.0), ("▁a", -1.0), ("a", -2.0)], unk_id=0)
    else:
        model = models.BPE({"<unk>": 0, "a": 1, "<0x41>": 2}, [], unk_token="<unk>", byte_fallback=True)
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(model), unk_token="<unk>")
    with pytest.raises(ConfigError, match="byte-level BPE.*convert_hf_to_gguf.py"):
        hf_tokenizer_fields(tok, 3)


def test_the_base_gguf_is_found_for_the_embedded_model_and_gguf_files_only():
    from tuneforge.train.gguf_export import source_gguf

    assert source_gguf("smollm2-135m-instruct").suffix == ".gguf"
    assert source_gguf("HuggingFaceTB/SmolLM2-360M-Instruct") is None  # written from its tokenizer.json
    with pytest.raises(ConfigError, match="is gone"):
        source_gguf("/nowhere/model.gguf")
