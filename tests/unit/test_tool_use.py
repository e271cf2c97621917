"""Chat records with tool calls and reasoning traces: validation with file:line and field, and
lossless round trips through every format that can hold them."""

from __future__ import annotations

import json
import re

import pytest

from tuneforge.data.io import read_records, write_records
from tuneforge.errors import DataError
from tuneforge.records import EvalItem, Example
from tuneforge.tool_text import parse_turn, render_turn, strip_reasoning
from tuneforge.tool_use import ToolCall

RATE = {
    "type": "function",
    "function": {
        "name": "get_exchange_rate",
        "description": "Current exchange rate between two currencies",
        "parameters": {
            "type": "object",
            "properties": {"base": {"type": "string", "pattern": "^[A-Z]{3}$"}, "quote": {"type": "string"}},
            "required": ["base", "quote"],
            "additionalProperties": False,
        },
    },
}
FLIGHT = {
    "type": "function",
    "function": {
        "name": "search_flights",
        "parameters": {
            "type": "object",
            "properties": {"origin": {"type": "string"}, "destination": {"type": "string"}, "passengers": {"type": "integer", "minimum": 1}},
            "required": ["origin", "destination"],
        },
    },
}  # fmt: skip


def conversation(**change) -> dict:
    """A call, its result and the answer from it; a parallel call; a trace."""
    d = {
        "id": "t1",
        "domain": "finance",
        "tools": [RATE, FLIGHT],
        "messages": [
            {"role": "system", "content": "You are a travel and finance assistant."},
            {"role": "user", "content": "EUR to USD, and flights LIS to OPO for 2?"},
            {
                "role": "assistant",
                "content": "",
                "reasoning_content": "Two lookups, independent: call both.",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "get_exchange_rate", "arguments": {"base": "EUR", "quote": "USD"}}},
                    {"id": "c2", "type": "function", "function": {"name": "search_flights", "arguments": {"origin": "LIS", "destination": "OPO", "passengers": 2}}},
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "name": "get_exchange_rate", "content": '{"rate": 1.08}'},
            {"role": "tool", "tool_call_id": "c2", "name": "search_flights", "content": '{"flights": ["TP1940"]}'},
            {"role": "assistant", "content": "1 EUR = 1.08 USD; flight TP1940 goes LIS to OPO."},
        ],
    }  # fmt: skip
    d.update(change)
    return json.loads(json.dumps(d))  # a copy: tests change it


def write_jsonl(path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_an_example_carries_structured_calls_results_tools_and_a_trace():
    ex = Example.from_dict(conversation())
    call = ex.messages[2]
    assert call.tool_calls == (
        ToolCall("get_exchange_rate", {"base": "EUR", "quote": "USD"}, "c1"),
        ToolCall("search_flights", {"origin": "LIS", "destination": "OPO", "passengers": 2}, "c2"),
    )
    assert call.reasoning == "Two lookups, independent: call both." and call.content == ""
    assert ex.messages[3].tool_call_id == "c1" and ex.messages[3].name == "get_exchange_rate"
    assert [t["function"]["name"] for t in ex.tools] == ["get_exchange_rate", "search_flights"]
    assert Example.from_dict(ex.to_dict()) == ex and "tools" not in ex.meta


def test_arguments_given_as_json_text_and_content_null_read_as_the_api_writes_them():
    d = conversation()
    d["messages"][2]["content"] = None
    for c in d["messages"][2]["tool_calls"]:
        c["function"]["arguments"] = json.dumps(c["function"]["arguments"])
    assert Example.from_dict(d) == Example.from_dict(conversation())


def _broken(mutate) -> dict:
    d = conversation()
    mutate(d)
    return d


@pytest.mark.parametrize(
    "mutate,words,field",
    [
        (lambda d: d["messages"][2]["tool_calls"][0]["function"]["arguments"].update(base="euro"),
         "does not match '^[A-Z]{3}$'", "messages[2].tool_calls[0].function.arguments.base"),
        (lambda d: d["messages"][2]["tool_calls"][0]["function"]["arguments"].pop("quote"),
         "'quote' is a required property", "messages[2].tool_calls[0].function.arguments"),
        (lambda d: d["messages"][2]["tool_calls"][1]["function"].update(name="book_hotel"),
         "undeclared tool 'book_hotel'", "messages[2].tool_calls[1].function.name"),
        (lambda d: d["messages"][2]["tool_calls"][1]["function"].update(arguments="[1, 2]"),
         "arguments must be a JSON object", "messages[2].tool_calls[1].function.arguments"),
        (lambda d: d["messages"][3].update(tool_call_id="c9"),
         "call id 'c9', which no earlier call has", "messages[3].tool_call_id"),
        (lambda d: d["messages"][4].update(name="get_exchange_rate"),
         "is not the name of the call it answers ('search_flights')", "messages[4].name"),
        (lambda d: d.update(tools=[RATE]), "undeclared tool 'search_flights'", "messages[2].tool_calls[1].function.name"),
        (lambda d: d.update(tools=[RATE, RATE]), "declared twice", "tools[1].function.name"),
        (lambda d: d["tools"][0]["function"].update(parameters={"type": "object", "properties": {"a": {"type": "text"}}}),
         "are not a JSON schema", "tools[0].function.parameters"),
        (lambda d: d["messages"][1].update(tool_calls=[{"function": {"name": "get_exchange_rate", "arguments": {}}}]),
         "only assistant turns make tool calls", "messages[1].tool_calls"),
    ],
)  # fmt: skip
def test_a_broken_call_is_an_error_naming_file_line_and_field(tmp_path, mutate, words, field):
    path = tmp_path / "tools.jsonl"
    write_jsonl(path, [conversation(id="ok"), _broken(mutate)])
    with pytest.raises(DataError) as err:
        read_records(path)
    assert words in err.value.message and err.value.line == 2 and err.value.field == field
    assert f"{path}:2" in str(err.value)


def test_a_tool_turn_written_as_plain_text_before_tool_calls_existed_still_reads():
    ex = Example.from_dict({"messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": "42"},
                                         {"role": "assistant", "content": "a"}]})  # fmt: skip
    assert ex.messages[1].content == "42" and not ex.tools


@pytest.mark.parametrize("fmt", ["jsonl", "openai", "sharegpt", "hermes"])
def test_every_format_round_trips_calls_parallel_calls_results_and_traces_exactly(tmp_path, fmt):
    plain = {
        "id": "t2",
        "domain": "travel",
        "tools": [FLIGHT],
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! No lookup needed."}],
    }
    words_then_call = conversation(id="t3", messages=[
        {"role": "user", "content": "Flights MAD to BCN?"},
        {"role": "assistant", "content": "Let me search.", "tool_calls": [{"id": "call_0", "type": "function", "function": {"name": "search_flights", "arguments": {"origin": "MAD", "destination": "BCN"}}}]},
        {"role": "tool", "tool_call_id": "call_0", "name": "search_flights", "content": "[]"},
        {"role": "assistant", "content": "None today.", "reasoning_content": "Empty list: say so."},
    ])  # fmt: skip
    # sharegpt and hermes carry no call ids: they read back numbered call_0, call_1, … in order
    rows = [conversation() if fmt in ("jsonl", "openai") else _numbered(conversation()), plain, words_then_call]
    src = tmp_path / "in.jsonl"
    write_jsonl(src, rows)
    records = read_records(src, "jsonl")
    out = write_records(records, tmp_path / f"out.{fmt}.jsonl", fmt)
    again = read_records(out, fmt)
    keep = ("messages", "tools") if fmt == "openai" else None  # openai holds only messages and tools
    view = lambda r: {k: v for k, v in r.to_dict().items() if keep is None or k in keep}  # noqa: E731
    assert [view(r) for r in again] == [view(r) for r in records]
    assert write_records(again, tmp_path / "again.jsonl", fmt).read_text() == out.read_text()


def _numbered(d: dict) -> dict:
    d = json.loads(json.dumps(d))
    for k, c in enumerate(d["messages"][2]["tool_calls"]):
        c["id"] = f"call_{k}"
    d["messages"][3]["tool_call_id"], d["messages"][4]["tool_call_id"] = "call_0", "call_1"
    return d


def test_llama_factory_sharegpt_with_function_call_and_observation_reads_into_structure(tmp_path):
    row = {
        "conversations": [
            {"from": "human", "value": "EUR in USD?"},
            {"from": "function_call", "value": '{"name": "get_exchange_rate", "arguments": {"base": "EUR", "quote": "USD"}}'},
            {"from": "observation", "value": '{"rate": 1.08}'},
            {"from": "gpt", "value": "1.08"},
        ],
        "tools": json.dumps([RATE["function"]]),
    }  # fmt: skip
    path = tmp_path / "lf.json"
    path.write_text(json.dumps([row]))
    (ex,) = read_records(path)
    assert ex.messages[1].tool_calls == (ToolCall("get_exchange_rate", {"base": "EUR", "quote": "USD"}, "call_0"),)
    assert ex.messages[2].role == "tool" and ex.messages[2].tool_call_id == "call_0"
    assert ex.tools == [RATE]


def test_files_with_tools_load_in_datasets(tmp_path):
    import datasets

    write_records([Example.from_dict(conversation(id=str(i))) for i in range(3)], tmp_path / "d.jsonl")
    ds = datasets.load_dataset("json", data_files=str(tmp_path / "d.jsonl"), split="train")
    assert ds.num_rows == 3 and {"messages", "tools"} <= set(ds.column_names)
    assert ds[0]["messages"][2]["tool_calls"][1]["function"]["name"] == "search_flights"


def test_hermes_text_parses_into_calls_and_a_trace_and_renders_back():
    text = render_turn("Checking.", "Need the rate.", [ToolCall("get_exchange_rate", {"base": "EUR", "quote": "USD"})])
    assert text == (
        "<think>\nNeed the rate.\n</think>\n\nChecking.\n<tool_call>\n"
        '{"name": "get_exchange_rate", "arguments": {"base": "EUR", "quote": "USD"}}\n</tool_call>'
    )
    turn = parse_turn(text)
    assert (turn.content, turn.reasoning, turn.calls, turn.malformed) == (
        "Checking.", "Need the rate.", [ToolCall("get_exchange_rate", {"base": "EUR", "quote": "USD"})], [])  # fmt: skip
    assert strip_reasoning(text).startswith("Checking.")


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>\n{"name": "x", "arguments": {"a": 1}\n</tool_call>',  # JSON cut short
        "<tool_call>\nnot json\n</tool_call>",
        '<tool_call>\n{"arguments": {}}\n</tool_call>',  # no name
        '<tool_call>\n{"name": "x", "arguments": {"a": 1}}',  # cut off by the token limit
    ],
)
def test_a_malformed_call_in_generated_text_is_kept_and_counted_never_dropped(text):
    turn = parse_turn("Sure. " + text)
    assert turn.calls == [] and len(turn.malformed) == 1 and turn.content == "Sure."


def test_an_eval_item_from_a_tool_example_expects_its_calls_or_an_abstention():
    call = Example.from_dict(conversation(messages=conversation()["messages"][:3]))
    item = EvalItem.from_example(call)
    assert [c.name for c in item.reference_tool_calls] == ["get_exchange_rate", "search_flights"]
    answer = EvalItem.from_example(Example.from_dict(conversation()))
    assert answer.reference_tool_calls == [] and answer.references == [
        "1 EUR = 1.08 USD; flight TP1940 goes LIS to OPO."
    ]
    assert EvalItem.from_dict(item.to_dict()) == item


def test_the_shipped_tool_set_is_what_its_script_writes_and_loads_everywhere():
    import subprocess
    import sys
    from collections import Counter
    from pathlib import Path

    import datasets

    from tuneforge.data.seed import load_examples

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, str(root / "scripts" / "make_tool_seed.py"), "--check"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    train, test = load_examples("seed:tools:train"), load_examples("seed:tools:test")
    assert len(train) + len(test) >= 250 and len({t["function"]["name"] for e in train for t in e.tools}) >= 12
    for split in (train, test):  # every pattern in both splits, all five domains
        assert set(Counter(e.meta["pattern"] for e in split)) == {"single", "parallel", "result", "no_tool"}
        assert len({e.domain for e in split}) == 5
    asked = lambda rows: {m.content for e in rows for m in e.messages if m.role == "user"}  # noqa: E731
    assert not asked(train) & asked(test)  # split by question
    files = {s: str(root / "data" / "tools" / f"{s}.jsonl") for s in ("train", "test")}
    ds = datasets.load_dataset("json", data_files=files)
    assert (ds["train"].num_rows, ds["test"].num_rows) == (len(train), len(test))


def tool_server(bad_arguments: bool):
    """A server that answers a request carrying tools with a call (arguments as JSON text, as the API
    writes them), a trace and no words; `bad_arguments` makes the call's arguments no JSON."""
    from chat_server import ChatServer

    def respond(body: dict) -> tuple[int, dict, float]:
        args = "{not json" if bad_arguments else json.dumps({"base": "EUR", "quote": "USD"})
        message = {"role": "assistant", "content": None, "reasoning_content": "Need the rate.",
                   "tool_calls": [{"id": "x1", "type": "function",
                                   "function": {"name": "get_exchange_rate", "arguments": args}}]}  # fmt: skip
        if "tools" not in body:
            message = {"role": "assistant", "content": "No tools, so in words."}
        return 200, {"choices": [{"message": message}]}, 0

    return ChatServer(respond)


@pytest.mark.parametrize("bad_arguments", [False, True])
def test_a_served_model_gets_the_tools_and_its_calls_come_back_as_calls(bad_arguments):
    from tuneforge.evaluate.metrics.tool_calls import score_calls
    from tuneforge.generation import GenerationConfig, answer_with_llm
    from tuneforge.llm.openai_http import OpenAIChatLLM

    server = tool_server(bad_arguments)
    try:
        llm = OpenAIChatLLM("m", server.url, api_key_env="")
        later = conversation()["messages"]  # a call, its results, then the answer: the prompt holds a call
        items = [
            EvalItem.from_example(Example.from_dict(conversation(id="call", messages=later[:3]))),
            EvalItem.from_example(Example.from_dict(conversation(id="answer", messages=later))),
            EvalItem.from_example(Example.from_dict({"id": "plain", "messages": later[:2] + [later[-1]]})),
        ]
        gens = answer_with_llm(llm, items, GenerationConfig(max_new_tokens=16), "served")
    finally:
        server.close()
    bodies = [r["body"] for r in server.seen]
    with_tools = [b for b in bodies if "tools" in b]
    assert len(with_tools) == 2 and len(bodies) == 3  # the item without tools is asked without them
    assert [t["function"]["name"] for t in with_tools[0]["tools"]] == ["get_exchange_rate", "search_flights"]
    sent = next(b for b in with_tools if len(b["messages"]) > 3)["messages"]
    assert isinstance(sent[2]["tool_calls"][0]["function"]["arguments"], str)  # the API's form
    assert sent[3]["tool_call_id"] == "c1" and sent[3]["role"] == "tool"
    turn = parse_turn(gens[0].generation)
    assert turn.reasoning == "Need the rate."
    if bad_arguments:  # a call whose arguments are not JSON is counted, not dropped
        assert turn.calls == [] and len(turn.malformed) == 1
        assert score_calls(gens[0].generation, gens[0].tools, gens[0].reference_tool_calls)["tool_valid"] == 0
    else:
        assert turn.calls == [ToolCall("get_exchange_rate", {"base": "EUR", "quote": "USD"})]
        assert score_calls(gens[0].generation, gens[0].tools, gens[0].reference_tool_calls)["tool_name"] == 0
    assert gens[2].generation == "No tools, so in words."


def test_distilling_with_tools_keeps_only_valid_calls_and_counts_the_rejects_by_reason():
    from tuneforge.data.teacher import distill

    answers = {  # by the user's question: what the teacher writes
        "a": '<tool_call>\n{"name": "get_exchange_rate", "arguments": {"base": "EUR", "quote": "USD"}}\n</tool_call>',
        "b": '<tool_call>\n{"name": "get_exchange_rate", "arguments": {"base": "EUR"\n</tool_call>',  # cut JSON
        "c": '<tool_call>\n{"name": "get_exchange_rate", "arguments": {"base": "euro", "quote": "USD"}}\n</tool_call>',
        "d": '<tool_call>\n{"name": "book_hotel", "arguments": {}}\n</tool_call>',
        "e": "<think>\nNo lookup needed.\n</think>\n\nA euro is the currency of 20 EU countries.",
        "f": "",
    }

    class Teacher:
        name = "teacher"
        asked: list = []

        def chat(self, conversations, sampling):
            self.asked.append(sampling)
            return [[answers[c[-1]["content"]]] for c in conversations]

    prompts = [
        EvalItem(messages=[{"role": "user", "content": k}], references=[""], id=k, tools=[RATE]) for k in answers
    ]
    teacher = Teacher()
    records, report = distill(teacher, prompts)
    assert teacher.asked[0].tools == [RATE]  # the schemas went with the request
    assert [r.id for r in records] == ["distill-a", "distill-e"]
    assert records[0].response_calls == (ToolCall("get_exchange_rate", {"base": "EUR", "quote": "USD"}, "call_0"),)
    assert records[1].messages[-1].reasoning == "No lookup needed." and records[1].tools == [RATE]
    assert report["tool_calls"]["rejected"] == {"malformed": 1, "schema": 2}
    assert report["tool_calls"]["rejected_ids"] == {"malformed": ["b"], "schema": ["c", "d"]}
    assert report["empty_answers"] == 1 and report["kept"] == 2


def test_data_stats_counts_tools_calls_parallel_turns_results_and_traces(tmp_path, capsys):
    from tuneforge.cli import main

    path = tmp_path / "d.jsonl"
    plain = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
    write_jsonl(path, [conversation(), conversation(id="t2"), plain])
    assert main(["data", "stats", str(path), "--tokenizer", "none", "--json"]) == 0
    t = json.loads(capsys.readouterr().out)["tool_use"]
    assert t == {"records_with_tools": 2, "tools_declared": 2, "calls": 4, "turns_with_calls": 2,
                 "parallel_call_turns": 2, "tool_results": 4, "reasoning_traces": 2, "turns_with_markup": 0,
                 "calls_per_tool": {"get_exchange_rate": 2, "search_flights": 2}}  # fmt: skip
    assert main(["data", "stats", str(path), "--tokenizer", "none"]) == 0
    assert "tool use: 2 records with tools (2 tools), 4 calls in 2 turns (2 parallel)" in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["alpaca", "self_instruct", "superni"])
def test_a_format_of_plain_strings_refuses_calls_and_traces_instead_of_dropping_them(tmp_path, fmt):
    ex = Example.from_dict(conversation(task="t"))
    with pytest.raises(DataError, match=f"which the {fmt} format cannot hold"):
        write_records([ex], tmp_path / "out.json", fmt)
    assert not (tmp_path / "out.json").exists()


# --------------------------------------------------------------------------- found by a blind fuzz of the CLI
def _two_results_reversed() -> dict:
    d = conversation()
    d["messages"][3], d["messages"][4] = d["messages"][4], d["messages"][3]  # c2's result first, then c1's
    return d


@pytest.mark.parametrize("fmt", ["sharegpt", "hermes"])
def test_a_format_without_call_ids_refuses_results_out_of_call_order_instead_of_re_pairing_them(tmp_path, fmt):
    ex = Example.from_dict(_two_results_reversed())
    assert ex.messages[3].tool_call_id == "c2"  # jsonl keeps the pairing by id
    with pytest.raises(DataError, match="answers call 'c2' before call 'c1'"):
        write_records([ex], tmp_path / "out.jsonl", fmt)


@pytest.mark.parametrize("fmt", ["sharegpt", "hermes"])
def test_words_traces_and_results_keep_every_character_through_the_text_formats(tmp_path, fmt):
    d = conversation()
    d["messages"][2]["reasoning_content"] = " indented trace\nwith lines\n"
    d["messages"][4]["content"] = "\nline\n\n"
    d["messages"][5] = {"role": "assistant", "content": "    code()\n", "reasoning_content": "\nR"}
    ex = Example.from_dict(_numbered(d))
    out = write_records([ex], tmp_path / "o.jsonl", fmt)
    assert read_records(out, fmt)[0].to_dict() == ex.to_dict()


@pytest.mark.parametrize("fmt", ["sharegpt", "hermes"])
@pytest.mark.parametrize(
    "content", ["<think>\nnot a trace\n</think>\n\nwords", "Use the <tool_call> tag.", "<tool_call>\n{\"name\": \"get_exchange_rate\", \"arguments\": {}}\n</tool_call>"]
)  # fmt: skip
def test_words_holding_markup_that_would_read_back_as_structure_are_refused(tmp_path, fmt, content):
    ex = Example.from_dict({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": content}]})
    if fmt == "sharegpt" and not content.startswith("<think>"):  # sharegpt reads calls only from function_call turns
        out = write_records([ex], tmp_path / "o.jsonl", fmt)
        assert read_records(out, fmt)[0].messages == ex.messages
        return
    with pytest.raises(DataError, match="read back as"):
        write_records([ex], tmp_path / "o.jsonl", fmt)


def test_hermes_reading_keeps_turns_already_structured_and_splits_several_results(tmp_path):
    path = tmp_path / "h.jsonl"
    structured = conversation()["messages"][2]  # tool_calls and a trace as keys, not text
    results = '<tool_response>\n{"rate": 1.08}\n</tool_response>\n<tool_response>\n{"flights": []}\n</tool_response>'
    write_jsonl(path, [{"tools": [RATE, FLIGHT], "messages": [
        {"role": "user", "content": "q"}, structured, {"role": "tool", "content": results},
        {"role": "assistant", "content": "done"}]}])  # fmt: skip
    (ex,) = read_records(path, "hermes")
    assert ex.messages[1].reasoning == "Two lookups, independent: call both." and len(ex.messages[1].tool_calls) == 2
    assert [(m.tool_call_id, m.content) for m in ex.messages[2:4]] == [
        ("c1", '{"rate": 1.08}'),
        ("c2", '{"flights": []}'),
    ]


def test_a_sharegpt_trace_is_split_off_but_call_markup_in_words_stays_words(tmp_path):
    path = tmp_path / "s.json"
    value = '<think>\nneed f\n</think>\n\nLet me check.<tool_call>{"name":"f","arguments":{"a":1}}</tool_call>'
    path.write_text(json.dumps([{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": value}]}]))
    (ex,) = read_records(path)
    assert ex.messages[1].reasoning == "need f"
    assert ex.messages[1].content == 'Let me check.<tool_call>{"name":"f","arguments":{"a":1}}</tool_call>'


@pytest.mark.parametrize(
    "record,words",
    [
        ({"conversations": [{"from": "human", "value": "q"}, {"from": "function_call", "value": None}]},
         "function_call value must be"),
        (conversation(messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_exchange_rate", "arguments": '{"base": "EUR", "base": "GBP", "quote": "USD"}'}}]}]),
         "duplicate key 'base'"),
        (conversation(messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_exchange_rate", "arguments": '{"base": NaN}'}}]}]), "not a JSON number"),
        (conversation(messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_exchange_rate", "arguments": '{"base": ' + "1" * 5000 + "}"}}]}]), "too long to read"),
        (conversation(messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_exchange_rate", "arguments": "[" * 100000}}]}]), "nested too deeply"),
        (conversation(tools=[{"name": "f", "parameters": {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}}],
                      messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": [
                          {"function": {"name": "f", "arguments": {"a": 1}}}]}]), "cannot be applied"),
        (conversation(messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_exchange_rate", "arguments": {"base": "EUR", "quote": "USD"}}},
            {"function": {"name": "search_flights", "arguments": {"origin": "LIS", "destination": "OPO"}}}]},
            {"role": "tool", "content": "1"}, {"role": "tool", "content": "2"}]), "must follow exactly one unanswered call"),
    ],
)  # fmt: skip
def test_what_once_crashed_or_passed_unchecked_is_a_one_line_error_naming_the_line(tmp_path, record, words):
    path = tmp_path / "bad.jsonl"
    write_jsonl(path, [record])
    with pytest.raises(DataError, match=re.escape(words)) as err:
        read_records(path)
    assert err.value.line == 1


def test_other_message_keys_are_kept_and_the_older_function_call_form_is_read_as_a_call(tmp_path):
    d = conversation()
    d["messages"][5]["weight"] = 0  # OpenAI fine-tuning: do not train on this turn
    d["messages"][1]["name"] = "alice"  # the API's participant name
    ex = Example.from_dict(d)
    assert ex.messages[5].extra == {"weight": 0} and ex.messages[1].name == "alice"
    for fmt in ("jsonl", "openai"):
        out = write_records([ex], tmp_path / f"o.{fmt}.jsonl", fmt)
        assert read_records(out, fmt)[0].messages == ex.messages
    legacy = {"role": "assistant", "content": None, "function_call": {"name": "get_exchange_rate",
              "arguments": '{"base": "EUR", "quote": "USD"}'}}  # fmt: skip
    old = Example.from_dict(conversation(messages=[{"role": "user", "content": "q"}, legacy]))
    assert old.messages[1].tool_calls == (ToolCall("get_exchange_rate", {"base": "EUR", "quote": "USD"}),)


def test_data_stats_points_at_calls_still_written_as_text(tmp_path, capsys):
    from tuneforge.cli import main

    hermes = write_records([Example.from_dict(conversation())], tmp_path / "h.jsonl", "hermes")
    assert main(["data", "stats", str(hermes), "--tokenizer", "none"]) == 0
    assert "read it with --from hermes" in capsys.readouterr().out
    assert main(["data", "stats", str(hermes), "--from", "hermes", "--tokenizer", "none", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tool_use"]["calls"] == 2


def test_tool_questions_are_written_from_the_schemas_then_answered_with_the_tools(tmp_path):
    from tuneforge.data.tool_questions import ToolSynthConfig, tool_synth

    src = tmp_path / "tools.jsonl"
    write_jsonl(src, [conversation()])  # one tool set: get_exchange_rate, search_flights

    class Teacher:
        name = "teacher"

        def chat(self, conversations, sampling):
            out = []
            for c in conversations:
                text = c[-1]["content"]
                if sampling.tools:  # answering: the rate question gets a valid call, the flight one a bad one
                    out.append(
                        [{"Rate EUR to USD?": said_rate, "Flights LIS to OPO?": said_bad}.get(text, "In words.")]
                    )
                elif "get_exchange_rate" in text and "without" not in text:
                    out.append(["Question: Rate EUR to USD?", "rate eur to usd?"][: sampling.n])  # a duplicate
                elif "search_flights" in text and "without" not in text:
                    out.append(["Flights LIS to OPO?", ""][: sampling.n])  # an empty one
                else:
                    out.append(["What is inflation?", "x " * 100][: sampling.n])  # a too-long one
            return out

    said_rate = '<tool_call>\n{"name": "get_exchange_rate", "arguments": {"base": "EUR", "quote": "USD"}}\n</tool_call>'
    said_bad = (
        '<tool_call>\n{"name": "search_flights", "arguments": {"origin": "LIS"}}\n</tool_call>'  # misses destination
    )
    records, report = tool_synth(Teacher(), ToolSynthConfig(tools=str(src), per_tool=2, no_tool=2))
    assert report["questions_asked_for"] == 6 and report["questions_kept"] == 3
    assert report["questions_rejected"] == {"empty": 1, "too long": 1, "duplicate": 1, "echoes the prompt": 0}
    assert report["answers"]["tool_calls"]["rejected"] == {"malformed": 0, "schema": 1}
    assert [(r.meta["pattern"], r.meta["intended_tool"]) for r in records] == [
        ("synth_call", "get_exchange_rate"), ("synth_no_tool", "")]  # fmt: skip
    assert records[0].response_calls[0].name == "get_exchange_rate" and records[0].tools == conversation()["tools"]
    assert records[0].messages[0].role == "system" and all(r.source == "tool_synth" for r in records)
    assert report["called_intended"] == 1 and report["answered_intended_questions"] == 1


@pytest.mark.parametrize(
    "text,calls,content,malformed",
    [
        ('{"name": "get_rate", "parameters": {"base": "EUR"}}', [("get_rate", {"base": "EUR"})], "", 0),
        ('<|python_tag|>{"name": "a", "arguments": {"x": 1}}', [("a", {"x": 1})], "", 0),
        ('{"name": "a", "parameters": {}}; {"name": "b", "parameters": {"y": "}; {"}}',
         [("a", {}), ("b", {"y": "}; {"})], "", 0),
        ('{"name": "a", "parameters": {"x": 1', [], "", 1),  # cut off by the token limit: counted
        ('{"name": "a", "parameters": {}} I checked it.', [("a", {})], "I checked it.", 0),
        ('The answer is {"name": "a"}', [], 'The answer is {"name": "a"}', 0),  # words that quote JSON stay words
        ('{"title": "a"}', [], '{"title": "a"}', 0),
    ],
)  # fmt: skip
def test_llama3_json_calls_in_generated_text_are_read_as_calls(text, calls, content, malformed):
    turn = parse_turn(text)
    assert [(c.name, c.arguments) for c in turn.calls] == calls
    assert turn.content == content and len(turn.malformed) == malformed
