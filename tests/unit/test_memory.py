import pytest

from tuneforge.train.adapters import AdapterConfig, lora_parameter_count
from tuneforge.train.memory import estimate_memory


@pytest.fixture
def model_dir(tmp_path, tiny_lm, tiny_tok):
    tiny_lm.save_pretrained(tmp_path)
    return str(tmp_path)


def test_parameter_counts_are_exact_without_loading_weights(model_dir, tiny_lm):
    total = sum(p.numel() for p in tiny_lm.parameters())
    full = estimate_memory(model_dir, "float32", AdapterConfig(method="full"), 2, 64)
    assert full.total_params == full.trainable_params == total
    assert full.weights_bytes == 4 * total and full.optimizer_bytes == 12 * total
    targets = ["q_proj", "v_proj"]
    lora = estimate_memory(model_dir, "bfloat16", AdapterConfig(r=4, target_modules=targets), 2, 64)
    n_lora = lora_parameter_count(tiny_lm, 4, targets)
    assert lora.trainable_params == n_lora and lora.total_params == total + n_lora
    assert lora.weights_bytes == 2 * total + 4 * n_lora


def test_activations_grow_with_the_batch_and_the_report_reads_well(model_dir):
    small = estimate_memory(model_dir, "bfloat16", AdapterConfig(r=4), 1, 128)
    big = estimate_memory(model_dir, "bfloat16", AdapterConfig(r=4), 4, 128)
    assert big.activation_bytes == pytest.approx(4 * small.activation_bytes)
    text = big.describe()
    assert text.startswith("memory estimate: weights") and "activations" in text and "available" in text
