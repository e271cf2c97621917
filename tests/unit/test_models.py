import pytest

from tuneforge.errors import TuneforgeError, UnknownNameError
from tuneforge.models import EMBEDDED_MODEL, load_encoder, resolve_model, tiny_model, tiny_tokenizer


def test_unknown_model_name_suggests_the_embedded_default():
    with pytest.raises(UnknownNameError, match=f"Did you mean: {EMBEDDED_MODEL}"):
        resolve_model("smollm2-135m-instruc")


def test_missing_gguf_and_non_model_directory_are_clear_errors(tmp_path):
    with pytest.raises(TuneforgeError, match="GGUF file not found"):
        resolve_model(str(tmp_path / "missing.gguf"))
    with pytest.raises(TuneforgeError, match="without config.json"):
        resolve_model(str(tmp_path))


def test_hub_ids_and_model_directories_pass_through(tmp_path):
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(TuneforgeError, match="no weights"):  # a config without weights is no model
        resolve_model(str(tmp_path))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(TuneforgeError, match="damaged or truncated"):  # an empty weights file is no model either
        resolve_model(str(tmp_path))
    tok = tiny_tokenizer()
    tiny_model(tok, hidden=32).save_pretrained(tmp_path)
    assert resolve_model(str(tmp_path)) == str(tmp_path)


def test_tiny_model_and_tokenizer_chat_template():
    tok = tiny_tokenizer()
    model = tiny_model(tok, hidden=32)
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert model.config.vocab_size == len(tok)
    assert sum(p.numel() for p in model.parameters()) < 100_000


def test_embedded_encoder_gives_unit_embeddings():
    enc = load_encoder()
    vecs = enc.encode(["How do I file taxes?", "Tax filing steps"], normalize_embeddings=True)
    assert vecs.shape == (2, 384)
    assert float(vecs[0] @ vecs[1]) > 0.5


def test_an_unknown_attention_is_a_clear_error():
    from tuneforge.errors import UnknownNameError
    from tuneforge.models import load_model

    with pytest.raises(UnknownNameError, match="Did you mean: eager"):
        load_model("smollm2-135m-instruct", attn_implementation="eagr")
