import pytest
import torch

from tuneforge.errors import ConfigError, UnknownNameError
from tuneforge.tokenisation import batch_stream, count_targets, encode_examples
from tuneforge.train.adapters import ADAPTERS, AdapterConfig, apply_adapter, lora_parameter_count
from tuneforge.train.loop import Objective, TrainConfig, train_loop
from tuneforge.train.sft import sft_loss

SFT = Objective("sft", sft_loss, count_targets)
METHODS = {
    "full": {},
    "lora": {"r": 4},
    "dora": {"method": "lora", "r": 4, "use_dora": True},
    "ia3": {},
    "prompt_tuning": {"num_virtual_tokens": 4},
    "p_tuning": {"num_virtual_tokens": 4},
    "prefix_tuning": {"num_virtual_tokens": 4},
    "bitfit": {},
}


@pytest.mark.parametrize("name", METHODS)
def test_trainable_parameters_change_and_frozen_ones_do_not(name, tiny_lm, tiny_tok, examples):
    cfg = AdapterConfig(**{"method": name, **METHODS[name]})
    model = apply_adapter(tiny_lm, cfg)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and (name == "full" or len(trainable) < len(before))
    encs, _ = encode_examples(examples, tiny_tok)
    result = train_loop(
        model,
        batch_stream(encs, 4, tiny_tok.pad_token_id),
        SFT,
        TrainConfig(steps=4, batch_size=4, lr=1e-2, warmup_ratio=0.0, precision="fp32"),
    )
    after = dict(model.named_parameters())
    unchanged = [n for n in trainable if torch.equal(after[n], before[n])]
    changed_frozen = [n for n in before if n not in trainable and not torch.equal(after[n], before[n])]
    assert not unchanged, f"{name}: trainable tensors did not move: {unchanged[:3]}"
    assert not changed_frozen, f"{name}: frozen tensors moved: {changed_frozen[:3]}"
    assert 0 < result.trainable_params <= result.total_params


def test_lora_trainable_count_matches_eq_8(tiny_lm):
    targets = ["q_proj", "v_proj"]
    expected = lora_parameter_count(tiny_lm, 4, targets)
    model = apply_adapter(tiny_lm, AdapterConfig(r=4, target_modules=targets))
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == expected


def test_bitfit_on_a_bias_free_llama_trains_only_norms(tiny_lm):
    model = apply_adapter(tiny_lm, AdapterConfig(method="bitfit"))
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all("norm" in n for n in names)


def test_wrong_targets_and_unknown_methods_are_clear_errors(tiny_lm):
    with pytest.raises(ConfigError, match="linear layers are named: .*q_proj"):
        apply_adapter(tiny_lm, AdapterConfig(target_modules=["query"]))
    with pytest.raises(UnknownNameError, match="Did you mean: lora"):
        apply_adapter(tiny_lm, AdapterConfig(method="loar"))
    assert set(ADAPTERS) >= {"full", "lora", "ia3", "prompt_tuning", "p_tuning", "prefix_tuning", "bitfit"}


def _lora_run(tiny_tok, fused: bool, precision: str):
    """Logits and adapter gradients of a tiny LoRA model with the fused or PEFT's own forward."""
    from peft.tuners.lora.layer import Linear

    from tuneforge.models import tiny_model

    model = apply_adapter(tiny_model(tiny_tok, hidden=32, seed=0), AdapterConfig(r=4, alpha=8))
    for m in model.modules():
        if type(m) is Linear:  # B starts at zero: give it values so the adapter path counts
            torch.nn.init.normal_(m.lora_B["default"].weight, std=0.5, generator=torch.Generator().manual_seed(1))
            if not fused:
                del m.forward  # back to PEFT's own forward
    ids = torch.randint(5, 300, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        logits = model(input_ids=ids).logits
    logits.float().square().mean().backward()
    return logits.float(), {n: p.grad.float() for n, p in model.named_parameters() if p.requires_grad}


def test_fused_lora_forward_equals_peft_in_fp32(tiny_tok):
    fused_logits, fused_grads = _lora_run(tiny_tok, True, "fp32")
    peft_logits, peft_grads = _lora_run(tiny_tok, False, "fp32")
    assert torch.allclose(fused_logits, peft_logits, rtol=1e-5, atol=1e-6)
    assert fused_grads.keys() == peft_grads.keys() and len(fused_grads) > 0
    for n in fused_grads:
        assert torch.allclose(fused_grads[n], peft_grads[n], rtol=1e-4, atol=1e-7), n


def test_fused_lora_in_bf16_is_at_least_as_close_to_fp32_as_peft(tiny_tok, native_bf16):
    """Under bf16 autocast both round differently; the fused path (one addmm, fp32 accumulation)
    must not be further from the fp32 result than PEFT's mul-then-add."""
    exact, _ = _lora_run(tiny_tok, False, "fp32")
    fused, _ = _lora_run(tiny_tok, True, "bf16")
    peft, _ = _lora_run(tiny_tok, False, "bf16")
    fused_err, peft_err = (fused - exact).abs().mean(), (peft - exact).abs().mean()
    assert fused_err <= 1.1 * peft_err, (fused_err, peft_err)
    assert fused_err < 0.05 * exact.abs().mean()


def test_fused_lora_falls_back_to_peft_with_dropout_or_dora(tiny_lm):
    ids = torch.randint(5, 300, (1, 6), generator=torch.Generator().manual_seed(0))
    model = apply_adapter(tiny_lm, AdapterConfig(r=4, dropout=0.5))
    for m in model.modules():
        if hasattr(m, "lora_B"):
            torch.nn.init.normal_(m.lora_B["default"].weight, std=0.5)
    model.train()
    with torch.no_grad():  # PEFT's path applies dropout in training: two passes differ
        assert not torch.equal(model(input_ids=ids).logits, model(input_ids=ids).logits)
    model = apply_adapter(model.unload(), AdapterConfig(r=4, use_dora=True))
    from peft.tuners.lora.layer import Linear

    layer = next(m for m in model.modules() if type(m) is Linear)
    torch.nn.init.normal_(layer.lora_B["default"].weight, std=0.5)
    x = torch.randn(3, layer.in_features)
    with torch.no_grad():  # DoRA goes through PEFT's variant forward, not plain LoRA's
        plain = layer.base_layer(x) + layer.lora_B["default"](layer.lora_A["default"](x)) * layer.scaling["default"]
        assert torch.equal(layer(x), Linear.forward(layer, x))
        assert not torch.allclose(layer(x), plain, atol=1e-4)


def test_a_seeded_adapter_starts_from_the_same_weights_whatever_the_process_drew_before(tiny_tok):
    from tuneforge.models import tiny_model

    def init(draws: int):
        torch.randn(draws)  # what loading data or another model may have consumed
        model = apply_adapter(tiny_model(tiny_tok, hidden=32, seed=0), AdapterConfig(method="lora", r=4), seed=3)
        return torch.cat([p.detach().flatten() for p in model.parameters() if p.requires_grad])

    first, second = init(1), init(1000)
    assert torch.equal(first, second) and first.abs().sum() > 0
