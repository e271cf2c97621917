import pytest
import torch

from tuneforge.errors import ConfigError, UnknownNameError
from tuneforge.train.adapters import ADAPTERS, AdapterConfig, apply_adapter, lora_parameter_count
from tuneforge.train.loop import Objective, TrainConfig, train_loop
from tuneforge.train.sft import batch_stream, count_targets, encode_examples, sft_loss

SFT = Objective("sft", sft_loss, count_targets)
METHODS = {"full": {}, "lora": {"r": 4}, "dora": {"method": "lora", "r": 4, "use_dora": True},
           "ia3": {}, "prompt_tuning": {"num_virtual_tokens": 4}, "p_tuning": {"num_virtual_tokens": 4},
           "prefix_tuning": {"num_virtual_tokens": 4}, "bitfit": {}}


@pytest.mark.parametrize("name", METHODS)
def test_trainable_parameters_change_and_frozen_ones_do_not(name, tiny_lm, tiny_tok, examples):
    cfg = AdapterConfig(**{"method": name, **METHODS[name]})
    model = apply_adapter(tiny_lm, cfg)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and (name == "full" or len(trainable) < len(before))
    encs, _ = encode_examples(examples, tiny_tok)
    result = train_loop(model, batch_stream(encs, 4, tiny_tok.pad_token_id), SFT,
                        TrainConfig(steps=4, batch_size=4, lr=1e-2, warmup_ratio=0.0, precision="fp32"))
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
