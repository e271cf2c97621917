import json

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


def test_left_padding_gives_the_same_greedy_answer_as_unbatched(tiny_lm, tiny_tok, examples):
    items = _items(examples[:4])
    batched = generate_answers(tiny_lm, tiny_tok, items, GenerationConfig(max_new_tokens=5, batch_size=4), "tiny")
    single = generate_answers(tiny_lm, tiny_tok, items, GenerationConfig(max_new_tokens=5, batch_size=1), "tiny")
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
    from tuneforge.generation import generate_batch
    from tuneforge.train.chat_template import stop_token_ids

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
