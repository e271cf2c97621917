import json

import pytest
import torch

from tuneforge.generation import GenerationConfig, generate_answers
from tuneforge.records import EvalItem


def _items(examples):
    return [EvalItem.from_example(e) for e in examples]


def test_generation_is_batched_ordered_and_resumable(tiny_lm, tiny_tok, examples, tmp_path):
    items = _items(examples[:5])
    cfg = GenerationConfig(max_new_tokens=6, batch_size=2)
    out = tmp_path / "gens.jsonl"
    first = generate_answers(tiny_lm, tiny_tok, items, cfg, "tiny", out)
    assert [g.id for g in first] == [it.id for it in items]
    assert all(g.references == it.references and g.domain == it.domain for g, it in zip(first, items))
    lines = out.read_text().splitlines()
    assert len(lines) == 5

    # Simulate a crash after two rows: a rerun writes only the three missing ones.
    out.write_text("\n".join(lines[:2]) + "\n")
    again = generate_answers(tiny_lm, tiny_tok, items, cfg, "tiny", out)
    assert len(out.read_text().splitlines()) == 5
    assert [g.generation for g in again] == [g.generation for g in first]

    # Different settings do not reuse rows written with other settings.
    generate_answers(tiny_lm, tiny_tok, items, GenerationConfig(max_new_tokens=3, batch_size=5), "tiny", out)
    settings = [json.loads(line)["settings"]["max_new_tokens"] for line in out.read_text().splitlines()]
    assert sorted(settings) == [3] * 5 + [6] * 5


def test_the_tiny_test_model_says_something_different_to_each_prompt(tiny_lm, tiny_tok, examples):
    # equality tests below would prove nothing if every answer were "" (as with a 0.02-std init)
    answers = [
        g.generation
        for g in generate_answers(
            tiny_lm, tiny_tok, _items(examples[:6]), GenerationConfig(max_new_tokens=8, batch_size=6), "tiny"
        )
    ]
    assert all(answers) and len(set(answers)) >= 4


@pytest.mark.parametrize("batch_size", [3, 8])
def test_left_padded_batches_give_the_same_greedy_answers_as_one_at_a_time(tiny_lm, tiny_tok, examples, batch_size):
    from tuneforge.records import Message

    items = _items(examples[:8])
    for k, it in enumerate(items):  # prompts of different lengths: the batches are left-padded
        it.messages = [Message("user", it.messages[0].content + " and then" * k)]
    single = generate_answers(tiny_lm, tiny_tok, items, GenerationConfig(max_new_tokens=8, batch_size=1), "tiny")
    batched = generate_answers(
        tiny_lm, tiny_tok, items, GenerationConfig(max_new_tokens=8, batch_size=batch_size), "tiny"
    )
    assert all(g.generation for g in single)
    assert [g.generation for g in batched] == [g.generation for g in single]
    assert tiny_tok.padding_side == "right"  # restored


def test_each_generation_owns_its_meta(tiny_lm, tiny_tok, examples):
    items = _items(examples[:2])
    one = generate_answers(tiny_lm, tiny_tok, items, GenerationConfig(max_new_tokens=2), "a")
    two = generate_answers(tiny_lm, tiny_tok, items, GenerationConfig(max_new_tokens=2), "b")
    one[0].meta["model_spec"] = "a"  # annotating one model's answers must not touch the items or the other model's
    assert "model_spec" not in two[0].meta and "model_spec" not in items[0].meta


def test_answers_made_in_another_dtype_are_not_reused(tiny_lm, tiny_tok, examples, tmp_path):
    items = _items(examples[:3])
    cfg = GenerationConfig(max_new_tokens=4, batch_size=3)
    out = tmp_path / "gens.jsonl"
    generate_answers(tiny_lm, tiny_tok, items, cfg, "tiny", out)
    generate_answers(tiny_lm.double(), tiny_tok, items, cfg, "tiny", out)
    dtypes = [json.loads(line)["settings"]["dtype"] for line in out.read_text().splitlines()]
    assert dtypes == ["float32"] * 3 + ["float64"] * 3


class _Bar:
    def __init__(self):
        self.updates = []

    def update(self, n):
        self.updates.append(n)

    def set_postfix(self, **kw):
        self.postfix = kw


def test_batch_progress_counts_every_sequence_once_and_tokens_up_to_the_stop(tiny_lm, tiny_tok):
    from tuneforge.chat_template import stop_token_ids
    from tuneforge.generation import generate_batch

    stop = stop_token_ids(tiny_tok, tiny_lm)[0]
    # make the stop token the likeliest next token after a few steps for some rows: bias the LM head
    with torch.no_grad():
        tiny_lm.lm_head.bias = torch.nn.Parameter(torch.zeros(tiny_lm.config.vocab_size))
        tiny_lm.lm_head.bias[stop] = 4.0
    bar = _Bar()
    prompts = ["a b c", "hello there", "Question 3: what should I do?", "x"]
    texts, counts = generate_batch(tiny_lm, tiny_tok, prompts, 12, {"do_sample": False}, bar=bar)
    assert sum(bar.updates) == len(prompts) and len(texts) == len(prompts)
    assert all(1 <= c <= 12 for c in counts)
    assert min(counts) < 12  # some rows stopped early and were counted up to their stop token
    assert any(bar.updates[:-1])  # ... and moved the bar before the batch was over
    assert "tok_s" in bar.postfix


def test_answers_of_another_model_under_the_same_name_are_not_reused(tiny_lm, tiny_tok, examples, tmp_path, capsys):
    from tuneforge.models import tiny_model

    items = _items(examples[:3])
    cfg = GenerationConfig(max_new_tokens=4, batch_size=3)
    out = tmp_path / "gens.jsonl"
    generate_answers(tiny_lm, tiny_tok, items, cfg, "tuned", out)
    other = tiny_model(tiny_tok, hidden=32, layers=2, seed=1)  # e.g. retrained, same label and path
    generate_answers(other, tiny_tok, items, cfg, "tuned", out)
    digests = [json.loads(line)["settings"]["model_digest"] for line in out.read_text().splitlines()]
    assert len(digests) == 6 and len(set(digests[:3])) == 1 and len(set(digests[3:])) == 1
    assert digests[0] != digests[3]
    assert "model_digest ×3" in capsys.readouterr().err
    # the same weights again: everything is reused, nothing is appended
    generate_answers(other, tiny_tok, items, cfg, "tuned", out)
    assert len(out.read_text().splitlines()) == 6


def test_model_digest_changes_when_a_weight_changes_in_place(tiny_lm):
    from tuneforge.fingerprint import model_digest

    before = model_digest(tiny_lm)
    assert model_digest(tiny_lm) == before
    with torch.no_grad():
        next(tiny_lm.parameters())[0, 0] += 1.0  # an optimizer step or a merge writes in place
    assert model_digest(tiny_lm) != before
