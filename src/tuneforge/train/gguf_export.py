"""`tuneforge export RUN --gguf [--quant f16|q8_0|f32|q4_k_m|…]`: the run's merged model as one GGUF file
that llama.cpp, llama-cpp-python and Ollama load, plus an Ollama `Modelfile` beside it.

Written with the `gguf` package (llama.cpp's own Python writer, its tensor-name map and its Q8_0
quantiser) rather than by calling llama.cpp's `convert_hf_to_gguf.py`: that script is not on PyPI
(it lives in the llama.cpp source tree). What tuneforge writes itself is small: the llama
architecture's hyper-parameters from the model config, the rotary permutation of the q/k
projections that llama.cpp expects (the inverse of what transformers undoes on load), the
tokenizer, and the run's chat template, BOS, EOS and end-of-turn ids.

The tokenizer: a tuned model keeps its base's vocabulary, so when the base was loaded from a GGUF
(the embedded default, or `model.name=….gguf`) its tokens, merges, token types and pre-tokenizer
name are copied from there, where llama.cpp already decided them. A base from the Hub or a
directory (byte-level BPE tokenizers: Llama 3, SmolLM, DeepSeek, Mistral-Nemo…) is written from its
`tokenizer.json` (`hf_tokenizer_fields`); llama.cpp also needs the *pre-tokenizer name*, which it
recognises by hashing the token ids of one probe text (`_PRE_PROBE`, the text llama.cpp's converter
uses, so the hashes agree with its table). `_PRE_BY_HASH` holds the names of the llama-family
tokenizers from that table; a tokenizer whose hash is not there, or one that is not byte-level BPE
(SentencePiece: Llama 2, Mistral 7B v0.1), is refused with llama.cpp's converter command rather
than given a guessed pre-tokenizer (a wrong one splits text differently and the model degrades
without an error). Tested offline by writing the embedded model's tokenizer both ways.

The k-quants and the other llama.cpp types (`LLAMA_QUANTS`: q4_k_m, q5_k_m, q6_k, q4_0…) are not
written here: their block formats and the per-tensor mix of a "_m" type (q4_k_m keeps the output
projection, and attn_v and ffn_down in about half the layers, in q6_K) are llama.cpp's own code. `write_gguf` writes
an f16 GGUF to a temporary sibling and hands it to llama.cpp's quantizer (`llama_model_quantize`, the
function behind `llama-quantize`, through llama-cpp-python's C binding). Round-to-nearest with no
importance matrix, so no calibration data. A k-quant needs rows of a multiple of 256 values (QK_K);
llama.cpp quantizes a tensor whose rows are not (a hidden size of 64, say) to a legacy type of
about the same size instead (q4_K → q5_0, q6_K → q8_0) and logs a warning per tensor.

The Ollama Modelfile beside it is written by `train/modelfile.py`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from tuneforge.errors import ConfigError, suggest

# written by the `gguf` package here: the value is GGUF's general.file_type (llama.cpp's LLAMA_FTYPE)
_WRITTEN = {"f16": 1, "q8_0": 7, "f32": 0}
# written by llama.cpp's quantizer from an f16 GGUF: the name of llama-cpp-python's LLAMA_FTYPE constant
LLAMA_QUANTS = {
    "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "q4_k_s": "LLAMA_FTYPE_MOSTLY_Q4_K_S",
    "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "q5_k_s": "LLAMA_FTYPE_MOSTLY_Q5_K_S",
    "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
    "q3_k_m": "LLAMA_FTYPE_MOSTLY_Q3_K_M",
    "q2_k": "LLAMA_FTYPE_MOSTLY_Q2_K",
    "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
    "q4_1": "LLAMA_FTYPE_MOSTLY_Q4_1",
    "q5_0": "LLAMA_FTYPE_MOSTLY_Q5_0",
    "q5_1": "LLAMA_FTYPE_MOSTLY_Q5_1",
}
QUANTS = (*_WRITTEN, *LLAMA_QUANTS)
# tokenizer fields taken from the base GGUF as they are (the run's tokenizer has the same vocabulary)
_COPIED = (
    "tokenizer.ggml.model",
    "tokenizer.ggml.pre",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.add_space_prefix",
    "tokenizer.ggml.add_bos_token",
    "tokenizer.ggml.unknown_token_id",
)


_CONVERTER = (
    "export with --merge and convert RUN/merged with llama.cpp: python convert_hf_to_gguf.py RUN/merged --outtype f16"
)
# llama.cpp identifies a BPE pre-tokenizer by sha256(str(tokenizer.encode(_PRE_PROBE))); the probe text
# and the hashes below are llama.cpp's (convert_hf_to_gguf.py, get_vocab_base_pre), so the names agree.
_PRE_PROBE = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ "
    "🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ "
    "------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, "
    "'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL"
)
_PRE_BY_HASH = {
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",  # meta-llama/Meta-Llama-3-8B
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",  # HuggingFaceTB/SmolLM-135M
    "049ecf7629871e3041641907f3de7c733e4dbfdc736f57d882ba0b0845599754": "deepseek-llm",  # deepseek-llm-7b-base
    "347715f544604f9118bb75ed199f68779f423cabb20db6de6f31b908d04d7821": "deepseek-coder",  # deepseek-coder-6.7b
    "63b97e4253352e6f357cc59ea5b583e3a680eaeaf2632188c2b952de2588485e": "tekken",  # mistralai/Mistral-Nemo-Base
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": "gpt-2",  # openai-community/gpt2
}


def source_gguf(model_name: str) -> Path | None:
    """The GGUF file a run's base model was loaded from, or None for a Hub/directory base."""
    from tuneforge.models import EMBEDDED_MODEL, embedded_gguf_path

    if model_name == EMBEDDED_MODEL:
        return Path(embedded_gguf_path())
    if model_name.endswith(".gguf"):
        if not Path(model_name).exists():
            raise ConfigError(f"the run's base model {model_name} is gone; GGUF export copies its tokenizer from it")
        return Path(model_name)
    return None


def pre_tokenizer_name(tok) -> str:
    """llama.cpp's name for `tok`'s BPE pre-tokenizer; a ConfigError with the converter command if unknown."""
    from hashlib import sha256

    digest = sha256(str(tok.encode(_PRE_PROBE)).encode()).hexdigest()
    if digest not in _PRE_BY_HASH:
        raise ConfigError(
            f"tuneforge does not know this tokenizer's llama.cpp pre-tokenizer (probe hash {digest}; known: "
            f"{', '.join(sorted(set(_PRE_BY_HASH.values())))}); {_CONVERTER}"
        )
    return _PRE_BY_HASH[digest]


def hf_tokenizer_fields(tok, vocab_size: int) -> dict:
    """The GGUF tokenizer fields of a byte-level BPE `tokenizer.json`, as llama.cpp's converter writes them.

    Token types: added tokens that are special (or look like `<|…|>`) are CONTROL, other added tokens
    USER_DEFINED, the rest NORMAL; ids the tokenizer lacks below the model's vocab_size are UNUSED pads."""
    import json

    import gguf

    model = json.loads(tok.backend_tokenizer.to_str())["model"] if hasattr(tok, "backend_tokenizer") else {}
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise ConfigError(
            f"GGUF export writes byte-level BPE tokenizers; this one is {model.get('type') or type(tok).__name__}"
            f"{' with byte fallback (SentencePiece-style)' if model.get('byte_fallback') else ''}; {_CONVERTER}"
        )
    vocab, added = tok.get_vocab(), tok.get_added_vocab()
    if max(vocab.values()) >= vocab_size:
        raise ConfigError(
            f"the tokenizer has ids up to {max(vocab.values())} but the model's vocab_size is {vocab_size}"
        )
    by_id = {i: t for t, i in vocab.items()}
    special = {i for i, t in tok.added_tokens_decoder.items() if t.special}
    tokens, types = [], []
    for i in range(vocab_size):
        text = by_id.get(i)
        if text is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif text in added:
            looks_special = text.startswith("<|") and text.endswith("|>")
            types.append(gguf.TokenType.CONTROL if i in special or looks_special else gguf.TokenType.USER_DEFINED)
            tokens.append(text)
        else:
            tokens.append(text)
            types.append(gguf.TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    return {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": pre_tokenizer_name(tok),
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": [int(t) for t in types],
        "tokenizer.ggml.merges": merges,
        "tokenizer.ggml.add_bos_token": bool(getattr(tok, "add_bos_token", False)),
    } | ({"tokenizer.ggml.unknown_token_id": tok.unk_token_id} if tok.unk_token_id is not None else {})


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF → llama.cpp order of the rotary halves in a q/k projection (rows grouped per head)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_tokenizer_fields(base_gguf: Path, tok, vocab_size: int) -> dict:
    """The tokenizer fields copied from the base model's GGUF, checked against the run's tokenizer."""
    import gguf

    reader = gguf.GGUFReader(str(base_gguf))
    fields = {k: f.contents() for k, f in reader.fields.items() if k in _COPIED}
    tokens, vocab = fields["tokenizer.ggml.tokens"], tok.get_vocab()
    if len(tokens) != vocab_size or any(vocab.get(t) != i for i, t in enumerate(tokens)):
        raise ConfigError(f"the run's tokenizer does not match the vocabulary of {base_gguf}; cannot copy it")
    return fields


def check_quant(quant: str) -> None:
    """Refuse an unknown `--quant`, or a llama.cpp type without llama-cpp-python, before any work."""
    if quant not in QUANTS:
        raise ConfigError(f"--quant {quant} unknown.{suggest(quant, QUANTS)} Use one of {', '.join(QUANTS)}")
    if quant in LLAMA_QUANTS:
        _llama_cpp(quant)


def _llama_cpp(quant: str):
    """llama-cpp-python, imported only for the llama.cpp types (it loads a native library)."""
    try:
        import llama_cpp
    except (ImportError, OSError, RuntimeError) as exc:  # llama_cpp raises RuntimeError when its .so fails to load
        raise ConfigError(
            f"--quant {quant} runs llama.cpp's quantizer from the package llama-cpp-python, which cannot be "
            f"imported ({type(exc).__name__}: {exc}). pip install llama-cpp-python, or use --quant "
            f"{', '.join(_WRITTEN)}"
        ) from exc
    return llama_cpp


def quantize_gguf(src: Path, out: Path, quant: str) -> Path:
    """Quantize the f16/f32 GGUF `src` to llama.cpp's type `quant` (a key of LLAMA_QUANTS) at `out`,
    with llama.cpp's own quantizer (what `llama-quantize SRC OUT Q4_K_M` runs). llama.cpp logs each
    tensor's type, and a warning for each one it stores in a fallback type (rows not a multiple of 256)."""
    import ctypes

    import torch

    if quant not in LLAMA_QUANTS:
        raise ConfigError(f"--quant {quant} is not one of llama.cpp's quantizer types ({', '.join(LLAMA_QUANTS)})")
    llama_cpp = _llama_cpp(quant)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, LLAMA_QUANTS[quant])
    params.nthread = torch.get_num_threads()  # what the user allowed torch (OMP_NUM_THREADS), not every core
    code = llama_cpp.llama_model_quantize(str(src).encode(), str(out).encode(), ctypes.byref(params))
    if code != 0:
        raise ConfigError(
            f"llama.cpp could not quantize {src} to {quant} (return code {code}; llama.cpp's log says why). "
            f"Try another --quant, or --quant f16"
        )
    return out


def write_gguf(model, tok, base_gguf: Path | None, out: Path, quant: str = "f16", name: str = "") -> Path:
    """Write `model` (a merged llama-architecture causal LM) as a GGUF file at `out`; the tokenizer
    is copied from `base_gguf`, or written from `tok`'s tokenizer.json when the base was not a GGUF.

    f16, q8_0 and f32 are written here; llama.cpp's types (LLAMA_QUANTS) are quantized by llama.cpp
    from an f16 file written beside `out` first, which is removed afterwards. `out` appears only
    complete: it is written as `out.partial` and renamed."""
    check_quant(quant)
    tmp, f16 = out.with_name(out.name + ".partial"), out.with_name(out.name + ".f16.partial")
    try:
        if quant in LLAMA_QUANTS:
            _write_gguf_file(model, tok, base_gguf, f16, "f16", name or out.stem)
            quantize_gguf(f16, tmp, quant)
        else:
            _write_gguf_file(model, tok, base_gguf, tmp, quant, name or out.stem)
        tmp.replace(out)
    finally:  # after a failure, no half-written file; the f16 one, as large as the model, never stays
        f16.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    return out


def _write_gguf_file(model, tok, base_gguf: Path | None, dest: Path, quant: str, name: str) -> None:
    """Write the GGUF at `dest` with the `gguf` package, its weights in `quant` (one of _WRITTEN)."""
    import gguf
    import torch

    cfg = model.config
    if cfg.model_type not in ("llama", "mistral"):
        raise ConfigError(
            f"GGUF export writes llama-architecture models; this one is '{cfg.model_type}'. "
            "Export with --merge and convert the merged directory with llama.cpp's convert_hf_to_gguf.py"
        )
    if base_gguf is not None:
        fields = gguf_tokenizer_fields(base_gguf, tok, cfg.vocab_size)
    else:
        fields = hf_tokenizer_fields(tok, cfg.vocab_size)

    n_head, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_head
    w = gguf.GGUFWriter(str(dest), "llama")
    w.add_name(name)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    if head_dim * n_head != cfg.hidden_size:  # pruned heads: llama.cpp would assume hidden_size / n_head
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    w.add_rope_freq_base(float(getattr(cfg, "rope_theta", None) or cfg.rope_parameters["rope_theta"]))
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_dimension_count(head_dim)
    w.add_vocab_size(cfg.vocab_size)
    w.add_file_type(_WRITTEN[quant])
    w.add_tokenizer_model(fields["tokenizer.ggml.model"])
    w.add_tokenizer_pre(fields["tokenizer.ggml.pre"])
    w.add_token_list(fields["tokenizer.ggml.tokens"])
    w.add_token_types(fields["tokenizer.ggml.token_type"])
    w.add_token_merges(fields["tokenizer.ggml.merges"])
    for key, add in (
        ("tokenizer.ggml.add_space_prefix", w.add_add_space_prefix),
        ("tokenizer.ggml.add_bos_token", w.add_add_bos_token),
        ("tokenizer.ggml.unknown_token_id", w.add_unk_token_id),
    ):
        if key in fields:
            add(fields[key])
    # the run's own special tokens and template: tuneforge's EOS is the end-of-turn token
    if tok.bos_token_id is not None:
        w.add_bos_token_id(tok.bos_token_id)
    w.add_eos_token_id(tok.eos_token_id)
    w.add_eot_token_id(tok.eos_token_id)
    w.add_pad_token_id(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    if tok.chat_template:
        w.add_chat_template(tok.chat_template)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, cfg.num_hidden_layers)
    tied = getattr(cfg, "tie_word_embeddings", False)
    for hf_name, tensor in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp reads the output projection from token_embd when it is absent
        gg_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gg_name is None:
            raise ConfigError(f"no GGUF name for tensor {hf_name}; the architecture is not plain llama")
        data = tensor.detach().to(torch.float32).numpy()
        if hf_name.endswith("q_proj.weight"):
            data = _permute(data, n_head)
        elif hf_name.endswith("k_proj.weight"):
            data = _permute(data, n_kv)
        if data.ndim == 1 or quant == "f32":
            w.add_tensor(gg_name, data.astype(np.float32))
        elif quant == "f16":
            w.add_tensor(gg_name, data.astype(np.float16))
        else:
            q = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(gg_name, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file(progress=True)
    w.close()


def export_gguf(
    run_dir: str | Path, out: str | Path | None = None, quant: str = "f16", overwrite: bool = False
) -> Path:
    """Merge the run, write OUT/model-<quant>.gguf and OUT/Modelfile (OUT defaults to RUN/gguf).
    OUT must be new, empty, or an earlier export of this run (replaced only with `overwrite`)."""
    import tempfile

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneforge.files import check_output_dir, staged_dir
    from tuneforge.train.export import check_trained_run, merge_run, trained_model_of
    from tuneforge.train.modelfile import modelfile

    check_quant(quant)  # llama-cpp-python's absence too, before the merge
    run_dir = Path(run_dir)
    adapter_dir, config_path = check_trained_run(run_dir)
    base_name, _, objective = trained_model_of(config_path)
    if objective == "reward":
        raise ConfigError(
            f"{run_dir} is a reward model (a scalar head, not a generator); GGUF is for generative models. "
            "Export it with --merge and load it with AutoModelForSequenceClassification"
        )
    source = str(run_dir.resolve())
    # One folder holds each quantisation of the run (model-f16.gguf, model-q8_0.gguf …): the folder may
    # be replaced by its own export, but an existing file of this quantisation only with --overwrite.
    out = check_output_dir(out or run_dir / "gguf", "export", [adapter_dir, config_path], source, True, True)
    if (out / f"model-{quant}.gguf").exists() and not overwrite:
        raise ConfigError(
            f"{out / f'model-{quant}.gguf'} already holds this run's {quant} export. Pass --overwrite to replace it"
        )
    base_gguf = source_gguf(base_name)  # before any work
    saved = AutoTokenizer.from_pretrained(adapter_dir)
    if base_gguf is None:  # a tokenizer llama.cpp cannot take: say so before merging
        hf_tokenizer_fields(saved, max(saved.get_vocab().values()) + 1)
    name = f"model-{quant}.gguf"
    try:  # the run's own template, mapped before any work
        (text, no_tools), problem = modelfile(name, saved), None
    except ConfigError as exc:  # the GGUF still serves llama.cpp: write it, and say why Ollama gets no file
        text, no_tools, problem = None, "", exc
    with tempfile.TemporaryDirectory(prefix="tuneforge-merge-") as merged:
        if (adapter_dir / "adapter_config.json").exists():
            merge_run(run_dir, Path(merged), "float32")
        else:  # a full or BitFit run saved the whole model
            merged = str(adapter_dir)
        model = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(merged)
        with staged_dir(out, "export", source) as tmp:
            for kept in out.glob("model-*.gguf") if out.is_dir() else []:  # the other quantisations stay
                if kept.name != name:
                    os.link(kept, tmp / kept.name)  # a hard link: no copy of gigabytes
            write_gguf(model, tok, base_gguf, tmp / name, quant, name=f"{run_dir.name} (tuneforge)")
            if text is not None:
                (tmp / "Modelfile").write_text(text, encoding="utf-8")
    if problem is not None:
        print(f"tuneforge: wrote {out / name} without an Ollama Modelfile: {problem}", file=sys.stderr)
    elif no_tools:
        print(f"tuneforge: the Ollama Modelfile renders no tool calls: {no_tools}", file=sys.stderr)
    return out / name
