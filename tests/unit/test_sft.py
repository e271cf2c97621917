import pytest

from tuneforge.errors import DataError, UnknownNameError
from tuneforge.records import Example, Message
from tuneforge.tokenisation import IGNORE, collate, count_targets, encode_example, encode_examples


def _target_text(enc, tok):
    return tok.decode([t for t in enc.labels if t != IGNORE])


def test_only_assistant_tokens_are_targets(tiny_tok):
    ex = Example(messages=[Message("user", "What is a loan?"), Message("assistant", "Money you borrow.")])
    enc = encode_example(ex, tiny_tok)
    assert _target_text(enc, tiny_tok) == "Money you borrow.<|im_end|>"
    assert enc.labels[0] == IGNORE


def test_masks_assistant_last_all(tiny_tok):
    ex = Example(
        messages=[
            Message("user", "Q1"),
            Message("assistant", "first answer"),
            Message("user", "Q2"),
            Message("assistant", "second answer"),
        ]
    )
    assert (
        _target_text(encode_example(ex, tiny_tok, mask="assistant"), tiny_tok)
        == "first answer<|im_end|>second answer<|im_end|>"
    )
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


def test_packed_rows_respect_max_length_and_keep_every_token(tiny_tok, examples):
    from tuneforge.tokenisation import pack_examples

    encs, _ = encode_examples(examples, tiny_tok)
    rows = pack_examples(encs, 128)
    assert all(len(r.input_ids) <= 128 for r in rows) and len(rows) < len(encs)
    assert sorted(t for r in rows for t in r.input_ids) == sorted(t for e in encs for t in e.input_ids)
    assert sum(r.n_targets for r in rows) == sum(e.n_targets for e in encs)


def test_packed_and_unpacked_batches_give_the_same_loss(tiny_lm, tiny_tok, examples):
    import torch

    from tuneforge.tokenisation import pack_examples
    from tuneforge.train.sft import sft_loss

    encs, _ = encode_examples(examples, tiny_tok, mask="all")  # 'all' also labels each segment start
    plain = collate(encs, tiny_tok.pad_token_id)
    packed = collate(pack_examples(encs, 96), tiny_tok.pad_token_id)
    assert "position_ids" in packed and "attention_mask" not in packed
    assert count_targets(packed) == count_targets(plain)
    assert int(packed["num_tokens"]) == int(plain["num_tokens"])
    with torch.no_grad():
        assert float(sft_loss(tiny_lm, packed)) == pytest.approx(float(sft_loss(tiny_lm, plain)), rel=1e-5)


def test_segments_in_a_packed_row_do_not_attend_to_each_other(tiny_lm, tiny_tok, examples):
    import torch

    from tuneforge.tokenisation import model_inputs, pack_examples

    encs, _ = encode_examples(examples[:2], tiny_tok)
    [row] = pack_examples(encs, 10_000)
    second = next(e for e in encs if row.id.endswith(e.id))
    with torch.no_grad():
        packed_logits = tiny_lm(**model_inputs(collate([row], tiny_tok.pad_token_id))).logits[0]
        alone = tiny_lm(**model_inputs(collate([second], tiny_tok.pad_token_id))).logits[0]
    assert torch.allclose(packed_logits[-len(second.input_ids) :], alone, atol=1e-5)


def test_target_only_logits_equal_the_full_vocabulary_projection(tiny_lm, tiny_tok, examples):
    import torch
    import torch.nn.functional as F

    from tuneforge.train.sft import sft_loss

    encs, _ = encode_examples(examples, tiny_tok)
    batch = collate(encs, tiny_tok.pad_token_id)
    with torch.no_grad():
        full = tiny_lm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        expected = F.cross_entropy(
            full[:, :-1].reshape(-1, full.size(-1)),
            batch["labels"][:, 1:].reshape(-1),
            ignore_index=IGNORE,
            reduction="sum",
        )
        assert float(sft_loss(tiny_lm, batch)) == pytest.approx(float(expected), rel=1e-5)
