"""Structured pruning (tuneforge.compress.prune, importance, gates): the pruned model is a real,
smaller model that transformers loads and that computes exactly what the masked original does."""

import pytest
import torch

from tuneforge.compress.importance import magnitude_scores, taylor_scores
from tuneforge.compress.prune import apply_masks, count_parameters, plan_from_scores, prune_model


def _model(tok, n_q=6, n_kv=2, layers=3, hidden=48, seed=0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=64, num_hidden_layers=layers,
                      num_attention_heads=n_q, num_key_value_heads=n_kv, max_position_embeddings=128,
                      tie_word_embeddings=True, initializer_range=0.3)  # fmt: skip
    return LlamaForCausalLM(cfg).eval()


def _batches(n=3, T=12, vocab=300, seed=0, low=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(low, vocab, (2, T), generator=g)
        out.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()})
    return out


def _random_scores(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    c = model.config
    n = c.num_hidden_layers
    return (torch.rand(n, c.num_attention_heads, generator=g), torch.rand(n, c.intermediate_size, generator=g),
            torch.rand(n, generator=g))  # fmt: skip


@pytest.mark.parametrize(
    "heads,mlp,layers", [(0.5, 0.0, 0.0), (0.0, 0.5, 0.0), (0.0, 0.0, 0.34), (0.34, 0.25, 0.34), (0.7, 0.9, 0.0)]
)
def test_a_pruned_model_loads_back_smaller_and_computes_what_the_masked_original_computes(
    tiny_tok, tmp_path, heads, mlp, layers
):
    from transformers import AutoModelForCausalLM

    model = _model(tiny_tok)
    plan = plan_from_scores(model, *_random_scores(model), heads=heads, mlp=mlp, layers=layers)
    ids = torch.randint(0, len(tiny_tok), (2, 10), generator=torch.Generator().manual_seed(3))
    apply_masks(model, plan)
    with torch.no_grad():
        masked = model(ids).logits
        masked_greedy = model.generate(ids[:1, :4], max_new_tokens=4, do_sample=False)
    before = count_parameters(model)
    prune_model(model, plan).save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    with torch.no_grad():
        pruned = loaded(ids).logits
    assert torch.allclose(pruned, masked, atol=1e-4, rtol=1e-4), (pruned - masked).abs().max()
    assert count_parameters(loaded) < before
    c = loaded.config
    assert c.num_hidden_layers == len(plan.layers) and c.intermediate_size == len(plan.channels[plan.layers[0]])
    assert loaded.model.layers[0].self_attn.q_proj.weight.shape[0] == c.num_attention_heads * c.head_dim
    # generation with the KV cache (indexed by the renumbered layers) agrees with recomputing everything
    cached = loaded.generate(ids[:1, :4], max_new_tokens=4, do_sample=False)
    uncached = loaded.generate(ids[:1, :4], max_new_tokens=4, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached) and torch.equal(cached, masked_greedy)


def _other_arch(tok, kind):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    common = dict(vocab_size=len(tok), hidden_size=48, intermediate_size=64, num_hidden_layers=3, num_attention_heads=6,
                  num_key_value_heads=2, max_position_embeddings=128, initializer_range=0.3)  # fmt: skip
    if kind == "qwen2":  # q/k/v biases
        return Qwen2ForCausalLM(Qwen2Config(**common)).eval()
    model = LlamaForCausalLM(LlamaConfig(**common, attention_bias=True, mlp_bias=True)).eval()
    with torch.no_grad():  # biases initialise to zero: make them count
        for n, p in model.named_parameters():
            if n.endswith("bias"):
                p.normal_(0, 0.3)
    return model


@pytest.mark.parametrize("kind", ["qwen2", "llama_with_biases"])
def test_pruning_models_with_biases_removes_exactly_what_the_mask_removes(tiny_tok, tmp_path, kind):
    from transformers import AutoModelForCausalLM

    model = _other_arch(tiny_tok, kind)
    plan = plan_from_scores(model, *_random_scores(model), heads=0.5, mlp=0.5, layers=0.34)
    ids = torch.randint(0, len(tiny_tok), (2, 10), generator=torch.Generator().manual_seed(3))
    apply_masks(model, plan)
    with torch.no_grad():
        masked = model(ids).logits
    prune_model(model, plan).save_pretrained(tmp_path)
    with torch.no_grad():
        pruned = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()(ids).logits
    assert torch.allclose(pruned, masked, atol=1e-4, rtol=1e-4), (pruned - masked).abs().max()


def test_no_head_sparsity_keeps_every_head_even_where_llamas_divisibility_rule_would_not_allow_the_shape(tiny_tok):
    model = _other_arch(tiny_tok, "qwen2")
    plan = plan_from_scores(model, *_random_scores(model), mlp=0.5)
    assert all(len(plan.heads[i]) == 6 and len(plan.kv_heads[i]) == 2 for i in plan.layers) and not plan.notes


def test_a_mask_that_keeps_everything_changes_nothing_and_masking_does_change_logits(tiny_tok):
    model = _model(tiny_tok)
    ids = torch.randint(0, len(tiny_tok), (1, 8), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model(ids).logits
        apply_masks(model, plan_from_scores(model, *_random_scores(model)))
        assert torch.equal(model(ids).logits, ref)
        apply_masks(model, plan_from_scores(model, *_random_scores(model), mlp=0.5))
        assert not torch.allclose(model(ids).logits, ref, atol=1e-3)


def test_grouped_query_heads_stay_with_their_key_value_head_in_equal_numbers(tiny_tok):
    model = _model(tiny_tok, n_q=9, n_kv=3, hidden=72)  # llama wants hidden % heads == 0
    heads = torch.zeros(3, 9)
    heads[:, [0, 1, 4, 6, 7]] = 1.0  # group 0 = heads 0-2, group 1 = 3-5, group 2 = 6-8
    for sparsity, (kv, g) in ((0.25, (3, 2)), (0.5, (2, 2)), (0.7, (3, 1))):  # 3×1 keeps 3 important, 1×3 two
        plan = plan_from_scores(model, heads, torch.rand(3, 64), torch.rand(3), heads=sparsity)
        for i in plan.layers:
            assert len(plan.kv_heads[i]) == kv and len(plan.heads[i]) == kv * g
            for j, k in enumerate(plan.kv_heads[i]):  # query head j·g… belongs to KV head k, in order
                assert all(h // 3 == k for h in plan.heads[i][j * g : (j + 1) * g])
    plan = plan_from_scores(model, heads, torch.rand(3, 64), torch.rand(3), heads=0.5)
    assert plan.kv_heads[0] == [0, 2] and plan.heads[0] == [0, 1, 6, 7]  # the important heads survive
    assert plan.notes and "nearest shape" in plan.notes[0]  # 4.5 of 9 asked, 4 kept: said


def _domain_planted(tok, hidden=32):
    """One layer. Tokens 0-149 (domain A) embed in dims 0-15, 150-299 (domain B) in 16-31; attention
    writes nothing. MLP channels 0-31 read only dims 0-15 (domain A's), 32-63 only dims 16-31 and have
    weights 3× larger. On domain-A text the B channels are exactly silent."""
    model = _model(tok, n_q=4, n_kv=2, layers=1, hidden=hidden)
    with torch.no_grad():
        e = model.model.embed_tokens.weight  # (V, d)
        e[:150, 16:] = 0
        e[150:, :16] = 0
        e[300:] = 0
        model.model.layers[0].self_attn.o_proj.weight.zero_()
        m = model.model.layers[0].mlp
        for w in (m.gate_proj.weight, m.up_proj.weight):  # (64, d)
            w[:32, 16:] = 0
            w[32:, :16] = 0
            w[32:] *= 3
        m.down_proj.weight[:, 32:] *= 3
    return model


def test_domain_adaptive_pruning_keeps_the_channels_the_domain_uses_where_magnitude_keeps_the_heavy_ones(tiny_tok):
    from tuneforge.train.loop import evaluate_loss
    from tuneforge.train.sft import SFT

    model = _domain_planted(tiny_tok)
    calib = _batches(n=4, vocab=150)  # domain A
    losses, kept_a = {}, {}
    for name in ("magnitude", "taylor"):
        s = magnitude_scores(model) if name == "magnitude" else taylor_scores(model, calib)
        plan = plan_from_scores(model, s.heads, s.channels, torch.ones(1), mlp=0.5)
        kept_a[name] = sum(c < 32 for c in plan.channels[0]) / 32
        pruned = _domain_planted(tiny_tok)
        apply_masks(pruned, plan)
        losses[name] = evaluate_loss(pruned, _batches(n=2, vocab=150, seed=9), SFT, "fp32")
    assert kept_a["taylor"] == 1.0 and kept_a["magnitude"] == 0.0
    assert losses["taylor"] < losses["magnitude"]


def test_taylor_scores_are_zero_for_a_unit_whose_output_nothing_reads(tiny_tok):
    model = _model(tiny_tok)
    with torch.no_grad():
        model.model.layers[1].mlp.down_proj.weight[:, 5] = 0  # channel 5 of layer 1 is never read
        model.model.layers[0].self_attn.o_proj.weight[:, 8:16] = 0  # head 1 of layer 0 (head_dim 8)
    s = taylor_scores(model, _batches())
    assert s.channels[1, 5] == 0 and s.channels[1].min() == 0 and (s.channels[1] > 0).sum() == 63
    assert s.heads[0, 1] == 0 and (s.heads[0] > 0).sum() == 5
    assert (s.layers > 0).all()


def test_learned_gates_close_more_units_as_the_l0_weight_grows_and_rank_unread_channels_last(tiny_tok):
    from tuneforge.compress.gates import GatesConfig, learned_scores
    from tuneforge.tokenisation import batch_stream, encode_examples

    model = _model(tiny_tok, layers=2)
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight[:, :16] = 0  # channels 0-15 of layer 0 are never read
    texts = [f"Question {i}: what should I do about item {i}?" for i in range(12)]
    from tuneforge.records import Example, Message

    exs = [
        Example(messages=[Message("user", t), Message("assistant", t[::-1])], id=str(i)) for i, t in enumerate(texts)
    ]
    enc, _ = encode_examples(exs, tiny_tok, 64, "assistant")
    closed = {}
    for lam in (0.0, 3.0):
        scores, closed[lam], result = learned_scores(
            model,
            batch_stream(enc, 4, tiny_tok.pad_token_id, 0),
            GatesConfig(steps=40, lr=0.2, l0_weight=lam),
            ("channels",),
        )
        assert all(p.requires_grad for p in model.parameters())  # the model is handed back as it came
        assert not hasattr(model, "prune_gates")
    assert closed[3.0]["channels"] > closed[0.0]["channels"]
    unread = scores.channels[0, :16].mean()
    assert unread < scores.channels[0, 16:].mean()
