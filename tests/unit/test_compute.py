"""Compute accounting (train/compute.py): N, D, C_train = 6ND and the LoRA-aware count."""

import pytest

from tuneforge.tokenisation import batch_stream, encode_examples
from tuneforge.train.adapters import AdapterConfig, apply_adapter
from tuneforge.train.compute import describe, parameter_counts, training_flops
from tuneforge.train.loop import TrainConfig, train_loop
from tuneforge.train.sft import SFT


def test_parameter_counts_split_embeddings_and_count_a_tied_head_once(tiny_lm):
    counts = parameter_counts(tiny_lm)
    emb = tiny_lm.get_input_embeddings().weight.numel()
    assert counts["embedding"] == emb
    assert counts["total"] == sum(p.numel() for p in {id(p): p for p in tiny_lm.parameters()}.values())
    assert counts["non_embedding"] == counts["total"] - emb > 0


def test_an_untied_head_is_left_out_of_n_and_4bit_weights_count_their_values(tiny_tok):
    import torch

    from tuneforge.models import tiny_model

    model = tiny_model(tiny_tok, hidden=32, layers=2, seed=0)
    tied = parameter_counts(model)
    model.config.tie_word_embeddings = False
    model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())  # its own tensor now
    untied = parameter_counts(model)
    assert untied["total"] == tied["total"] + model.lm_head.weight.numel()
    assert untied["non_embedding"] == tied["non_embedding"]  # the head is no more N than the embedding

    class Packed(torch.nn.Module):  # bitsandbytes' Params4bit: two values per byte, the shape kept aside
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(8, 1, dtype=torch.uint8), requires_grad=False)
            self.w.quant_state = type("QS", (), {"shape": torch.Size([4, 4])})()

    assert parameter_counts(Packed())["total"] == 16


def test_full_finetuning_computes_6nd_and_lora_about_4nd():
    counts = {"non_embedding": 1000, "trainable_non_embedding": 1000}
    assert training_flops(counts, 50) == {"c_train_6nd": 300_000, "c_done": 300_000}
    lora = {"non_embedding": 1000, "trainable_non_embedding": 10}
    assert training_flops(lora, 50)["c_done"] == (4 * 1000 + 2 * 10) * 50
    # gradient checkpointing repeats the forward pass
    assert training_flops(counts, 50, gradient_checkpointing=True)["c_done"] == 8 * 1000 * 50


def test_every_training_run_records_tokens_flops_and_share_of_peak(tiny_lm, tiny_tok, examples):
    encs, _ = encode_examples(examples, tiny_tok)
    model = apply_adapter(tiny_lm, AdapterConfig(method="lora", r=4, alpha=8, dropout=0.0))
    cfg = TrainConfig(steps=3, batch_size=2, precision="fp32", warmup_ratio=0.0)
    result = train_loop(model, batch_stream(encs, 2, tiny_tok.pad_token_id), SFT, cfg)
    c = result.compute
    assert c["tokens"] == result.tokens > 0
    assert 0 < c["target_tokens"] < c["tokens"]  # prompts are processed but are not targets
    n = c["params"]["non_embedding"]
    assert c["c_train_6nd"] == 6 * n * c["tokens"]
    assert 4 * n * c["tokens"] < c["c_done"] < c["c_train_6nd"]  # LoRA: weight gradients of adapters only
    assert c["achieved_gflops"] == pytest.approx(c["c_done"] / c["train_seconds"] / 1e9)
    assert c["peak_gflops"] > 0 and 0 < c["fraction_of_peak"] == pytest.approx(c["achieved_gflops"] / c["peak_gflops"])
    assert "6ND" in describe(c) and f"{c['tokens']:,} tokens" in describe(c)


def test_a_resumed_run_counts_every_token_since_step_0(tiny_lm, tiny_tok, examples, tmp_path):
    """D is the whole run's: resuming at step 2 of 4 gives the D of an uninterrupted run."""
    import copy

    encs, _ = encode_examples(examples, tiny_tok)
    cfg = TrainConfig(steps=4, batch_size=2, precision="fp32", warmup_ratio=0.0, checkpoint_every=2)
    whole = train_loop(copy.deepcopy(tiny_lm), batch_stream(encs, 2, tiny_tok.pad_token_id), SFT, cfg)
    half = TrainConfig(steps=2, batch_size=2, precision="fp32", warmup_ratio=0.0, checkpoint_every=2)
    train_loop(copy.deepcopy(tiny_lm), batch_stream(encs, 2, tiny_tok.pad_token_id), SFT, half, checkpoint_dir=tmp_path)
    resumed = train_loop(copy.deepcopy(tiny_lm), batch_stream(encs, 2, tiny_tok.pad_token_id), SFT, cfg,
                         checkpoint_dir=tmp_path)  # fmt: skip
    assert resumed.compute["tokens"] == whole.compute["tokens"]
    assert resumed.compute["target_tokens"] == whole.compute["target_tokens"]
    assert 0 < resumed.compute["session_tokens"] < resumed.compute["tokens"]
