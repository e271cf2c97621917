"""Batched, resumable generation with a local transformers model.

Prompts are sorted by length so each left-padded batch wastes little compute; decoding on a
CPU is memory-bound, so large batches cost little more per step than small ones. Each finished
batch is appended to the output JSONL and fsynced, and a rerun skips ids already written with
the same settings, so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from tuneforge.errors import ConfigError, DataError
from tuneforge.records import EvalItem, Generation
from tuneforge.train.chat_template import stop_token_ids


@dataclass
class GenerationConfig:
    max_new_tokens: int = field(default=128, metadata={"help": "new tokens per answer"})
    batch_size: int = field(default=32, metadata={"help": "prompts per generate() call"})
    do_sample: bool = field(default=False, metadata={"help": "sample instead of greedy decoding"})
    temperature: float = field(default=0.7, metadata={"help": "sampling temperature"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling mass"})
    seed: int = field(default=0, metadata={"help": "sampling seed"})

    def __post_init__(self):
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ConfigError("max_new_tokens and batch_size must be ≥ 1")


def _read_done(path: Path, settings: dict) -> dict[str, Generation]:
    done = {}
    if not path.exists():
        return done
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                g = Generation.from_dict(json.loads(line))
            except (json.JSONDecodeError, DataError) as exc:
                raise DataError(f"cannot resume from a damaged generations file: {exc}. Delete "
                                "or repair the line", path=str(path), line=lineno) from None
            if g.settings == settings:
                done[g.id] = g
    return done


def generate_answers(model, tokenizer, items: list[EvalItem], cfg: GenerationConfig,
                     model_name: str, out_path: str | Path | None = None,
                     desc: str = "generate") -> list[Generation]:
    """Answer every item; returns Generations in the order of `items`."""
    settings = {k: v for k, v in asdict(cfg).items() if k != "batch_size"}
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids) or any(not i for i in ids):
        raise DataError("every eval item needs a unique, non-empty id to generate resumably")
    path = Path(out_path) if out_path else None
    done = _read_done(path, settings) if path else {}
    todo = [it for it in items if it.id not in done]
    prompts = {it.id: tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in it.messages],
        tokenize=False, add_generation_prompt=True) for it in todo}
    todo.sort(key=lambda it: -len(prompts[it.id]))
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    model.eval()
    torch.manual_seed(cfg.seed)
    bar = tqdm(total=len(items), initial=len(items) - len(todo), desc=desc, unit="answer")
    try:
        for s in range(0, len(todo), cfg.batch_size):
            batch = todo[s:s + cfg.batch_size]
            texts = _generate_batch(model, tokenizer, [prompts[it.id] for it in batch], cfg)
            rows = [Generation(id=it.id, prompt=it.messages, generation=t, references=it.references,
                               model=model_name, domain=it.domain, task=it.task,
                               settings=settings, meta=dict(it.meta)) for it, t in zip(batch, texts)]
            for g in rows:
                done[g.id] = g
            if path:
                with open(path, "a", encoding="utf-8") as f:
                    f.writelines(json.dumps(g.to_dict(), ensure_ascii=False) + "\n" for g in rows)
                    f.flush()
                    os.fsync(f.fileno())
            bar.update(len(batch))
    finally:
        tokenizer.padding_side = side
        bar.close()
    return [done[i] for i in ids]


@torch.inference_mode()
def _generate_batch(model, tokenizer, prompts: list[str], cfg: GenerationConfig) -> list[str]:
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    enc = {k: v.to(model.device) for k, v in enc.items()}
    kwargs = dict(max_new_tokens=cfg.max_new_tokens, do_sample=cfg.do_sample,
                  pad_token_id=tokenizer.pad_token_id, eos_token_id=stop_token_ids(tokenizer, model))
    if cfg.do_sample:
        kwargs.update(temperature=cfg.temperature, top_p=cfg.top_p)
    out = model.generate(**enc, **kwargs)  # (B, prompt + new)
    new = out[:, enc["input_ids"].shape[1]:]
    return [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
