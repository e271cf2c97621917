import pytest

from tuneforge.errors import DataError, UnknownNameError
from tuneforge.records import Example, Message
from tuneforge.train.sft import IGNORE, collate, count_targets, encode_example, encode_examples


def _target_text(enc, tok):
    return tok.decode([t for t in enc.labels if t != IGNORE])


def test_only_assistant_tokens_are_targets(tiny_tok):
    ex = Example(messages=[Message("user", "What is a loan?"), Message("assistant", "Money you borrow.")])
    enc = encode_example(ex, tiny_tok)
    assert _target_text(enc, tiny_tok) == "Money you borrow.<|im_end|>"
    assert enc.labels[0] == IGNORE


def test_masks_assistant_last_all(tiny_tok):
    ex = Example(messages=[Message("user", "Q1"), Message("assistant", "first answer"),
                           Message("user", "Q2"), Message("assistant", "second answer")])
    assert _target_text(encode_example(ex, tiny_tok, mask="assistant"), tiny_tok) == \
        "first answer<|im_end|>second answer<|im_end|>"
    assert _target_text(encode_example(ex, tiny_tok, mask="last"), tiny_tok) == "second answer<|im_end|>"
    enc_all = encode_example(ex, tiny_tok, mask="all")
    assert all(label != IGNORE for label in enc_all.labels)
    with pytest.raises(UnknownNameError, match="Did you mean: last"):
        encode_example(ex, tiny_tok, mask="lats")


def test_truncated_away_targets_are_dropped_and_all_gone_is_an_error(tiny_tok):
    long_prompt = Example(messages=[Message("user", "word " * 200), Message("assistant", "yes")])
    short = Example(messages=[Message("user", "hi"), Message("assistant", "hello")])
    kept, dropped = encode_examples([long_prompt, short], tiny_tok, max_length=64)
    assert dropped == 1 and len(kept) == 1
    with pytest.raises(DataError, match="max_length"):
        encode_examples([long_prompt], tiny_tok, max_length=64)


def test_collate_pads_right_and_counts_targets(tiny_tok, examples):
    encs, _ = encode_examples(examples[:3], tiny_tok)
    batch = collate(encs, tiny_tok.pad_token_id)
    width = max(len(e.input_ids) for e in encs)
    assert batch["input_ids"].shape == batch["labels"].shape == (3, width)
    assert batch["attention_mask"].sum() == sum(len(e.input_ids) for e in encs)
    assert count_targets(batch) == sum(e.n_targets for e in encs)
