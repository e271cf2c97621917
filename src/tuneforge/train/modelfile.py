"""The Ollama Modelfile written beside an exported GGUF (`tuneforge export RUN --gguf`).

Its TEMPLATE is derived from the run's own Jinja chat template: the template is rendered once with
marker contents, and the per-message prefix, infix and suffix are read off (`chat_pieces`). The
result is refused unless it renders every probe conversation exactly as the Jinja template does.

Tools: when the run trained in the Hermes layout (`chat_template.tool_layout`: its template renders
no tools itself, as SmolLM2's), the TEMPLATE also renders Ollama's `.Tools`, each message's
`.ToolCalls`, `.Thinking` and tool results in that layout, writing JSON with Ollama's own `json`
function — the form the layout was trained on (`ollama_json`). `render_with_tools` is the same
template in Python; the export refuses the tool part unless it renders the tool probes exactly as
training did, and says why in the Modelfile and on stderr (so do templates that render tools
themselves: their Go version has to be written by hand). The Go template itself is executed by Go's
text/template, with Ollama's data shapes, in the tests.

Known differences, all of them Ollama's and none in a probe: Ollama merges consecutive messages of
one role (not tool results) into one, joined by a blank line; tuneforge renders them apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tuneforge.errors import ConfigError


@dataclass
class ChatPieces:
    """A chat template that renders every message as `prefix + role + infix + content + suffix`."""

    lead: str  # text before the first message (e.g. a BOS written by the template)
    prefix: str
    infix: str
    suffix: str
    default_system: str  # the system message the template adds when a conversation has none ('' = none)


_MARK = "\x01{}\x02"


def _render(tok, messages, add_generation_prompt=True) -> str:
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def chat_pieces(tok) -> ChatPieces:
    """Read the per-message structure off the tokenizer's chat template, or raise ConfigError."""
    roles = ["system", "user", "assistant", "user"]
    conv = [{"role": r, "content": _MARK.format(i)} for i, r in enumerate(roles)]
    text = _render(tok, conv)
    parts = re.split("\x01\\d\x02", text)
    if len(parts) != len(roles) + 1:
        raise ConfigError("the chat template does not render each message's content once; no Ollama TEMPLATE")
    head, gaps = parts[0], parts[1:]
    if "system" not in head:
        raise ConfigError("the chat template does not write the role names; no Ollama TEMPLATE can be derived")
    before, infix = head.rsplit("system", 1)
    nexts = [*roles[1:], "assistant"]  # the generation prompt opens an assistant message
    for k in range(len(before), -1, -1):  # the longest role prefix every gap ends with
        prefix = before[len(before) - k :]
        tails = [prefix + r + infix for r in nexts]
        if all(g.endswith(t) for g, t in zip(gaps, tails, strict=True)):
            suffixes = {g[: len(g) - len(t)] for g, t in zip(gaps, tails, strict=True)}
            if len(suffixes) == 1:
                pieces = ChatPieces(before[: len(before) - k], prefix, infix, suffixes.pop(), "")
                break
    else:
        raise ConfigError("the chat template renders roles differently from one another; no Ollama TEMPLATE")
    alone = _render(tok, [{"role": "user", "content": _MARK.format(0)}])
    opened = pieces.lead + pieces.prefix + "system" + pieces.infix
    if alone.startswith(opened):
        pieces.default_system = alone[len(opened) :].split(pieces.suffix, 1)[0]
    return pieces


def render_pieces(p: ChatPieces, messages: list[dict]) -> str:
    """What the derived Ollama template produces for `messages` (Ollama adds SYSTEM when none)."""
    if p.default_system and (not messages or messages[0]["role"] != "system"):
        messages = [{"role": "system", "content": p.default_system}, *messages]
    body = "".join(p.prefix + m["role"] + p.infix + m["content"] + p.suffix for m in messages)
    return p.lead + body + p.prefix + "assistant" + p.infix


def ollama_template(p: ChatPieces) -> str:
    """The Go template for Ollama's TEMPLATE (over .Messages; SYSTEM supplies the default)."""
    for piece in (p.lead, p.prefix, p.infix, p.suffix):
        if "{{" in piece or '"""' in piece:
            raise ConfigError("the chat template's markup contains '{{' or '\"\"\"'; write the Modelfile by hand")
    return (
        f"{p.lead}{{{{- range .Messages }}}}{p.prefix}{{{{ .Role }}}}{p.infix}{{{{ .Content }}}}{p.suffix}"
        f"{{{{ end }}}}{p.prefix}assistant{p.infix}"
    )


PROBES = [  # conversations the derived template must render exactly as the Jinja template does
    [{"role": "user", "content": "What is an index fund?"}],
    [
        {"role": "system", "content": "You answer in one sentence."},
        {"role": "user", "content": "Name a safe way to store passwords."},
    ],
    [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Plan a day in Lisbon.\nKeep it short."},
    ],
]


def _modelfile_arg(directive: str, text: str, what: str) -> str:
    """`directive` with `text` in its quotes (triple quotes for TEMPLATE and SYSTEM, else one), or a
    ConfigError when the text would close them early. A Modelfile has no escape for quotes, so
    whatever followed (a template's system message holding triple quotes, then `FROM ...` lines)
    would be read as directives; refusing names the problem instead of mangling the text."""
    quotes = '"""' if directive in ("TEMPLATE", "SYSTEM") else '"'
    if quotes in text or text.endswith('"') or (quotes == '"' and "\n" in text):
        raise ConfigError(
            f"{what} would break out of the Modelfile's {directive} {quotes}...{quotes}: {text[:200]!r}. "
            f"It holds {quotes}, ends in a quote or breaks the line, and the rest would be read as Modelfile "
            "directives. Remove those quotes from the chat template, or write the Modelfile by hand"
        )
    return f"{directive} {quotes}{text}{quotes}"


def modelfile(gguf_name: str, tok) -> tuple[str, str]:
    """(an Ollama Modelfile for `gguf_name`, '' or why it renders no tools): TEMPLATE, SYSTEM and stop
    tokens from the tokenizer; the TEMPLATE renders tools when `tool_support` finds no difference."""
    pieces = chat_pieces(tok)
    for conv in PROBES:
        if render_pieces(pieces, conv) != _render(tok, conv):
            raise ConfigError("the derived Ollama template does not reproduce the chat template; write it by hand")
    stops = [s for s in dict.fromkeys([tok.eos_token, pieces.suffix.strip()]) if s]
    why_not = tool_support(tok, pieces)
    if why_not is None:
        lines = [f"FROM ./{gguf_name}", _modelfile_arg("TEMPLATE", ollama_tool_template(pieces), "the chat template")]
    else:
        lines = [f"FROM ./{gguf_name}", f"# no tool calls in this TEMPLATE: {why_not}"]
        lines.append(_modelfile_arg("TEMPLATE", ollama_template(pieces), "the chat template"))
        if pieces.default_system:
            lines.append(_modelfile_arg("SYSTEM", pieces.default_system, "the chat template's default system message"))
    lines += [_modelfile_arg("PARAMETER stop", s, "the stop token") for s in stops]
    return "\n".join(lines) + "\n", why_not or ""


# --------------------------------------------------------------------------- tools
_NOT_SYSTEM_FIRST = '(not (and .Messages (eq (index .Messages 0).Role "system")))'


def _tools_block() -> str:
    """The Hermes system block, its tools written by Ollama's `json` one per line."""
    from tuneforge.chat_template import HERMES_SYSTEM

    return HERMES_SYSTEM.format(tools="{{ range $k, $t := $.Tools }}{{ if $k }}\n{{ end }}{{ json $t }}{{ end }}")


def ollama_tool_template(p: ChatPieces) -> str:
    """The Go TEMPLATE for the Hermes layout over Ollama's .Messages and .Tools (no SYSTEM directive:
    the template's default system message is written here, where a conversation with tools has none)."""
    for piece in (p.lead, p.prefix, p.infix, p.suffix, p.default_system):  # '"""': _modelfile_arg refuses it
        if "{{" in piece:
            raise ConfigError("the chat template's markup contains '{{'; write the Modelfile by hand")
    block, opened = _tools_block(), f"{p.prefix}system{p.infix}"
    default = f"{{{{ else }}}}{opened}{p.default_system}{p.suffix}" if p.default_system else ""
    call = '<tool_call>\n{"name": {{ json $c.Function.Name }}, "arguments": {{ json $c.Function.Arguments }}}\n</tool_call>'
    assistant = (
        "{{ if $m.Thinking }}<think>\n{{ $m.Thinking }}\n</think>\n\n{{ end }}{{ $m.Content }}"
        f"{{{{ range $j, $c := $m.ToolCalls }}}}{{{{ if or $j $m.Content }}}}\n{{{{ end }}}}{call}{{{{ end }}}}"
    )
    return (
        f"{p.lead}{{{{ if {_NOT_SYSTEM_FIRST} }}}}{{{{ if .Tools }}}}{opened}{block}{p.suffix}{default}{{{{ end }}}}"
        "{{ end }}"
        f"{{{{ range $i, $m := .Messages }}}}{p.prefix}{{{{ $m.Role }}}}{p.infix}"
        f'{{{{ if eq $m.Role "system" }}}}{{{{ $m.Content }}}}{{{{ if and (eq $i 0) $.Tools }}}}\n\n{block}{{{{ end }}}}'
        '{{ else if and (eq $m.Role "tool") (or $m.ToolCallID $m.ToolName) }}'
        "<tool_response>\n{{ $m.Content }}\n</tool_response>"
        f"{{{{ else }}}}{assistant}{{{{ end }}}}{p.suffix}{{{{ end }}}}{p.prefix}assistant{p.infix}"
    )


def _collate(messages: list) -> list:
    """Ollama's `collate`: consecutive messages of one role (not tool results) become one."""
    import dataclasses

    out: list = []
    for m in messages:
        if out and out[-1].role == m.role and m.role != "tool":
            out[-1] = dataclasses.replace(out[-1], content=f"{out[-1].content}\n\n{m.content}")
        else:
            out.append(m)
    return out


def render_with_tools(p: ChatPieces, messages: list, tools: list[dict]) -> str:
    """What `ollama_tool_template` renders for `messages` (records.Message) and `tools`, in Python."""
    from tuneforge.chat_template import hermes_tools_block
    from tuneforge.ollama_json import call_json
    from tuneforge.tool_text import render_tool_result, render_turn

    msgs = _collate(messages)
    block = hermes_tools_block(tools) if tools else ""
    opened = f"{p.prefix}system{p.infix}"
    out = [p.lead]
    if not (msgs and msgs[0].role == "system"):
        out.append(
            f"{opened}{block}{p.suffix}" if tools else f"{opened}{p.default_system}{p.suffix}" * bool(p.default_system)
        )
    for i, m in enumerate(msgs):
        if m.role == "system":
            text = m.content + (f"\n\n{block}" if i == 0 and tools else "")
        elif m.role == "tool" and (m.tool_call_id or m.name):
            text = render_tool_result(m.content)
        else:
            text = render_turn(m.content, m.reasoning, m.tool_calls, call_json)
        out.append(f"{p.prefix}{m.role}{p.infix}{text}{p.suffix}")
    return "".join(out) + f"{p.prefix}assistant{p.infix}"


TOOL = {
    "type": "function",
    "function": {
        "name": "convert_currency",
        "description": "Convert an amount between currencies at today's rate (ECB <reference> & spot)",
        "parameters": {
            "type": "object",
            "properties": {
                "to": {"type": "string", "description": "ISO 4217 code", "enum": ["EUR", "USD", "JPY"]},
                "amount": {"type": "number"},
                "from": {"type": ["string", "null"], "description": "défaut: EUR"},
                "split": {"type": "array", "items": {"type": "object", "properties": {"b": {}, "a": {}}}},
            },
            "required": ["amount", "to"],
        },
    },
}  # fmt: skip
_SEARCH = {"type": "function", "function": {"name": "search_flights", "parameters": {"type": "object"}}}


def tool_probes() -> list[tuple[list, list[dict]]]:
    """Conversations with tools, calls (one and parallel), results and a trace that the Modelfile's
    tool template must render exactly as training does."""
    from tuneforge.records import Message
    from tuneforge.tool_use import ToolCall

    calls = (
        ToolCall("convert_currency", {"to": "JPY", "amount": 250.0, "split": [{"b": 1e-7, "a": "<&>"}]}, "c1"),
        ToolCall("search_flights", {"from": "LIS", "to": "NRT", "date": "2027-03-01"}, "c2"),
    )
    asked = [Message("user", "What is 250 EUR in yen, and are there flights Lisbon–Tokyo on 1 March?")]
    answered = [
        *asked,
        Message("assistant", "", calls, reasoning="Two lookups: the rate and the flights."),
        Message("tool", '{"amount": 41250}', tool_call_id="c1", name="convert_currency"),
        Message("tool", "TP 1234, 14:05", tool_call_id="c2", name="search_flights"),
        Message("assistant", "About ¥41,250; TP 1234 leaves at 14:05."),
        Message("user", "Thanks."),
    ]
    one_call = [
        Message("system", "You are a travel desk."),
        *asked,
        Message("assistant", "Let me check.", (calls[1],)),
        Message("tool", "none", tool_call_id="c2", name="search_flights"),
    ]
    return [(asked, [TOOL, _SEARCH]), (answered, [TOOL, _SEARCH]), (one_call, [_SEARCH]), (one_call[:2], [])]


def tool_support(tok, p: ChatPieces) -> str | None:
    """None when the tool template renders every tool probe as training does, else why not."""
    from tuneforge.chat_template import render_chat, tool_layout
    from tuneforge.ollama_json import ollama_tool

    if tool_layout(tok) != "hermes":
        return (
            "this model's own chat template renders tools (it is not in tuneforge's Hermes layout), and its "
            "Go version is not derived; write the TEMPLATE's .Tools and .ToolCalls by hand"
        )
    from tuneforge.records import Message

    plain: list[tuple[list, list[dict]]] = [([Message(m["role"], m["content"]) for m in conv], []) for conv in PROBES]
    for messages, tools in [*plain, *tool_probes()]:
        want = render_chat(tok, messages, tools, add_generation_prompt=True)
        if render_with_tools(p, messages, tools) != want:
            return "the chat template renders tool calls or results differently from the Hermes layout"
    dropped = ollama_tool(TOOL)[1]
    assert not dropped, dropped  # the probe uses only the fields Ollama keeps
    return None
