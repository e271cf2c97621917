"""Which tokens a conversation with tools teaches: the assistant's calls and words are targets, the
tool definitions and tool results are context, and a reasoning trace is a target, context or
absent as `train.reasoning` says. Rendering follows the template: one that renders tools gets
`tools=` and structured messages, any other the Hermes layout."""

from __future__ import annotations

import pytest

from tuneforge.chat_template import render_chat, tool_layout
from tuneforge.records import Example
from tuneforge.tokenisation import IGNORE, encode_example, target_spans

TOOL = {
    "type": "function",
    "function": {
        "name": "drug_interactions",
        "description": "Known interactions between two drugs",
        "parameters": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                       "required": ["a", "b"]},
    },
}  # fmt: skip
# the call as Ollama renders it (compact arguments, keys sorted), so an exported model sees what it learnt
CALL = '<tool_call>\n{"name": "drug_interactions", "arguments": {"a":"warfarin","b":"aspirin"}}\n</tool_call>'


def example() -> Example:
    return Example.from_dict({
        "tools": [TOOL],
        "messages": [
            {"role": "user", "content": "Can I take aspirin with warfarin?"},
            {"role": "assistant", "content": "", "reasoning_content": "Interaction check needed.",
             "tool_calls": [{"id": "c1", "function": {"name": "drug_interactions",
                                                      "arguments": {"a": "warfarin", "b": "aspirin"}}}]},
            {"role": "tool", "tool_call_id": "c1", "name": "drug_interactions", "content": "major: bleeding risk"},
            {"role": "assistant", "content": "No: together they raise the risk of bleeding."},
        ],
    })  # fmt: skip


@pytest.mark.parametrize(
    "reasoning,targets,trace_in_text",
    [
        ("train", ["<think>\nInteraction check needed.\n</think>\n\n" + CALL + "<|im_end|>",
                   "No: together they raise the risk of bleeding.<|im_end|>"], True),
        ("mask", [CALL + "<|im_end|>", "No: together they raise the risk of bleeding.<|im_end|>"], True),
        ("drop", [CALL + "<|im_end|>", "No: together they raise the risk of bleeding.<|im_end|>"], False),
    ],
)  # fmt: skip
def test_calls_and_answers_are_targets_results_and_schemas_are_not_and_the_trace_follows_the_setting(
    tiny_tok, reasoning, targets, trace_in_text
):
    assert tool_layout(tiny_tok) == "hermes"  # the tiny model's ChatML template renders no tools itself
    text, spans = target_spans(example(), tiny_tok, "assistant", reasoning)
    assert [text[a:b] for a, b in spans] == targets
    assert ("Interaction check needed." in text) is trace_in_text
    assert '<tools>\n{"type":"function","function":{"name":"drug_interactions"' in text  # the schema, as context
    assert "<tool_response>\nmajor: bleeding risk\n</tool_response>" in text  # the result, as context
    enc = encode_example(example(), tiny_tok, 4096, "assistant", reasoning)
    taught = tiny_tok.decode([t for t, lab in zip(enc.input_ids, enc.labels) if lab != IGNORE])
    assert taught.replace(" ", "") == "".join(targets).replace(" ", "")  # the tokens are the spans'
    assert "bleeding risk" not in taught and 'drug_interactions","description' not in taught


def test_last_mask_teaches_only_the_final_answer(tiny_tok):
    text, spans = target_spans(example(), tiny_tok, "last", "train")
    assert [text[a:b] for a, b in spans] == ["No: together they raise the risk of bleeding.<|im_end|>"]


def test_a_template_that_renders_tools_gets_them_as_apply_chat_template_passes_them(tiny_tok):
    import copy

    tok = copy.deepcopy(tiny_tok)
    tok.chat_template = (
        "{% if tools %}<|im_start|>system\nTOOLS:{% for t in tools %} {{ t.function.name }}{% endfor %}<|im_end|>\n"
        "{% endif %}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
        "{% if m.tool_calls %}{% for c in m.tool_calls %}CALL {{ c.function.name }} {{ c.function.arguments | tojson }}"
        "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    assert tool_layout(tok) == "native"
    text = render_chat(tok, example().messages, example().tools)
    assert text.startswith("<|im_start|>system\nTOOLS: drug_interactions<|im_end|>")
    assert 'CALL drug_interactions {"a": "warfarin", "b": "aspirin"}' in text
    # this template ignores reasoning_content, so the trace is kept in the text, not lost
    assert "<think>\nInteraction check needed.\n</think>" in text
    text, spans = target_spans(example(), tok, "assistant", "mask")
    assert "Interaction check needed." not in "".join(text[a:b] for a, b in spans)
    assert any("CALL drug_interactions" in text[a:b] for a, b in spans)


def test_a_plain_chat_renders_exactly_as_before(tiny_tok):
    ex = Example.from_dict({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]})
    plain = tiny_tok.apply_chat_template([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
                                         tokenize=False)  # fmt: skip
    assert render_chat(tiny_tok, ex.messages, ex.tools) == plain


LLAMA3_CALL = '{"name": "drug_interactions", "parameters": {"a": "warfarin", "b": "aspirin"}}'


@pytest.mark.parametrize(
    "reasoning,first_target",
    [
        ("train", "<think>\nInteraction check needed.\n</think>\n\n" + LLAMA3_CALL + "<|eot_id|>"),
        ("mask", LLAMA3_CALL + "<|eot_id|>"),
        ("drop", LLAMA3_CALL + "<|eot_id|>"),
    ],
)
def test_the_llama3_template_writes_json_calls_ipython_results_and_the_tools_in_the_system_turn(
    tiny_tok, reasoning, first_target
):
    import copy

    from tuneforge.chat_template import set_chat_template

    tok = set_chat_template(copy.deepcopy(tiny_tok), "llama3")
    assert tool_layout(tok) == "native"
    text, spans = target_spans(example(), tok, "assistant", reasoning)
    assert [text[a:b] for a, b in spans] == [first_target, "No: together they raise the risk of bleeding.<|eot_id|>"]
    system = text.split("<|eot_id|>")[0]
    assert system.startswith("<|im_start|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython")
    assert '    "function": {\n        "name": "drug_interactions"' in system  # the schema, indented, as context
    assert "<|start_header_id|>ipython<|end_header_id|>\n\nmajor: bleeding risk<|eot_id|>" in text  # the result


def test_llama3_parallel_calls_are_joined_by_semicolons_and_read_back_as_calls(tiny_tok):
    import copy

    from tuneforge.chat_template import set_chat_template
    from tuneforge.tool_text import parse_turn

    tok = set_chat_template(copy.deepcopy(tiny_tok), "llama3")
    ex = Example.from_dict({
        "tools": [TOOL],
        "messages": [
            {"role": "user", "content": "Check warfarin with aspirin and with ibuprofen."},
            {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "drug_interactions", "arguments": {"a": "warfarin", "b": "aspirin"}}},
                {"function": {"name": "drug_interactions", "arguments": {"a": "warfarin", "b": "ibuprofen"}}}]},
        ],
    })  # fmt: skip
    text, spans = target_spans(ex, tok, "assistant", "train")
    answer = text[spans[0][0] : spans[0][1]].removesuffix("<|eot_id|>")
    assert answer == LLAMA3_CALL + '; {"name": "drug_interactions", "parameters": {"a": "warfarin", "b": "ibuprofen"}}'
    turn = parse_turn("<|python_tag|>" + answer)  # what a model answering in this layout generates
    assert [(c.name, c.arguments["b"]) for c in turn.calls] == [("drug_interactions", "aspirin"),
                                                               ("drug_interactions", "ibuprofen")]  # fmt: skip
    assert turn.content == "" and not turn.malformed


def test_llama3_refuses_words_beside_calls_instead_of_writing_what_it_cannot_read_back(tiny_tok):
    import copy

    from jinja2 import TemplateError

    from tuneforge.chat_template import render_chat, set_chat_template

    tok = set_chat_template(copy.deepcopy(tiny_tok), "llama3")
    ex = Example.from_dict({"tools": [TOOL], "messages": [
        {"role": "user", "content": "Check warfarin with aspirin."},
        {"role": "assistant", "content": "Let me check.",
         "tool_calls": [{"function": {"name": "drug_interactions", "arguments": {"a": "warfarin", "b": "aspirin"}}}]},
    ]})  # fmt: skip
    with pytest.raises(TemplateError, match="writes a tool-call turn as the calls alone"):
        render_chat(tok, ex.messages, ex.tools)


def test_training_data_a_template_refuses_is_a_data_error_naming_the_example(tiny_tok):
    import copy

    from tuneforge.chat_template import set_chat_template
    from tuneforge.errors import DataError
    from tuneforge.tokenisation import encode_examples

    tok = set_chat_template(copy.deepcopy(tiny_tok), "llama3")
    ex = Example.from_dict({"id": "rx-7", "tools": [TOOL], "messages": [
        {"role": "user", "content": "Check warfarin with aspirin."},
        {"role": "assistant", "content": "Let me check.",
         "tool_calls": [{"function": {"name": "drug_interactions", "arguments": {"a": "warfarin", "b": "aspirin"}}}]},
    ]})  # fmt: skip
    with pytest.raises(DataError, match=r"example 2 \(id rx-7.*refuses it: the llama3 template writes a tool-call"):
        encode_examples([example(), ex], tok)


def test_inspect_names_the_schema_keys_the_hermes_layout_leaves_out_of_the_prompt(tiny_tok):
    import copy

    from tuneforge.train.inspect import inspect_examples

    ex = example()
    tool = copy.deepcopy(TOOL)
    tool["function"]["parameters"]["properties"]["a"]["pattern"] = "^[a-z]+$"
    tool["function"]["parameters"]["additionalProperties"] = False
    ex.tools = [tool]
    shown = inspect_examples([ex], tiny_tok)
    assert "1 tools in the hermes layout" in shown
    assert "schema keys the Hermes layout does not show the model: a.pattern, parameters.additionalProperties" in shown
    assert "^[a-z]+$" not in shown.split("schema keys")[0]  # validated against, not in the prompt
    assert "schema keys" not in inspect_examples([example()], tiny_tok)
