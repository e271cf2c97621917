"""Chat templates: the tokenizer's own, a named one, or a Jinja file — and the end-of-turn check.

A model learns to end its answers with whatever token closes an assistant turn in the training
template. If generation stops on a different token, the tuned model never stops (the Llama-3
`<|eot_id|>` vs `<|end_of_text|>` bug). `check_end_of_turn` renders a conversation, finds the
token that closes the assistant turn, and fails loudly unless generation stops on it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tuneforge.errors import ConfigError, DataError, TuneforgeError, read_text, suggest

LLAMA3_TOOLS = (
    "Environment: ipython\n\nYou have access to the following functions. To call one, answer with only a JSON "
    'object {"name": function name, "parameters": an object of argument names and values}; for several calls, '
    'join the objects with "; ". Do not use variables.\n\n'
)

# The templates use `eos_token` (the tokenizer's) or their own markers; `add_generation_prompt`
# opens an assistant turn, as the Hugging Face templates do.
CHAT_TEMPLATES = {
    "chatml": (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
    # Llama 3.1's JSON tool calling: the tools (indented JSON) in the system turn, a call turn is the
    # call alone as {"name", "parameters"} (parallel calls joined by "; ", as vLLM's llama3_json parser
    # reads them), a result is an `ipython` turn. A plain chat renders as before tools existed.
    "llama3": (
        "{{ bos_token }}{% if tools %}<|start_header_id|>system<|end_header_id|>\n\n"
        + LLAMA3_TOOLS
        + "{% for t in tools %}"
        "{{ t | tojson(indent=4) }}\n\n{% endfor %}{% if messages and messages[0]['role'] == 'system' %}"
        "{{ messages[0]['content'] | trim }}{% endif %}<|eot_id|>{% endif %}"
        "{% for m in messages %}{% if not (tools and loop.first and m['role'] == 'system') %}"
        "{% if m['role'] == 'assistant' and m['tool_calls'] %}{% if m['content'].split('</think>')[-1] | trim %}"
        "{{ raise_exception('the llama3 template writes a tool-call turn as the calls alone (after a <think> trace, if "
        "any); this one also has words. Use a template with the Hermes layout for such turns') }}{% endif %}"
        "<|start_header_id|>assistant<|end_header_id|>\n\n{% if m['content'] | trim %}{{ m['content'] | trim }}\n\n"
        "{% endif %}{% for c in m['tool_calls'] %}"
        "{% set f = c['function'] if c['function'] is defined else c %}{% if not loop.first %}; {% endif %}"
        "{\"name\": {{ f['name'] | tojson }}, \"parameters\": {{ f['arguments'] | tojson }}}{% endfor %}<|eot_id|>"
        "{% else %}<|start_header_id|>{{ 'ipython' if m['role'] == 'tool' else m['role'] }}<|end_header_id|>\n\n"
        "{{ m['content'] | trim }}<|eot_id|>{% endif %}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
    ),
    "zephyr": (
        "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
    ),
    "alpaca": (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
        "{% elif m['role'] == 'user' %}### Instruction:\n{{ m['content'] }}\n\n"
        "{% else %}### Response:\n{{ m['content'] }}{{ eos_token }}\n\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}### Response:\n{% endif %}"
    ),
}


def check_chat_template(template: str) -> str | None:
    """The template's text when `template` names one (a known name or a .jinja file), after checking
    that Jinja can compile it — before any model is loaded or file written. '' → None."""
    if not template:
        return None
    if template in CHAT_TEMPLATES:
        return CHAT_TEMPLATES[template]
    if not (template.endswith(".jinja") or Path(template).is_file()):
        raise ConfigError(
            f"model.chat_template '{template}' is neither a known template nor a file."
            f"{suggest(template, CHAT_TEMPLATES)} Known: {', '.join(CHAT_TEMPLATES)}"
        )
    path = Path(template)
    if not path.is_file():
        raise ConfigError(f"model.chat_template: no such file {path}")
    text = read_text(path, "chat template")
    check_template_text(text, str(path), "model.chat_template")
    return text


# A chat template renders a conversation in milliseconds. Nested loops over range() render for hours
# (the sandbox caps each range at 100,000 items, not their product), so a template is first rendered
# on probe conversations under these bounds. A template whose cost grows with the data can still be
# slow on long conversations; one that runs away on its own is caught before anything is written.
RENDER_SECONDS = 5.0
RENDER_CHARS = 1_000_000
RANGE_ITEMS = 100_000  # range() items over one render, all calls together

_PROBES = (
    [{"role": "user", "content": "Hello?"}, {"role": "assistant", "content": "Hi."}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4."},
        {"role": "user", "content": "And 3+3?"},
        {"role": "assistant", "content": "6."},
    ],
)


class _OverBudget(Exception):
    """Rendering went past RENDER_SECONDS, RENDER_CHARS or RANGE_ITEMS."""


class _TemplateRaised(Exception):
    """The template's own raise_exception(): it refuses this probe (e.g. no system role), fine."""


def _bounded_environment():
    """transformers' chat-template environment (sandboxed, trim_blocks, loop controls, the
    `{% generation %}` tag, raise_exception) with range(), `*` and `**` charged to a budget."""
    import jinja2.ext
    from jinja2 import nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    from jinja2.utils import Namespace

    class Generation(jinja2.ext.Extension):  # transformers marks assistant text with it; here it just renders
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

        def _render(self, caller):
            return caller()

    class Bounded(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**"})
        deadline, range_left = 0.0, 0

        def start(self) -> None:
            self.deadline, self.range_left = time.monotonic() + RENDER_SECONDS, RANGE_ITEMS

        def check_time(self) -> None:
            if time.monotonic() > self.deadline:
                raise _OverBudget(f"rendering took over {RENDER_SECONDS:.0f} s")

        def bounded_range(self, *args):
            items = range(*args)
            self.range_left -= len(items)
            self.check_time()
            if self.range_left < 0:
                raise _OverBudget(f"its loops ask range() for over {RANGE_ITEMS:,} items in all")
            return items

        def call_binop(self, context, operator, left, right):
            if operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1:
                if right * abs(left).bit_length() > 4096:  # 10**10**10 alone would run for hours
                    raise _OverBudget(f"it computes {left}**{right}")
            if operator == "*":
                seq, n = (left, right) if isinstance(right, int) else (right, left)
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and n * len(seq) > RENDER_CHARS:
                    raise _OverBudget(f"it repeats a string or list {n:,} times")
            return super().call_binop(context, operator, left, right)

    def raise_exception(message):
        raise _TemplateRaised(message)

    env = Bounded(trim_blocks=True, lstrip_blocks=True, extensions=[Generation, jinja2.ext.loopcontrols])

    class BoundedNamespace(Namespace):
        def __setitem__(self, name, value):  # the one way a template accumulates: a namespace in a loop
            env.check_time()
            if isinstance(value, (str, list, tuple, dict)) and len(value) > RENDER_CHARS:
                raise _OverBudget(f"it builds a value of {len(value):,} items")
            Namespace.__setitem__(self, name, value)

    env.globals.update(
        range=env.bounded_range,
        raise_exception=raise_exception,
        namespace=BoundedNamespace,
        strftime_now=lambda fmt: time.strftime(fmt),
    )
    env.filters["tojson"] = lambda x, **kw: json.dumps(x, ensure_ascii=False, **kw)
    return env


def check_template_text(text: str, where: str, key: str = "model.chat_template") -> None:
    """Raise DataError unless `text` is Jinja that renders the probe conversations within the bounds
    above. A probe the template refuses with its own raise_exception is skipped."""
    from jinja2 import TemplateSyntaxError

    env = _bounded_environment()
    try:
        template = env.from_string(text)
    except TemplateSyntaxError as exc:
        raise DataError(
            f"chat template is not valid Jinja: {exc.message}. Fix the template ({key})", path=where, line=exc.lineno
        ) from None
    for messages in _PROBES:
        for add_generation_prompt in (False, True):
            env.start()
            size = 0
            try:
                for chunk in template.generate(
                    messages=messages,
                    add_generation_prompt=add_generation_prompt,
                    bos_token="<s>",
                    eos_token="</s>",
                    tools=None,
                    documents=None,
                ):
                    size += len(chunk)
                    env.check_time()
                    if size > RENDER_CHARS:
                        raise _OverBudget(f"it renders over {RENDER_CHARS:,} characters")
            except _TemplateRaised:
                continue
            except _OverBudget as exc:
                raise DataError(
                    f"chat template runs away on a {len(messages)}-message conversation: {exc}. A template "
                    f"should only loop over the messages; fix it ({key})",
                    path=where,
                ) from None
            except Exception as exc:  # noqa: BLE001 — whatever a template raises on a plain chat is its bug
                raise DataError(
                    f"chat template fails on a {len(messages)}-message conversation ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0][:200] if str(exc) else ''}). Fix the template ({key})",
                    path=where,
                ) from None


def set_chat_template(tokenizer, template: str = "", eos_token: str = ""):
    """Use `template` ('' = the tokenizer's own, a name from CHAT_TEMPLATES, or a .jinja file)
    and, if given, make `eos_token` the token generation stops on. Returns the tokenizer."""
    if eos_token:
        if tokenizer.convert_tokens_to_ids(eos_token) in (None, tokenizer.unk_token_id):
            raise ConfigError(
                f"model.eos_token '{eos_token}' is not a token of this tokenizer. Use one of its "
                f"special tokens: {', '.join(tokenizer.all_special_tokens[:12])}"
            )
        tokenizer.eos_token = eos_token
    if not template:
        if not tokenizer.chat_template:
            raise ConfigError(
                "this tokenizer has no chat template. Set model.chat_template to one of "
                f"{', '.join(CHAT_TEMPLATES)} or to a .jinja file"
            )
        return tokenizer
    tokenizer.chat_template = check_chat_template(template)
    return tokenizer


# --------------------------------------------------------------------------- tools and traces
# How a conversation with tools, calls, tool results or reasoning traces reaches a template. A
# template that renders tools itself (its text uses `tools` and `tool_calls`, as Qwen's, Llama
# 3.1's and Hermes' do) gets the structured messages and `tools=`, as `apply_chat_template` passes
# them. Any other template (SmolLM2's, the named ones above) gets the Hermes layout — the tool
# definitions in the system turn, each call a <tool_call> block and each result a <tool_response>
# block in plain text — which is also what `tool_text.parse_turn` reads back from generated text.
# Tools and call arguments are written as Ollama writes them (`ollama_json`: compact JSON, argument
# keys sorted, only the schema fields Ollama keeps), so the exported Modelfile prompts the model
# with exactly what it was trained on.
# `tool_layout` says which a tokenizer gets; `train inspect` shows the rendering.
HERMES_SYSTEM = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{tools}\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within "
    '<tool_call></tool_call> XML tags:\n<tool_call>\n{{"name": <function-name>, "arguments": '
    "<args-json-object>}}\n</tool_call>"
)


def tool_layout(tokenizer) -> str:
    """'native' when the tokenizer's template renders tools and calls itself, else 'hermes'."""
    t = tokenizer.chat_template
    return "native" if isinstance(t, str) and "tools" in t and "tool_calls" in t else "hermes"


def hermes_tools_block(tools: list[dict]) -> str:
    """The system-turn block that lists `tools`, one per line, as Ollama's `{{ json $tool }}` writes them."""
    from tuneforge.ollama_json import ollama_tool

    return HERMES_SYSTEM.format(tools="\n".join(ollama_tool(t)[0] for t in tools))


def _hermes_messages(messages, tools: list[dict]) -> list[dict]:
    from tuneforge.ollama_json import call_json
    from tuneforge.tool_text import render_tool_result, render_turn

    out = []
    for m in messages:
        if m.role == "assistant":
            out.append({"role": "assistant", "content": render_turn(m.content, m.reasoning, m.tool_calls, call_json)})
        elif m.role == "tool" and (m.tool_call_id or m.name):
            out.append({"role": "tool", "content": render_tool_result(m.content)})
        else:
            out.append({"role": m.role, "content": m.content})
    if tools:
        block = hermes_tools_block(tools)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{block}"}
        else:
            out.insert(0, {"role": "system", "content": block})
    return out


def template_inputs(tokenizer, messages, tools: list[dict] | None = None) -> tuple[list[dict], dict]:
    """(messages, extra apply_chat_template arguments) for `messages` (records.Message) and `tools`:
    plain {role, content} dicts for a plain chat; for one with tools, calls, results or traces, the
    layout `tool_layout` names."""
    if not tools and not any(m.tool_calls or m.reasoning or m.tool_call_id for m in messages):
        return [{"role": m.role, "content": m.content} for m in messages], {}
    if tool_layout(tokenizer) == "hermes":
        return _hermes_messages(messages, tools or []), {}
    from tuneforge.tool_text import render_turn

    native_traces = "reasoning_content" in tokenizer.chat_template
    out = []
    for m in messages:
        d = m.to_dict()
        if m.reasoning and not native_traces:  # the template ignores reasoning_content: keep the trace in the text
            d.pop("reasoning_content")
            d["content"] = render_turn(m.content, m.reasoning)
        if m.tool_calls:  # transformers' templates take the function object ({"name", "arguments"})
            d["tool_calls"] = [c.to_dict() for c in m.tool_calls]
        out.append(d)
    return out, ({"tools": tools} if tools else {})


def render_chat(tokenizer, messages, tools: list[dict] | None = None, add_generation_prompt: bool = False) -> str:
    """The text of a conversation (records.Message) with its tools, in the tokenizer's template."""
    msgs, extra = template_inputs(tokenizer, messages, tools)
    return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=add_generation_prompt, **extra)


def stop_token_ids(tokenizer, model=None) -> list[int]:
    """The ids generation stops on: the tokenizer's EOS and the model's generation_config EOS."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    gen = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids |= set(gen if isinstance(gen, list) else [gen] if gen is not None else [])
    return sorted(ids)


def end_of_turn_token(tokenizer) -> tuple[int, str]:
    """(id, text) of the token that closes an assistant turn in the tokenizer's template."""
    from jinja2 import TemplateError

    probe = "tuneforge probe answer"
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "q"}, {"role": "assistant", "content": probe}], tokenize=False
        )
    except TemplateError as exc:  # its own raise_exception(): it refuses the plainest conversation there is
        raise TuneforgeError(
            f"the chat template refuses a user/assistant conversation ({exc}), so nothing can be trained "
            f"or answered with it. Fix the template, or set model.chat_template to one of {', '.join(CHAT_TEMPLATES)}"
        ) from None
    end = text.rfind(probe) + len(probe)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    after = [(i, s) for i, (s, _) in zip(enc["input_ids"], enc["offset_mapping"]) if s >= end]
    if not after:
        raise TuneforgeError(
            "the chat template adds nothing after an assistant answer, so a tuned model "
            "cannot learn to stop. Use a template that ends turns with an end token "
            f"(model.chat_template: {', '.join(CHAT_TEMPLATES)})"
        )
    tok_id = after[0][0]
    return tok_id, tokenizer.convert_ids_to_tokens(tok_id)


def check_end_of_turn(tokenizer, model=None) -> int:
    """Fail loudly unless generation stops on the token that ends assistant turns in training."""
    tok_id, tok = end_of_turn_token(tokenizer)
    stops = stop_token_ids(tokenizer, model)
    if tok_id not in stops:
        names = ", ".join(f"'{tokenizer.convert_ids_to_tokens(i)}' (id {i})" for i in stops) or "nothing"
        raise ConfigError(
            f"the chat template ends assistant turns with '{tok}' (id {tok_id}) but generation stops at {names}: "
            f"a model trained on it would not stop answering. Set model.eos_token='{tok}' if it is a special "
            "token, or choose a model.chat_template that ends turns with the tokenizer's EOS"
        )
    return tok_id
