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


def test_a_template_that_renders_roles_differently_is_refused(tiny_tok):
    tok = set_chat_template(copy.deepcopy(tiny_tok), "alpaca")
    with pytest.raises(ConfigError, match="Ollama TEMPLATE"):
        modelfile("m.gguf", tok)


def test_a_run_whose_base_is_not_a_gguf_is_refused_with_the_converter_command():
    from tuneforge.train.gguf_export import source_gguf

    with pytest.raises(ConfigError, match="convert_hf_to_gguf.py"):
        source_gguf("HuggingFaceTB/SmolLM2-360M-Instruct")
