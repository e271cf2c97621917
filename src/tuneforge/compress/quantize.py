"""Weight-only INT8 / INT4 quantization of a causal LM with bitsandbytes, saved so that
`AutoModelForCausalLM.from_pretrained(out)` loads it back quantized: the `quantization_config` travels
in config.json, and bitsandbytes and transformers own the format. GGUF k-quants for llama.cpp and
Ollama are `tuneforge export RUN --gguf --quant q4_k_m` (train/gguf_export.py).

Methods (`QUANT_METHODS`):
- `int8`: bitsandbytes' LLM.int8 — each linear layer's weight as int8 with one absmax scale per output
  row. At run time bitsandbytes also quantizes the activations, per token and on the fly, keeping the
  outlier input columns (|x| > 6) in fp16.
- `int4`: bitsandbytes' NF4 (QLoRA's data type) — 4-bit normal-float codes in blocks of 64 weights,
  one absmax per block, the absmaxes quantized again to 8 bits (double quantization: ~0.13 rather
  than 0.5 extra bits per weight); `bnb_4bit_compute_dtype` is the checkpoint's dtype (fp32 or bf16).

Both round each weight to the nearest code with scales taken from the weights themselves: **no
calibration set** is used or needed (GPTQ or AWQ would use one; these are not those methods).

Kept in the checkpoint's dtype, as transformers does by default for bitsandbytes: the embeddings
(not linear layers), the output projection `lm_head` (tied to the embeddings in small models; the
logits are the most sensitive to weight error) and the norms. In a small model they are much of
the file, so the file shrinks by less than the linear layers do.

bitsandbytes (0.50) on CPUs with AVX512-BF16, found here: a 4-bit layer is repacked for a faster
kernel on its first inference forward, and that kernel needs out_features % 32 == 0 and
in_features % 64 == 0; other shapes (a pruned MLP) fail with an AssertionError at the first
generation, so int4 keeps such layers unquantized and says so. Saving after that repacking goes
through bitsandbytes' inverse, which without double quantization writes the block scales back
transposed (73% weight error on a layer with 128 inputs whose rows differ in scale): this module
saves before any forward, and always uses double quantization, whose inverse is right.

bitsandbytes rather than torchao: bitsandbytes 0.50's CPU backend loads, saves, reloads and runs
both methods on CPU (checked with transformers 5.25), and it is already the QLoRA dependency.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tuneforge.errors import ConfigError, TuneforgeError, UnknownNameError, suggest

QUANT_METHODS = {
    "int8": "bitsandbytes LLM.int8: int8 weights, one scale per row (~4x smaller linear layers than fp32)",
    "int4": "bitsandbytes NF4 with double quantization: 4-bit weights in blocks of 64 (~7x smaller than fp32)",
}
VERB = "compress"
# the shapes bitsandbytes' AVX512-BF16 4-bit CPU kernel takes (bitsandbytes.functional._convert_weight_packed_for_cpu)
_CPU_4BIT_OUT_MULTIPLE, _CPU_4BIT_IN_MULTIPLE = 32, 64


def quantize_model(
    model_dir: str | Path, method: str, out: str | Path, device: str = "cpu", overwrite: bool = False
) -> Path:
    """Load `model_dir` quantized with `method` (a key of QUANT_METHODS) and save it with its
    tokenizer at `out`, which `AutoModelForCausalLM.from_pretrained(out)` loads back quantized.

    Weight-only round-to-nearest: no calibration data (see the module docstring). Embeddings,
    lm_head and norms stay in the checkpoint's dtype.

    Args:
        model_dir: a model directory with its tokenizer (or anything `tuneforge.models` loads: the
            embedded model's name, a `.gguf` file, a hub id).
        method: "int8" or "int4".
        out: a new or empty folder, or an earlier quantization of the same model (with `overwrite`).
        device: where bitsandbytes quantizes ("cpu", "cuda", "auto"); the saved files load on either.
        overwrite: replace an earlier quantization of this model at `out`.

    Returns:
        `out`, resolved.

    Raises:
        UnknownNameError: an unknown method, naming the closest and every available one.
        ConfigError: bitsandbytes missing or too old, or `out` holding something this did not write.
    """
    from tuneforge.files import check_output_dir, staged_dir
    from tuneforge.models import load_tokenizer, resolve_model

    check_method(method)
    _check_bitsandbytes(method)
    where = resolve_model(str(model_dir))
    local = Path(where).exists()
    source = str(Path(where).resolve()) if local else where
    out = check_output_dir(out, VERB, [where] if local else [], source, replace=True, overwrite=overwrite)
    tokenizer = load_tokenizer(str(model_dir))
    model = _load_quantized(where, method, device)
    # saved before any forward: see the module docstring (bitsandbytes' CPU repacking)
    with staged_dir(out, VERB, source) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out


def check_quantize(method: str) -> None:
    """Everything `quantize_model(…, method, …)` needs, checked before any work: the method and bitsandbytes."""
    check_method(method)
    _check_bitsandbytes(method)


def check_method(method: str) -> None:
    """Refuse a method that is not in QUANT_METHODS, with the closest names and the full list."""
    if method not in QUANT_METHODS:
        raise UnknownNameError(
            f"unknown quantization method '{method}'.{suggest(method, QUANT_METHODS)} "
            f"Available: {', '.join(QUANT_METHODS)}"
        )


def quantized_size(path: str | Path) -> int:
    """Bytes of a model's weights on disk: a single file (a GGUF) whole, or a model directory's
    *.safetensors files — config, tokenizer and chat template aside, so models compare by weights."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    weights = sorted(p.glob("*.safetensors")) if p.is_dir() else []
    if not weights:
        raise TuneforgeError(
            f"no weights to measure at {p}: give a model directory with *.safetensors, or a .gguf file"
        )
    return sum(w.stat().st_size for w in weights)


def _check_bitsandbytes(method: str) -> None:
    """bitsandbytes ≥ 0.45 (its first release with CPU kernels), said before anything is loaded."""
    import importlib.util
    from importlib.metadata import version

    fix = "pip install 'bitsandbytes>=0.45' (the tuneforge[qlora] extra)"
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(f"quantize={method} quantizes with bitsandbytes, which is not installed: {fix}")
    if tuple(int(x) for x in version("bitsandbytes").split(".")[:2]) < (0, 45):
        raise ConfigError(f"bitsandbytes {version('bitsandbytes')} has no CPU kernels for quantize={method}: {fix}")


def _load_quantized(where: str, method: str, device: str):
    """The model at `where`, quantized by bitsandbytes as transformers loads it."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, BitsAndBytesConfig

    from tuneforge.hardware import check_device_available
    from tuneforge.models import default_device

    device = default_device() if device == "auto" else device
    check_device_available(device)
    config = AutoConfig.from_pretrained(where, trust_remote_code=False)
    dtype = getattr(config, "dtype", None) or torch.float32  # the checkpoint's: what stays unquantized keeps it
    if method == "int8":
        quantization = BitsAndBytesConfig(load_in_8bit=True)
    else:
        quantization = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
            llm_int8_skip_modules=_kept_in_float_for_cpu_4bit(config),  # despite its name, also the 4-bit skip list
        )
    try:
        return AutoModelForCausalLM.from_pretrained(
            where,
            dtype=dtype,
            quantization_config=quantization,
            device_map={"": device},
            trust_remote_code=False,
            use_safetensors=True,
        ).eval()
    except (OSError, ValueError, TypeError, KeyError, RuntimeError, ImportError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise TuneforgeError(
            f"bitsandbytes could not load {where} as {method} ({type(exc).__name__}: {first}). "
            "Check that it is a complete causal-LM checkpoint (--debug shows the full error)"
        ) from exc


def _kept_in_float_for_cpu_4bit(config) -> list[str] | None:
    """None (transformers' default skips: lm_head, tied and last modules) when every linear layer has a
    shape bitsandbytes' AVX512-BF16 CPU kernel takes; otherwise the defaults plus the layers it does not
    take, which stay in float (and a note on stderr says which)."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.quantizers.base import get_keys_to_not_convert

    with torch.device("meta"):  # shapes only: no memory, no weights read
        skeleton = AutoModelForCausalLM.from_config(config, trust_remote_code=False)
    odd = [
        name
        for name, m in skeleton.named_modules()
        if isinstance(m, torch.nn.Linear)
        and (m.out_features % _CPU_4BIT_OUT_MULTIPLE or m.in_features % _CPU_4BIT_IN_MULTIPLE)
    ]
    defaults = get_keys_to_not_convert(skeleton)
    odd = [name for name in odd if name not in defaults]
    if not odd:
        return None
    print(
        f"tuneforge: int4 keeps {len(odd)} linear layers in float ({', '.join(odd[:3])}{', …' if len(odd) > 3 else ''}): "
        f"bitsandbytes' CPU 4-bit kernel needs out_features divisible by {_CPU_4BIT_OUT_MULTIPLE} and "
        f"in_features by {_CPU_4BIT_IN_MULTIPLE}",
        file=sys.stderr,
    )
    return defaults + odd
