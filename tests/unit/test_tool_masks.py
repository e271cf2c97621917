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
CALL = '<tool_call>\n{"name": "drug_interactions", "arguments": {"a": "warfarin", "b": "aspirin"}}\n</tool_call>'


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
    assert '<tools>\n{"type": "function", "function": {"name": "drug_interactions"' in text  # the schema, as context
    assert "<tool_response>\nmajor: bleeding risk\n</tool_response>" in text  # the result, as context
    enc = encode_example(example(), tiny_tok, 4096, "assistant", reasoning)
    taught = tiny_tok.decode([t for t, lab in zip(enc.input_ids, enc.labels) if lab != IGNORE])
    assert taught.replace(" ", "") == "".join(targets).replace(" ", "")  # the tokens are the spans'
    assert "bleeding risk" not in taught and 'drug_interactions", "description' not in taught


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
