"""The Ollama Modelfile written beside a GGUF export (tuneforge.train.modelfile): its TEMPLATE is
executed by Go's own text/template with Ollama's data shapes and `json` function
(tests/unit/ollama_render.go), and must give exactly the prompt training rendered — for plain chats,
and for tools, calls, parallel calls, results and traces in the Hermes layout. Go comes from Debian
(`scripts/install_go.sh`); without it these checks skip, unless TUNEFORGE_REQUIRE_GO is set (CI)."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tuneforge.chat_template import render_chat, set_chat_template
from tuneforge.errors import ConfigError
from tuneforge.ollama_json import call_json, go_json, ollama_tool
from tuneforge.records import Message
from tuneforge.tool_use import ToolCall
from tuneforge.train.modelfile import (
    PROBES,
    TOOL,
    _modelfile_arg,
    chat_pieces,
    modelfile,
    render_pieces,
    render_with_tools,
    tool_probes,
)

SMOL_DEFAULT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


@pytest.fixture(scope="session")
def ollama_render(tmp_path_factory):
    """A function (template, messages, tools) -> the prompt Ollama's template engine writes."""
    if not shutil.which("go"):
        if os.environ.get("TUNEFORGE_REQUIRE_GO"):
            pytest.fail("go is not installed, and CI requires the Ollama template checks (scripts/install_go.sh)")
        pytest.skip("go is not installed (scripts/install_go.sh installs Debian's golang-go)")
    where = tmp_path_factory.mktemp("go")
    env = {**os.environ, "GOCACHE": str(where / "cache"), "GOPATH": str(where / "path"), "GOFLAGS": "-mod=mod"}
    binary = where / "ollama_render"
    source = Path(__file__).with_name("ollama_render.go")
    subprocess.run(["go", "build", "-o", str(binary), str(source)], check=True, env=env, cwd=where, timeout=300)

    def render(template: str, messages: list[Message], tools: list[dict]) -> str:
        request = {"template": template, "messages": [_api(m) for m in messages], "tools": tools or None}
        done = subprocess.run([str(binary)], input=json.dumps(request), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    return render


def _api(m: Message) -> dict:
    """The message as a client sends it to Ollama's /api/chat."""
    out = {"role": m.role, "content": m.content}
    if m.reasoning:
        out["thinking"] = m.reasoning
    if m.tool_calls:
        out["tool_calls"] = [{"function": {"name": c.name, "arguments": c.arguments}} for c in m.tool_calls]
    if m.role == "tool":
        out |= {"tool_call_id": m.tool_call_id, "tool_name": m.name}
    return out


def _fields(text: str) -> dict:
    return {
        "template": re.search(r'TEMPLATE """(.*?)"""', text, re.S).group(1),
        "system": (re.search(r'SYSTEM """(.*?)"""', text, re.S) or [None, ""])[1],
        "stops": re.findall(r'PARAMETER stop "(.*?)"', text),
    }


def _with_default_system(tok, default: str):
    tok = copy.deepcopy(tok)
    tok.chat_template = (
        "{% if messages[0]['role'] != 'system' %}<|im_start|>system\n"
        + default
        + "<|im_end|>\n{% endif %}"
        + tok.chat_template
    )  # fmt: skip  (SmolLM2's own template adds its default system message so)
    return tok


@pytest.mark.parametrize("template", ["", "chatml", "llama3", "zephyr", "default-system"])
def test_the_modelfile_template_renders_every_plain_chat_as_the_chat_template_does(tiny_tok, ollama_render, template):
    if template == "default-system":
        tok = _with_default_system(tiny_tok, SMOL_DEFAULT)
    else:
        tok = set_chat_template(copy.deepcopy(tiny_tok), template)
    text, _ = modelfile("model-f16.gguf", tok)
    fields = _fields(text)
    for conv in PROBES:
        expected = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
        messages = [Message(m["role"], m["content"]) for m in conv]
        if fields["system"] and conv[0]["role"] != "system":  # what Ollama does with SYSTEM
            messages = [Message("system", fields["system"]), *messages]
        assert ollama_render(fields["template"], messages, []) == expected
        assert render_pieces(chat_pieces(tok), conv) == expected
    assert fields["stops"] and fields["stops"][0] == tok.eos_token


@pytest.mark.parametrize("default", ["", SMOL_DEFAULT])
def test_ollama_renders_tools_calls_results_and_traces_exactly_as_training_did(tiny_tok, ollama_render, default):
    tok = _with_default_system(tiny_tok, default) if default else tiny_tok
    text, no_tools = modelfile("m.gguf", tok)
    assert no_tools == "" and "SYSTEM" not in text  # the default system message lives in the template
    template = _fields(text)["template"]
    for messages, tools in tool_probes():
        trained = render_chat(tok, messages, tools, add_generation_prompt=True)
        assert ollama_render(template, messages, tools) == trained
        assert render_with_tools(chat_pieces(tok), messages, tools) == trained
    rendered = ollama_render(template, tool_probes()[1][0], tool_probes()[1][1])
    assert '{"name": "search_flights", "arguments": {"date":"2027-03-01","from":"LIS","to":"NRT"}}' in rendered
    assert "<tool_response>\nTP 1234, 14:05\n</tool_response>" in rendered
    assert rendered.count("<|im_start|>system") == 1 and (default in rendered) is (not default)


@pytest.mark.parametrize(
    "arguments",
    [
        {"b": 1, "a": [1.0, 2.5, 1e-7, 1e21, 123456789.0, -0.0, 0.000001, 2**53 + 1]},
        {"text": 'quote " back\\slash <tag> & amp \u2028 \t\n\r \x01 é 日本 😀'},
        {"nested": {"z": {"y": None, "x": True}, "a": []}, "empty": {}},
    ],
)
def test_arguments_and_tools_are_written_as_go_writes_them(ollama_render, arguments):
    template = (
        "{{ range .Messages }}{{ range .ToolCalls }}{{ json .Function.Arguments }}{{ end }}{{ end }}\n"
        "{{ range .Tools }}{{ json . }}{{ end }}"
    )
    tool = copy.deepcopy(TOOL)
    tool["function"]["parameters"]["properties"]["to"]["pattern"] = "^[A-Z]{3}$"  # Ollama drops it
    messages = [Message("user", "x"), Message("assistant", "", (ToolCall("f", arguments),))]
    go_args, go_tool = ollama_render(template, messages, [tool]).split("\n")
    assert go_json(arguments) == go_args
    assert ollama_tool(tool) == (go_tool, ["to.pattern"])
    assert call_json("f", arguments) == f'{{"name": "f", "arguments": {go_args}}}'


def test_a_template_that_renders_tools_itself_gets_a_plain_modelfile_saying_why(tiny_tok, ollama_render):
    tok = set_chat_template(copy.deepcopy(tiny_tok), "llama3")  # Llama 3.1's JSON calls: not the Hermes layout
    text, no_tools = modelfile("m.gguf", tok)
    assert "renders tools" in no_tools and f"# no tool calls in this TEMPLATE: {no_tools}" in text
    assert ".Tools" not in _fields(text)["template"]


def test_a_template_that_renders_tool_results_its_own_way_gets_no_tool_template(tiny_tok):
    tok = copy.deepcopy(tiny_tok)
    tok.chat_template = tok.chat_template.replace(
        "message['role']", "('user' if message['role'] == 'tool' else message['role'])"
    )
    assert "'tool'" in tok.chat_template  # results reach the model as a user turn: not what the Go template writes
    text, no_tools = modelfile("m.gguf", tok)
    assert "renders tool calls or results differently" in no_tools and ".Tools" not in _fields(text)["template"]


def test_text_that_would_break_out_of_its_modelfile_quotes_is_refused(tiny_tok):
    injected = 'Be brief."""\nFROM ./evil.gguf\nPARAMETER temperature 9\nSYSTEM """'
    tok = _with_default_system(set_chat_template(copy.deepcopy(tiny_tok), "chatml"), injected)
    assert chat_pieces(tok).default_system == injected  # the template itself is fine; only quoting it is not
    with pytest.raises(ConfigError, match=r"would break out of the Modelfile's TEMPLATE"):
        modelfile("m.gguf", tok)
    with pytest.raises(ConfigError, match="stop token would break out"):
        _modelfile_arg("PARAMETER stop", '</s>"\nFROM ./evil.gguf', "the stop token")
    assert _modelfile_arg("SYSTEM", 'Say "hi".', "x") == 'SYSTEM """Say "hi"."""'  # inner quotes are fine


def test_a_template_that_renders_roles_differently_is_refused(tiny_tok):
    tok = set_chat_template(copy.deepcopy(tiny_tok), "alpaca")
    with pytest.raises(ConfigError, match="Ollama TEMPLATE"):
        modelfile("m.gguf", tok)
