import pytest

from tuneforge.errors import DataError
from tuneforge.records import EvalItem, Example, Generation, Message, PreferencePair


def test_message_rejects_unknown_role():
    with pytest.raises(DataError, match="unknown role 'bot'"):
        Message("bot", "hi")


def test_example_needs_an_assistant_turn():
    with pytest.raises(DataError, match="assistant turn"):
        Example(messages=[Message("user", "hi")])


def test_example_prompt_response_and_instruction():
    ex = Example.from_dict(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Q1"},
                {"role": "assistant", "content": "A1"},
                {"role": "user", "content": "Q2"},
                {"role": "assistant", "content": "A2"},
            ]
        }
    )
    assert ex.response == "A2"
    assert ex.instruction == "Q2"
    assert [m.content for m in ex.prompt] == ["Be brief.", "Q1", "A1", "Q2"]


@pytest.mark.parametrize(
    "record",
    [
        {"prompt": "What is APR?", "completion": "The yearly cost of borrowing."},
        {
            "prompt": [{"role": "user", "content": "What is APR?"}],
            "completion": [{"role": "assistant", "content": "The yearly cost of borrowing."}],
        },
    ],
)
def test_prompt_completion_standard_and_conversational(record):
    ex = Example.from_dict(record)
    assert ex.instruction == "What is APR?"
    assert ex.response == "The yearly cost of borrowing."


def test_unknown_top_level_keys_are_kept_in_meta():
    ex = Example.from_dict(
        {
            "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
            "rating": 4,
            "meta": {"kind": "fact"},
        }
    )
    assert ex.meta == {"rating": 4, "kind": "fact"}
    assert ex.to_dict()["meta"] == {"rating": 4, "kind": "fact"}


def test_preference_pair_reads_standard_and_writes_conversational():
    pair = PreferencePair.from_dict({"prompt": "q", "chosen": "good", "rejected": "bad", "domain": "legal"})
    d = pair.to_dict()
    assert d["chosen"] == [{"role": "assistant", "content": "good"}]
    assert PreferencePair.from_dict(d) == pair


def test_preference_pair_missing_field_names_it():
    with pytest.raises(DataError) as exc:
        PreferencePair.from_dict({"prompt": "q", "chosen": "good"})
    assert exc.value.field == "rejected"


def test_eval_item_from_example_and_generation_round_trip(examples):
    item = EvalItem.from_example(examples[0])
    assert item.references == [examples[0].response]
    assert item.messages == examples[0].prompt
    assert EvalItem.from_dict(item.to_dict()) == item
    gen = Generation(
        id=item.id,
        prompt=item.messages,
        generation="x",
        references=item.references,
        model="m",
        domain=item.domain,
        settings={"max_new_tokens": 4},
    )
    assert Generation.from_dict(gen.to_dict()) == gen
