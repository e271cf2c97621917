import pytest
import torch

from tuneforge.models import tiny_model
from tuneforge.records import Example, Message
from tuneforge.tokenisation import batch_stream, count_targets, encode_examples
from tuneforge.train.adapters import AdapterConfig, apply_adapter
from tuneforge.train.domain_adapt import (
    domain_adaptation_batches,
    domain_adaptation_objective,
    domain_adaptation_terms,
)
from tuneforge.train.loop import TrainConfig, train_loop
from tuneforge.train.sft import sft_loss


def _streams(tok, general, domain, seed=0):
    g, _ = encode_examples(general, tok)
    d, _ = encode_examples(domain, tok)
    return domain_adaptation_batches(
        batch_stream(g, 4, tok.pad_token_id, seed), batch_stream(d, 4, tok.pad_token_id, seed)
    )


def _domain_examples(n=8):
    return [
        Example(
            messages=[
                Message("user", f"Clause {i}: is it binding?"),
                Message("assistant", "Under contract law the clause binds both parties. " * 2),
            ],
            id=f"legal-{i}",
            domain="legal",
        )
        for i in range(n)
    ]


def test_terms_are_the_mean_token_losses_and_consistency_starts_at_zero(tiny_tok, examples):
    model = apply_adapter(tiny_model(tiny_tok, hidden=32, seed=0), AdapterConfig(r=4))
    batch = next(_streams(tiny_tok, examples, _domain_examples()))
    general = {k[8:]: v for k, v in batch.items() if k.startswith("general.")}
    domain = {k[7:]: v for k, v in batch.items() if k.startswith("domain.")}
    with torch.no_grad():
        terms = domain_adaptation_terms(model, batch)
        assert float(terms["general"]) == pytest.approx(
            float(sft_loss(model, general)) / count_targets(general), rel=1e-5
        )
        assert float(terms["domain"]) == pytest.approx(float(sft_loss(model, domain)) / count_targets(domain), rel=1e-5)
    assert abs(float(terms["consistency"])) < 1e-6  # LoRA's B = 0: the model is still the base
    objective = domain_adaptation_objective(alpha=2.0, beta=0.5)
    with torch.no_grad():
        total = float(objective.loss(model, batch))
    assert total == pytest.approx(float(terms["general"] + 2.0 * terms["domain"]), rel=1e-5)


def test_the_consistency_term_holds_the_model_near_the_base_on_general_data(tiny_tok, examples):
    import copy

    def after_training(beta):
        base = tiny_model(tiny_tok, hidden=32, seed=0)
        ref = copy.deepcopy(base).eval()  # full fine-tuning: the frozen base is a separate copy
        model = apply_adapter(base, AdapterConfig(method="full"))
        cfg = TrainConfig(steps=15, batch_size=4, lr=1e-2, warmup_ratio=0.0, precision="fp32")
        train_loop(
            model,
            _streams(tiny_tok, examples, _domain_examples()),
            domain_adaptation_objective(alpha=5.0, beta=beta, ref_model=ref),
            cfg,
        )
        with torch.no_grad():
            return domain_adaptation_terms(model, next(_streams(tiny_tok, examples, _domain_examples(), 1)), ref)

    free, held = after_training(0.0), after_training(5.0)
    assert float(held["consistency"]) < 0.3 * float(free["consistency"])  # measured: 0.08 vs 0.47
    assert float(held["domain"]) < 3.5 and float(free["domain"]) < 3.5  # both learned the domain (from ~5.9)
