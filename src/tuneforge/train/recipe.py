"""`tuneforge train`: supervised fine-tuning with any parameterisation, as a recipe that reads top
to bottom — resolve config → load model → build data → apply adapter → run the loop → save.
`fit_sft` is the shared core the demo uses too; `inspect_examples` shows what the loss sees."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from tuneforge.config import save_config
from tuneforge.data.seed import load_examples
from tuneforge.models import EMBEDDED_MODEL, load_model
from tuneforge.records import Example
from tuneforge.train.adapters import AdapterConfig, apply_adapter, save_trained
from tuneforge.train.loop import Objective, TrainConfig, TrainResult, evaluate_loss, train_loop
from tuneforge.train.sft import (
    batch_stream,
    collate,
    count_targets,
    encode_examples,
    sft_loss,
    target_spans,
)

SFT = Objective("sft", sft_loss, count_targets)


@dataclass
class ModelConfig:
    name: str = field(default=EMBEDDED_MODEL, metadata={"help": "hub id, local dir, .gguf, or the embedded default"})
    dtype: str = field(default="bfloat16", metadata={"help": "parameter dtype of the (frozen) base"})
    attn_implementation: str = field(default="sdpa", metadata={"help": "sdpa | eager | flash_attention_2"})
    device: str = field(default="auto", metadata={"help": "auto (GPU if visible) | cpu | cuda | cuda:N"})


@dataclass
class SFTDataConfig:
    train: str = field(default="seed:train", metadata={"help": "training file (any format) or seed:train"})
    eval: str = field(default="seed:test", metadata={"help": "held-out file for eval loss ('' = none)"})


@dataclass
class SFTRunConfig:
    output_dir: str = field(default="", metadata={"help": "run directory ('' = runs/train-<time>)"})
    model: ModelConfig = field(default_factory=ModelConfig)
    data: SFTDataConfig = field(default_factory=SFTDataConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def fit_sft(model, tok, train: list[Example], adapter: AdapterConfig, cfg: TrainConfig, run_dir: Path,
            eval_examples: list[Example] = ()) -> tuple[object, TrainResult, dict]:
    """Encode, adapt, train, save to run_dir/adapter; returns (model, result, eval losses)."""
    enc_train, dropped = encode_examples(train, tok, cfg.max_length, cfg.mask)
    if dropped:
        print(f"      {dropped} examples dropped: no target token within max_length", flush=True)
    eval_batches = []
    if eval_examples:
        enc_eval, _ = encode_examples(list(eval_examples), tok, cfg.max_length, cfg.mask)
        eval_batches = [collate(enc_eval[i:i + 16], tok.pad_token_id) for i in range(0, len(enc_eval), 16)]
    losses = {"base": evaluate_loss(model, eval_batches, SFT, cfg.precision)} if eval_batches else {}
    model = apply_adapter(model, adapter)
    batches = batch_stream(enc_train, cfg.batch_size, tok.pad_token_id, cfg.seed,
                           pack_length=cfg.max_length if cfg.packing else 0)
    result = train_loop(model, batches, SFT, cfg, run_dir / "train_log.jsonl", checkpoint_dir=run_dir / "checkpoints")
    save_trained(model, tok, run_dir / "adapter")
    if eval_batches:
        losses["tuned"] = evaluate_loss(model, eval_batches, SFT, cfg.precision)
    return model, result, losses


def train_sft(cfg: SFTRunConfig) -> Path:
    """Run supervised fine-tuning and return the run directory."""
    run_dir = Path(cfg.output_dir or f"runs/train-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    train = load_examples(cfg.data.train)
    held_out = load_examples(cfg.data.eval) if cfg.data.eval else []
    model, tok = load_model(cfg.model.name, cfg.model.dtype, cfg.model.attn_implementation, cfg.model.device)
    _, result, losses = fit_sft(model, tok, train, cfg.adapter, cfg.train, run_dir, held_out)
    summary = {"model": cfg.model.name, "adapter": cfg.adapter.method, "steps": result.steps,
               "first_loss": result.losses[0], "final_loss": result.final_loss, "eval_loss": losses,
               "trainable_params": result.trainable_params, "total_params": result.total_params,
               "trainable_ratio": result.trainable_params / result.total_params,
               "train_seconds": result.seconds, "tokens_per_s": result.tokens / max(result.seconds, 1e-9)}
    (run_dir / "train_summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(f"Trained {result.trainable_params:,} of {result.total_params:,} parameters "
          f"({100 * summary['trainable_ratio']:.2f}%); loss {result.losses[0]:.3f} → {result.final_loss:.3f}. "
          f"Run: {run_dir}", flush=True)
    return run_dir


def inspect_examples(examples: list[Example], tokenizer, mask: str = "assistant", max_length: int = 1024) -> str:
    """Render examples as the model sees them, target text between «guillemets», with counts."""
    out = []
    for ex in examples:
        text, spans = target_spans(ex, tokenizer, mask)
        marked, last = [], 0
        for a, b in spans:
            marked += [text[last:a], "«", text[a:b], "»"]
            last = b
        marked.append(text[last:])
        enc, _ = encode_examples([ex], tokenizer, max_length, mask)
        out.append(f"── {ex.id or 'example'}: {len(enc[0].input_ids)} tokens, {enc[0].n_targets} targets "
                   f"(mask={mask})\n{''.join(marked)}")
    return "\n".join(out)
