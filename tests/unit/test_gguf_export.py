"""The GGUF writer's tokenizer fields (tuneforge.train.gguf_export); the Modelfile beside it is
tested in test_modelfile.py."""

import copy

import pytest

from tuneforge.errors import ConfigError


@pytest.fixture(scope="module")
def embedded_hf_tok(tmp_path_factory):
    """The embedded model's tokenizer as a Hub model directory holds it (tokenizer.json)."""
    from transformers import AutoTokenizer

    from tuneforge.embedded import embedded_gguf_path

    path, where = embedded_gguf_path(), tmp_path_factory.mktemp("hf_tok")
    AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name).save_pretrained(where)
    return AutoTokenizer.from_pretrained(where)


def test_a_hub_tokenizer_is_written_as_llama_cpp_wrote_the_embedded_gguf(embedded_hf_tok):
    from tuneforge.embedded import embedded_gguf_path
    from tuneforge.train.gguf_export import gguf_tokenizer_fields, hf_tokenizer_fields

    written = hf_tokenizer_fields(embedded_hf_tok, 49152)
    copied = gguf_tokenizer_fields(embedded_gguf_path(), embedded_hf_tok, 49152)
    assert written["tokenizer.ggml.pre"] == "smollm"  # the probe hash agrees with llama.cpp's table
    for key in ("tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                "tokenizer.ggml.merges", "tokenizer.ggml.add_bos_token", "tokenizer.ggml.unknown_token_id"):  # fmt: skip
        assert written[key] == copied[key], key
    assert len(written["tokenizer.ggml.merges"]) == 48900 and written["tokenizer.ggml.token_type"].count(3) == 17


def test_ids_past_the_tokenizer_are_unused_pads(embedded_hf_tok):
    from tuneforge.train.gguf_export import hf_tokenizer_fields

    fields = hf_tokenizer_fields(embedded_hf_tok, 49152 + 2)
    assert fields["tokenizer.ggml.tokens"][-2:] == ["[PAD49152]", "[PAD49153]"]
    assert fields["tokenizer.ggml.token_type"][-2:] == [5, 5]  # gguf.TokenType.UNUSED


def test_an_unknown_pre_tokenizer_is_refused_with_the_converter_command(embedded_hf_tok):

    from tokenizers import pre_tokenizers

    from tuneforge.train.gguf_export import hf_tokenizer_fields

    tok = copy.deepcopy(embedded_hf_tok)  # splitting digits differently changes the probe's ids
    tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    with pytest.raises(ConfigError, match="pre-tokenizer .*probe hash [0-9a-f]{64}.*convert_hf_to_gguf.py"):
        hf_tokenizer_fields(tok, 49152)


@pytest.mark.parametrize("kind", ["unigram", "bpe_byte_fallback"])
def test_a_sentencepiece_style_tokenizer_is_refused_with_the_converter_command(kind):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    from tuneforge.train.gguf_export import hf_tokenizer_fields

    if kind == "unigram":  # Llama 2 / Mistral 7B v0.1 style
        model = models.Unigram([("<unk>", 0.0), ("▁a", -1.0), ("a", -2.0)], unk_id=0)
    else:
        model = models.BPE({"<unk>": 0, "a": 1, "<0x41>": 2}, [], unk_token="<unk>", byte_fallback=True)
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(model), unk_token="<unk>")
    with pytest.raises(ConfigError, match="byte-level BPE.*convert_hf_to_gguf.py"):
        hf_tokenizer_fields(tok, 3)


def test_the_base_gguf_is_found_for_the_embedded_model_and_gguf_files_only():
    from tuneforge.train.gguf_export import source_gguf

    assert source_gguf("smollm2-135m-instruct").suffix == ".gguf"
    assert source_gguf("HuggingFaceTB/SmolLM2-360M-Instruct") is None  # written from its tokenizer.json
    with pytest.raises(ConfigError, match="is gone"):
        source_gguf("/nowhere/model.gguf")
