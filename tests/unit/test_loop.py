import json

import pytest
import torch

from tuneforge.errors import DataError
from tuneforge.tokenisation import batch_stream, collate, count_targets, encode_examples
from tuneforge.train.adapters import AdapterConfig, apply_adapter
from tuneforge.train.loop import Objective, TrainConfig, evaluate_loss, heldout_loss, train_loop
from tuneforge.train.sft import sft_loss

SFT = Objective("sft", sft_loss, count_targets)


def _cfg(**kw):
    base = dict(steps=30, batch_size=4, lr=3e-3, warmup_ratio=0.0, precision="fp32", log_every=1)
    return TrainConfig(**{**base, **kw})


def test_full_finetuning_loss_goes_down(tiny_lm, tiny_tok, examples):
    encs, _ = encode_examples(examples, tiny_tok)
    model = apply_adapter(tiny_lm, AdapterConfig(method="full"))
    result = train_loop(model, batch_stream(encs, 4, tiny_tok.pad_token_id), SFT, _cfg())
    assert result.trainable_params == result.total_params
    assert sum(result.losses[-5:]) / 5 < 0.7 * sum(result.losses[:5]) / 5


def test_lora_trains_adapters_and_leaves_the_base_frozen(tiny_lm, tiny_tok, examples, tmp_path):
    encs, _ = encode_examples(examples, tiny_tok)
    frozen_before = {n: p.detach().clone() for n, p in tiny_lm.named_parameters()}
    model = apply_adapter(tiny_lm, AdapterConfig(method="lora", r=4, alpha=8, dropout=0.0))
    trainable_before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    result = train_loop(
        model, batch_stream(encs, 4, tiny_tok.pad_token_id), SFT, _cfg(steps=20), log_path=tmp_path / "log.jsonl"
    )
    params = dict(model.named_parameters())
    assert all(not torch.equal(params[n], before) for n, before in trainable_before.items() if "lora_B" in n)
    for name, before in frozen_before.items():
        peft_name = next(
            n for n in params if n.endswith(name.replace(".weight", ".base_layer.weight")) or n.endswith(name)
        )
        assert torch.equal(params[peft_name], before), peft_name
    assert 0 < result.trainable_params < result.total_params
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 21))
    assert result.losses[-1] < result.losses[0]


def test_accumulation_equals_one_large_batch(tiny_lm, tiny_tok, examples, tmp_path):
    """Two micro-batches with different target counts must give exactly the loss and gradient of
    one batch holding both (the loss is normalised by all target tokens of the window)."""
    encs, _ = encode_examples(examples[:4], tiny_tok)
    encs.sort(key=lambda e: e.n_targets)  # micro-batch 1 has fewer targets than micro-batch 2
    assert encs[0].n_targets + encs[1].n_targets != encs[2].n_targets + encs[3].n_targets
    full = collate(encs, tiny_tok.pad_token_id)
    with torch.no_grad():
        expected = float(sft_loss(tiny_lm, full)) / count_targets(full)
    state = {k: v.clone() for k, v in tiny_lm.state_dict().items()}

    def one_step(batches, accum, name):
        tiny_lm.load_state_dict(state)
        train_loop(
            tiny_lm,
            iter(batches),
            SFT,
            _cfg(steps=1, grad_accum=accum, max_grad_norm=1e9),
            log_path=tmp_path / f"{name}.jsonl",
        )
        return json.loads((tmp_path / f"{name}.jsonl").read_text())

    big = one_step([full], 1, "big")
    small = one_step([collate(encs[:2], tiny_tok.pad_token_id), collate(encs[2:], tiny_tok.pad_token_id)], 2, "small")
    assert big["loss"] == pytest.approx(expected, rel=1e-5)
    assert small["loss"] == pytest.approx(expected, rel=1e-5)
    assert small["grad_norm"] == pytest.approx(big["grad_norm"], rel=1e-4)
    assert small["targets"] == big["targets"] == count_targets(full)


def test_a_window_without_targets_is_a_loud_error(tiny_lm, tiny_tok, examples):
    encs, _ = encode_examples(examples[:2], tiny_tok)
    batch = collate(encs, tiny_tok.pad_token_id)
    batch["labels"][:] = -100
    with pytest.raises(DataError, match="no target units"):
        train_loop(apply_adapter(tiny_lm, AdapterConfig(method="full")), iter([batch]), SFT, _cfg(steps=1))


def test_evaluate_loss_is_per_target_token(tiny_lm, tiny_tok, examples):
    encs, _ = encode_examples(examples, tiny_tok)
    batches = [collate(encs[:3], tiny_tok.pad_token_id), collate(encs[3:], tiny_tok.pad_token_id)]
    with torch.no_grad():
        total = sum(float(sft_loss(tiny_lm, b)) for b in batches)
    n = sum(count_targets(b) for b in batches)
    assert evaluate_loss(tiny_lm, batches, SFT, precision="fp32") == pytest.approx(total / n, rel=1e-5)


def test_heldout_loss_per_example_adds_up_to_the_batch_loss_and_has_an_interval(tiny_lm, tiny_tok, examples):
    from tuneforge.intervals import paired_ratio_delta, ratio_ci
    from tuneforge.train.sft import SFT as SFT_OBJ

    encs, _ = encode_examples(examples, tiny_tok)
    batches = [collate(encs[:3], tiny_tok.pad_token_id), collate(encs[3:], tiny_tok.pad_token_id)]
    held = heldout_loss(tiny_lm, batches, SFT_OBJ, precision="fp32")
    assert len(held["sums"]) == len(encs)
    assert held["units"] == [sum(lab != -100 for lab in e.labels[1:]) for e in encs]
    assert held["loss"] == pytest.approx(evaluate_loss(tiny_lm, batches, SFT_OBJ, precision="fp32"), rel=1e-5)
    # each example alone gives its own sum: padding and the other rows do not leak into it
    with torch.no_grad():
        alone = float(sft_loss(tiny_lm, collate(encs[4:5], tiny_tok.pad_token_id)))
    assert held["sums"][4] == pytest.approx(alone, rel=1e-4)
    lo, hi = ratio_ci(held["sums"], held["units"])
    assert lo < held["loss"] < hi
    d = paired_ratio_delta(held["sums"], [s * 0.5 for s in held["sums"]], held["units"])
    assert d["delta"] == pytest.approx(-held["loss"] / 2) and d["ci"][0] < d["delta"] < d["ci"][1] < 0


def test_bf16_autocast_training_tracks_fp32_training(tiny_tok, examples, native_bf16):
    from tuneforge.models import tiny_model

    encs, _ = encode_examples(examples, tiny_tok)
    losses = {}
    for precision in ("fp32", "bf16"):
        model = apply_adapter(tiny_model(tiny_tok, hidden=32, seed=0), AdapterConfig(method="lora", r=4, dropout=0.0))
        losses[precision] = train_loop(
            model, batch_stream(encs, 4, tiny_tok.pad_token_id), SFT, _cfg(steps=3, precision=precision)
        ).losses
    # the same model, data and updates: bf16 rounding moves each step's loss by well under 2%
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.02)
    assert losses["bf16"] != losses["fp32"]  # autocast really ran in bf16


def test_log_rows_hold_the_mean_loss_of_their_window(tiny_lm, tiny_tok, examples, tmp_path):
    encs, _ = encode_examples(examples, tiny_tok)
    result = train_loop(
        apply_adapter(tiny_lm, AdapterConfig(method="full")),
        batch_stream(encs, 2, tiny_tok.pad_token_id),
        SFT,
        _cfg(steps=7, log_every=3),
        log_path=tmp_path / "log.jsonl",
    )
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3, 6, 7]
    assert rows[1]["loss"] == pytest.approx(sum(result.losses[3:6]) / 3)
    assert rows[2]["loss"] == pytest.approx(result.losses[6])


def test_an_interrupted_run_resumes_with_the_same_loss_curve(tiny_tok, examples, tmp_path):
    from tuneforge.models import tiny_model

    encs, _ = encode_examples(examples, tiny_tok)
    cfg = _cfg(steps=10, batch_size=3, grad_accum=2, lr=1e-2, log_every=1, checkpoint_every=4)

    def fresh():
        return apply_adapter(tiny_model(tiny_tok, hidden=32, seed=0), AdapterConfig(method="lora", r=4))

    straight = train_loop(fresh(), batch_stream(encs, 3, tiny_tok.pad_token_id, seed=7), SFT, cfg)

    def crashing(stream, after):
        for i, b in enumerate(stream):
            if i == after:
                raise KeyboardInterrupt("simulated crash")
            yield b

    ckpt, log = tmp_path / "ckpt", tmp_path / "log.jsonl"
    with pytest.raises(KeyboardInterrupt):  # dies during step 6, after the step-4 checkpoint
        train_loop(
            fresh(),
            crashing(batch_stream(encs, 3, tiny_tok.pad_token_id, seed=7), 11),
            SFT,
            cfg,
            log_path=log,
            checkpoint_dir=ckpt,
        )
    assert (ckpt / "latest").read_text() == "checkpoint-4"
    assert [json.loads(x)["step"] for x in log.read_text().splitlines()] == [1, 2, 3, 4, 5]
    resumed = train_loop(
        fresh(), batch_stream(encs, 3, tiny_tok.pad_token_id, seed=7), SFT, cfg, log_path=log, checkpoint_dir=ckpt
    )
    assert resumed.losses == pytest.approx(straight.losses, rel=1e-6)
    assert len(resumed.losses) == 10
    rows = [json.loads(x) for x in log.read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 11))  # step 5 is not logged twice
    assert [r["loss"] for r in rows] == pytest.approx(straight.losses, rel=1e-6)


def test_a_fresh_run_starts_a_fresh_log(tiny_lm, tiny_tok, examples, tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 99, "loss": 1.0}\n')
    encs, _ = encode_examples(examples, tiny_tok)
    train_loop(tiny_lm, batch_stream(encs, 4, tiny_tok.pad_token_id), SFT, _cfg(steps=2), log_path=log)
    assert [json.loads(x)["step"] for x in log.read_text().splitlines()] == [1, 2]


@pytest.mark.slow  # torch.compile takes ~80 s on 2 cores
def test_compiled_blocks_train_like_eager_ones_and_are_uncompiled_after(tiny_tok, examples, tmp_path, monkeypatch):
    from tuneforge.models import tiny_model
    from tuneforge.train.compile import transformer_blocks

    # a cold, private inductor cache: kernels cached by a run under other ISA settings (e.g.
    # ATEN_CPU_CAPABILITY=avx2) are reused by torch 2.13 and abort the process
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))

    encs, _ = encode_examples(examples, tiny_tok)

    def run(compile_: bool):
        base = tiny_model(tiny_tok, hidden=32, seed=0)
        # eager attention, as every bundled config: torch 2.13's inductor AVX2 kernels give NaN for
        # SDPA + LoRA with dynamic shapes (the loop's error then names train.compile; see loop.py)
        base.config._attn_implementation = "eager"
        model = apply_adapter(base, AdapterConfig(method="lora", r=4))
        result = train_loop(
            model, batch_stream(encs, 4, tiny_tok.pad_token_id, seed=3), SFT, _cfg(steps=3, lr=1e-2, compile=compile_)
        )
        return model, result.losses

    model, compiled = run(True)
    _, eager = run(False)
    assert compiled == pytest.approx(eager, rel=1e-4)
    assert all(block._compiled_call_impl is None for block in transformer_blocks(model))


def test_a_non_finite_loss_stops_training_before_the_update_and_names_the_fixes(tiny_lm, tiny_tok, examples):
    from tuneforge.train.loop import Objective

    encs, _ = encode_examples(examples, tiny_tok)
    model = apply_adapter(tiny_lm, AdapterConfig(method="lora", r=4, dropout=0.0))
    for n, p in model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    poisoned = Objective("sft", lambda m, b: SFT.loss(m, b) * float("nan"), SFT.count)
    with pytest.raises(FloatingPointError, match="step 1.*lower train.lr"):
        train_loop(model, batch_stream(encs, 4, tiny_tok.pad_token_id), poisoned, _cfg(steps=2))
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters() if p.requires_grad)


def test_a_planted_pickle_checkpoint_is_refused_and_never_run(tiny_lm, tmp_path):
    import os
    import pickle

    from tuneforge.errors import TuneforgeError
    from tuneforge.train.checkpoint import load_checkpoint, save_checkpoint

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    ckpt = tmp_path / "run" / "checkpoint-4"
    ckpt.mkdir(parents=True)
    (ckpt / "state.pt").write_bytes(pickle.dumps(Payload()))
    (ckpt / "counters.json").write_text('{"step": 4}')
    opt = torch.optim.AdamW([p for p in tiny_lm.parameters() if p.requires_grad], lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    save_checkpoint(tmp_path / "good", tiny_lm, opt, sched, {"step": 1})  # real checkpoints hold no pickle
    assert not list((tmp_path / "good").rglob("*.pt")) and list((tmp_path / "good").rglob("state.json"))
    with pytest.raises(TuneforgeError, match="pickle"):
        load_checkpoint(ckpt, tiny_lm, opt, sched)
    assert not marker.exists()


def test_a_checkpoint_with_optimizer_state_by_position_is_refused_with_a_fix(tiny_lm, tmp_path):
    import json

    from tuneforge.errors import TuneforgeError
    from tuneforge.train.checkpoint import load_checkpoint, save_checkpoint

    opt = torch.optim.AdamW(tiny_lm.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    path = save_checkpoint(tmp_path, tiny_lm, opt, sched, {"step": 1})
    state = json.loads((path / "state.json").read_text())
    assert load_checkpoint(path, tiny_lm, opt, sched)["step"] == 1
    del state["__dict__"][0]  # the format entry: what tuneforge wrote before optimizer state was keyed by name
    (path / "state.json").write_text(json.dumps(state))
    with pytest.raises(TuneforgeError, match="older tuneforge.*train.resume=false"):
        load_checkpoint(path, tiny_lm, opt, sched)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_gradient_checkpointing_gives_the_same_losses_and_gradients(tiny_tok, examples, method):
    import copy

    from tuneforge.models import tiny_model
    from tuneforge.train.loop import enable_gradient_checkpointing

    encs, _ = encode_examples(examples, tiny_tok)
    batch = collate(encs[:4], tiny_tok.pad_token_id)
    base = apply_adapter(tiny_model(tiny_tok, hidden=32, layers=2, seed=0), AdapterConfig(method=method, r=4))
    plain, ckpt = base, copy.deepcopy(base)
    enable_gradient_checkpointing(ckpt)
    assert ckpt.get_base_model().is_gradient_checkpointing if method == "lora" else ckpt.is_gradient_checkpointing
    for m in (plain, ckpt):
        m.train()
        sft_loss(m, batch).backward()
    g_plain = {n: p.grad for n, p in plain.named_parameters() if p.requires_grad}
    g_ckpt = {n: p.grad for n, p in ckpt.named_parameters() if p.requires_grad}
    assert g_plain.keys() == g_ckpt.keys() and all(g is not None for g in g_ckpt.values())
    assert all(torch.allclose(g_plain[n], g_ckpt[n], atol=1e-6, rtol=1e-5) for n in g_plain)
    # and through the loop: the same losses step by step; checkpointing is switched off afterwards
    runs = []
    for gc in (False, True):
        model = apply_adapter(tiny_model(tiny_tok, hidden=32, layers=2, seed=0), AdapterConfig(method=method, r=4))
        res = train_loop(
            model, batch_stream(encs, 4, tiny_tok.pad_token_id), SFT, _cfg(steps=4, gradient_checkpointing=gc)
        )
        runs.append(res.losses)
        base_model = model.get_base_model() if hasattr(model, "get_base_model") else model
        assert not base_model.is_gradient_checkpointing
    assert runs[0] == pytest.approx(runs[1], rel=1e-5)


def test_an_fsdp_config_on_one_process_trains_unsharded(tiny_lm, tiny_tok, examples, monkeypatch, capsys):
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # what `accelerate launch --config_file fsdp.yaml` sets
    encs, _ = encode_examples(examples, tiny_tok)
    model = apply_adapter(tiny_lm, AdapterConfig(method="lora", r=4))
    result = train_loop(model, batch_stream(encs, 4, tiny_tok.pad_token_id), SFT, _cfg(steps=2))
    assert len(result.losses) == 2 and "FSDP" not in capsys.readouterr().out
