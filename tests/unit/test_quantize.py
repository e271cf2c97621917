"""Weight-only INT8 / INT4 quantization (tuneforge.compress.quantize, bitsandbytes) and the GGUF types
llama.cpp's own quantizer writes (tuneforge.train.gguf_export: q4_k_m, q4_0, …).

The models are random tiny Llamas with the usual initializer_range 0.02 rather than tiny_model's 0.3:
at 0.3 a random 2-layer net amplifies any weight error chaotically (NF4's 9% weight error gives
~55% logit error there, int8's 1% gives 5%), which says nothing about quantization; at 0.02 the
logit error follows the weight error, as in a trained model, and the argmax still varies by position."""

import json

import numpy as np
import pytest
import torch

from tuneforge.errors import ConfigError, UnknownNameError

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "What is a loan? A loan is money you borrow.",
    "Please consult a professional before you take any medication.",
]
# relative logit error ‖z_q − z‖ / ‖z‖ against the fp32 model, over the three texts (33 positions).
# Measured on an AMD EPYC (Zen 5, AVX512-BF16), seeds 0–3: int8 0.0093–0.0099, int4 0.092–0.120.
# int8 rounds to 255 levels per row (weight error ~0.7%) and bitsandbytes also rounds the activations
# per token: ~1% — bound 2x. NF4's weight error is ~9% per layer (16 levels per block of 64): ~10% —
# bound 1.5x the worst seed. Greedy next tokens: int8 33/33 on every seed, int4 32–33/33.
LOGIT_TOL = {"int8": 0.02, "int4": 0.18}
MIN_AGREE = {"int8": 0.95, "int4": 0.85}
# linear-layer bytes on disk vs fp32 (32 bits a weight). int8: 8 bits + a 4-byte scale per row of 64–128
# → 8.4 bits, 3.79x measured. NF4: 4 bits + an 8-bit absmax per 64 weights = 4.13 bits on a real model,
# but each layer here also carries 1.3 KB of constants (the 256-entry table of the double quantization)
# on only 2–8 K weights → 6.0 bits, 5.30x measured.
SHRINK = {"int8": (3.5, 4.0), "int4": (5.0, 8.0)}


def _tiny(tok, tmp_path, hidden=64, intermediate=None, seed=0):
    """A random tiny Llama saved with its tokenizer, as `tuneforge compress` finds a model."""
    from tuneforge.models import tiny_model

    model = tiny_model(tok, hidden=hidden, layers=2, seed=seed, init_std=0.02)
    if intermediate is not None:  # a pruned-looking MLP width
        from transformers import LlamaForCausalLM

        model.config.intermediate_size = intermediate
        torch.manual_seed(seed)
        model = LlamaForCausalLM(model.config).eval()
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    return model


@pytest.fixture(scope="module")
def tok():
    from tuneforge.models import tiny_tokenizer

    return tiny_tokenizer()


@pytest.fixture(scope="module")
def source(tok, tmp_path_factory):
    where = tmp_path_factory.mktemp("fp32")
    return _tiny(tok, where), where


@pytest.fixture(scope="module")
def quantized(source, tmp_path_factory):
    from tuneforge.compress.quantize import quantize_model

    _, where = source
    return {m: quantize_model(where, m, tmp_path_factory.mktemp("q") / m) for m in ("int8", "int4")}


def _logits(model, tok):
    """(33, V) logits of the three texts, each run on its own (no padding)."""
    with torch.no_grad():
        return torch.cat([model(tok(t, return_tensors="pt").input_ids).logits[0] for t in TEXTS])


def _tensor_bytes(folder, names, under=True):
    """Bytes of the safetensors tensors called one of `names`, and (`under`) those named under one of them."""
    from safetensors import safe_open

    total = 0
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        for name in f.keys():  # noqa: SIM118 (safe_open is not a dict)
            if any(name == p or (under and name.startswith(p + ".")) for p in names):
                t = f.get_tensor(name)
                total += t.numel() * t.element_size()
    return total


@pytest.mark.parametrize("method", ["int8", "int4"])
def test_the_saved_model_reloads_quantized_and_keeps_its_logits_within_tolerance(method, source, quantized, tok):
    from transformers import AutoModelForCausalLM

    model, _ = source
    reloaded = AutoModelForCausalLM.from_pretrained(quantized[method]).eval()
    z, zq = _logits(model, tok), _logits(reloaded, tok)
    rel = ((zq - z).norm() / z.norm()).item()
    agree = (zq.argmax(-1) == z.argmax(-1)).float().mean().item()
    assert 0 < rel < LOGIT_TOL[method], rel  # 0 would mean nothing was quantized
    assert agree >= MIN_AGREE[method], agree
    assert z.argmax(-1).unique().numel() > 10  # the greedy tokens vary: agreement can fail


@pytest.mark.parametrize("method", ["int8", "int4"])
def test_every_decoder_linear_is_quantized_and_embeddings_and_lm_head_are_not(method, quantized):
    from bitsandbytes.nn import Linear4bit, Linear8bitLt
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(quantized[method])
    kind, dtype = {"int8": (Linear8bitLt, torch.int8), "int4": (Linear4bit, torch.uint8)}[method]
    linears = {n: m for n, m in reloaded.named_modules() if isinstance(m, torch.nn.Linear)}
    decoder = {n: m for n, m in linears.items() if n.startswith("model.layers.")}
    assert len(decoder) == 14 and all(isinstance(m, kind) and m.weight.dtype == dtype for m in decoder.values())
    assert type(linears["lm_head"]) is torch.nn.Linear and reloaded.lm_head.weight.dtype == torch.float32
    assert reloaded.model.embed_tokens.weight.dtype == torch.float32
    config = json.loads((quantized[method] / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "bitsandbytes" and config[f"load_in_{method[3:]}bit"] is True
    if method == "int4":  # double quantization: bitsandbytes' CPU repacking undoes only it right (module docstring)
        assert config["bnb_4bit_quant_type"] == "nf4" and config["bnb_4bit_use_double_quant"] is True


@pytest.mark.parametrize("method", ["int8", "int4"])
def test_the_linear_weights_on_disk_shrink_by_the_bit_width(method, source, quantized):
    from tuneforge.compress.quantize import quantized_size

    model, where = source
    prefixes = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n != "lm_head"]
    codes = [f"{p}.weight" for p in prefixes]  # the weights alone, without their scales: 8 and 4 bits
    assert _tensor_bytes(where, codes) == {"int8": 4, "int4": 8}[method] * _tensor_bytes(
        quantized[method], codes, False
    )
    low, high = SHRINK[method]
    assert low < _tensor_bytes(where, prefixes) / _tensor_bytes(quantized[method], prefixes) < high
    # the whole file less: embeddings (a third of this model) stay fp32
    assert quantized_size(quantized[method]) < 0.5 * quantized_size(where)
    assert quantized_size(quantized["int4"]) < quantized_size(quantized["int8"])


def test_int4_keeps_linears_the_cpu_kernel_cannot_take_in_float_and_the_model_runs(tok, tmp_path, capsys):
    """A pruned MLP 100 wide: bitsandbytes' AVX512-BF16 CPU kernel takes out_features % 32 == 0 and
    in_features % 64 == 0 only, and fails at the first no-grad forward otherwise (on other CPUs this
    test passes either way)."""
    from transformers import AutoModelForCausalLM

    from tuneforge.compress.quantize import quantize_model

    model = _tiny(tok, tmp_path / "pruned", intermediate=100)
    out = quantize_model(tmp_path / "pruned", "int4", tmp_path / "int4")
    assert "keeps 6 linear layers in float" in capsys.readouterr().err  # gate/up/down of both layers
    reloaded = AutoModelForCausalLM.from_pretrained(out).eval()
    mlp, attn = reloaded.model.layers[0].mlp, reloaded.model.layers[0].self_attn
    assert type(mlp.down_proj) is torch.nn.Linear and type(attn.q_proj).__name__ == "Linear4bit"
    z, zq = _logits(model, tok), _logits(reloaded, tok)  # runs the CPU kernel
    assert ((zq - z).norm() / z.norm()).item() < LOGIT_TOL["int4"]


def test_an_unknown_method_is_refused_with_suggestions_before_anything_is_written(source, tmp_path):
    from tuneforge.compress.quantize import QUANT_METHODS, quantize_model

    with pytest.raises(UnknownNameError, match=r"unknown quantization method 'int3'\. Did you mean: int[48].*Available: int8, int4"):  # fmt: skip
        quantize_model(source[1], "int3", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert set(QUANT_METHODS) == {"int8", "int4"} and all(QUANT_METHODS.values())


def test_an_output_folder_of_the_users_files_is_refused(source, tmp_path):
    from tuneforge.compress.quantize import quantize_model

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="did not write"):
        quantize_model(source[1], "int8", tmp_path / "out")
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


# ---- GGUF: llama.cpp's quantizer ---------------------------------------------------------------

# relative logit error of a llama.cpp type against the f16 GGUF, llama.cpp computing both, over the 32
# positions of the three texts. Measured on the same CPU, seeds 0–2: q4_k_m 0.089–0.095, q4_0 0.140–0.156
# (greedy tokens 31–32/32). The tied output/embedding matrix is q6_K in both (llama.cpp's choice for the
# output), which alone costs 0.043 (a q6_k file); the layers add q4_K (256-blocks, 6-bit sub-scales)
# or q4_0 (32-blocks, one f16 scale) error on top. Bound ~1.4x the worst seed.
GGUF_TOL = {"q4_k_m": 0.13, "q4_0": 0.22}
GGUF_FILE_TYPE = {"q4_k_m": 15, "q4_0": 2}  # llama.cpp's LLAMA_FTYPE_MOSTLY_*


@pytest.fixture(scope="module")
def embedded_tok():
    """The embedded SmolLM2 tokenizer (vocabulary 49152): write_gguf copies it from the embedded GGUF."""
    from transformers import AutoTokenizer

    from tuneforge.embedded import embedded_gguf_path

    path = embedded_gguf_path()
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def _gguf_model(tok, hidden):
    from tuneforge.models import tiny_model

    return tiny_model(tok, hidden=hidden, layers=1, init_std=0.02)


@pytest.fixture(scope="module")
def gguf_256(embedded_tok, tmp_path_factory):
    """A 1-layer model with hidden 256 (k-quant rows: multiples of 256) and its f16 GGUF."""
    from tuneforge.embedded import embedded_gguf_path
    from tuneforge.train.gguf_export import write_gguf

    model, where = _gguf_model(embedded_tok, 256), tmp_path_factory.mktemp("gguf")
    return model, write_gguf(model, embedded_tok, embedded_gguf_path(), where / "model-f16.gguf", "f16")


def _gguf_types(path):
    import gguf

    reader = gguf.GGUFReader(str(path))
    file_type = int(reader.fields["general.file_type"].contents())
    return file_type, {t.name: t.tensor_type.name for t in reader.tensors}


def _llama_logits(path, ids):
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), vocab_only=False, n_ctx=64, logits_all=True, n_threads=1, verbose=False)
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)])  # (T, V)


@pytest.mark.parametrize("quant", ["q4_k_m", "q4_0"])
def test_a_llama_cpp_quant_loads_in_llama_cpp_and_stays_near_the_f16_logits(quant, gguf_256, embedded_tok):
    from tuneforge.embedded import embedded_gguf_path
    from tuneforge.train.gguf_export import write_gguf

    model, f16 = gguf_256
    out = write_gguf(model, embedded_tok, embedded_gguf_path(), f16.with_name(f"model-{quant}.gguf"), quant)
    assert not [p.name for p in out.parent.iterdir() if p.name.endswith(".partial")]  # nor the f16 beside it
    file_type, types = _gguf_types(out)
    assert file_type == GGUF_FILE_TYPE[quant]
    assert types["blk.0.attn_q.weight"] == {"q4_k_m": "Q4_K", "q4_0": "Q4_0"}[quant]
    assert out.stat().st_size < 0.5 * f16.stat().st_size
    ids = embedded_tok(" ".join(TEXTS)).input_ids
    z, zq = _llama_logits(f16, ids), _llama_logits(out, ids)
    rel = np.linalg.norm(zq - z) / np.linalg.norm(z)
    assert 0 < rel < GGUF_TOL[quant], rel
    assert (zq.argmax(-1) == z.argmax(-1)).mean() >= 0.9
    with torch.no_grad():  # and the f16 file is the model: the comparison is against the right logits
        zt = model(torch.tensor([ids])).logits[0].numpy()
    assert np.linalg.norm(z - zt) / np.linalg.norm(zt) < 0.005


def test_a_k_quant_of_rows_shorter_than_256_falls_back_to_legacy_types(embedded_tok, tmp_path):
    """Hidden 64: llama.cpp stores q4_K tensors as q5_0 and q6_K ones (attn_v, ffn_down, the output)
    as q8_0 and says so in its log; the file still loads."""
    from tuneforge.embedded import embedded_gguf_path
    from tuneforge.train.gguf_export import write_gguf

    out = write_gguf(_gguf_model(embedded_tok, 64), embedded_tok, embedded_gguf_path(), tmp_path / "m.gguf", "q4_k_m")
    _, types = _gguf_types(out)
    assert types["blk.0.attn_q.weight"] == types["blk.0.ffn_up.weight"] == "Q5_0"
    assert types["blk.0.ffn_down.weight"] == types["token_embd.weight"] == "Q8_0"
    assert _llama_logits(out, embedded_tok("The quick brown fox").input_ids).std() > 0


def test_an_unknown_gguf_quant_is_refused_with_every_type(tmp_path):
    from tuneforge.train.gguf_export import QUANTS, write_gguf

    with pytest.raises(ConfigError, match=r"--quant q4_k unknown\. Did you mean: .*q4_k_m.*\? Use one of f16, q8_0, f32, q4_k_m"):  # fmt: skip
        write_gguf(None, None, None, tmp_path / "m.gguf", "q4_k")
    assert {"q4_k_m", "q5_k_m", "q6_k", "q4_0", "f16", "q8_0", "f32"} <= set(QUANTS)


def test_a_failure_in_llama_cpps_quantizer_is_a_config_error_naming_the_quant(tmp_path):
    from tuneforge.train.gguf_export import quantize_gguf

    (tmp_path / "in.gguf").write_bytes(b"not a gguf file" * 8)
    with pytest.raises(ConfigError, match=r"llama.cpp could not quantize .*in.gguf to q6_k \(return code 1"):
        quantize_gguf(tmp_path / "in.gguf", tmp_path / "out.gguf", "q6_k")
    assert not (tmp_path / "out.gguf").exists()


def test_export_help_names_every_gguf_quant(capsys):
    from tuneforge.cli import main
    from tuneforge.train.gguf_export import QUANTS

    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(q in text.replace(",", " ").split() for q in QUANTS), text


def test_a_head_pruned_model_exports_to_gguf_with_its_head_size_and_llama_cpp_agrees_with_transformers(
    embedded_tok, tmp_path
):
    """Pruned heads make head_dim ≠ hidden / heads: the GGUF must say so (attention.key_length)."""
    import torch

    from tuneforge.compress.prune import plan_from_scores, prune_model
    from tuneforge.embedded import embedded_gguf_path
    from tuneforge.train.gguf_export import write_gguf

    model = _gguf_model(embedded_tok, 256)  # 4 heads of 64, 2 KV heads
    c = model.config
    plan = plan_from_scores(
        model, torch.rand(1, 4), torch.rand(1, c.intermediate_size), torch.ones(1), heads=0.5, mlp=0.5
    )
    prune_model(model, plan)
    assert model.config.num_attention_heads == 2 and model.config.head_dim == 64  # 256 / 2 would be 128
    path = write_gguf(model, embedded_tok, embedded_gguf_path(), tmp_path / "m.gguf", "f16")
    ids = embedded_tok("The pruned model still reads text.")["input_ids"]
    with torch.no_grad():
        ref = model(torch.tensor([ids])).logits[0].float().numpy()
    got = _llama_logits(path, ids)
    assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 0.01


@pytest.mark.parametrize("method", ["int8", "int4"])
def test_every_verb_takes_a_quantized_model_directory_as_a_model(method, quantized, caplog):
    """`eval`, `safety` and `compress compare` check and load models through tuneforge.models: the packed
    weights' shapes are not the config's, and the int8 cast notice is logged once, not at every forward."""
    import logging

    from tuneforge.evaluate.model_spec import check_model_spec, load_eval_model

    check_model_spec(str(quantized[method]))
    model, tok, _ = load_eval_model(str(quantized[method]), "bfloat16", "cpu")  # bf16: int8 logs its cast
    with caplog.at_level(logging.WARNING):
        out = model.generate(**tok("Question 1?", return_tensors="pt"), max_new_tokens=3, do_sample=False)
    assert out.shape[1] > 3
    assert sum("MatMul8bitLt" in r.getMessage() for r in caplog.records) <= 1
