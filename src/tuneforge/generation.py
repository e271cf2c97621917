"""Batched, resumable generation with a local transformers model.

Prompts are sorted by length so each left-padded batch wastes little compute; decoding on a
CPU is memory-bound, so large batches cost little more per step than small ones. Each finished
batch is appended to the output JSONL and fsynced, and a rerun skips ids already written with
the same settings, so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import StoppingCriteria, StoppingCriteriaList

from tuneforge.chat_template import render_chat, stop_token_ids
from tuneforge.config import SEED
from tuneforge.errors import ConfigError, DataError
from tuneforge.fingerprint import model_digest
from tuneforge.hardware import announce_precision
from tuneforge.records import EvalItem, Generation


@dataclass
class GenerationConfig:
    max_new_tokens: int = field(default=128, metadata={"help": "new tokens per answer", "ge": 1})
    batch_size: int = field(default=32, metadata={"help": "prompts per generate() call", "ge": 1})
    do_sample: bool = field(default=False, metadata={"help": "sample instead of greedy decoding"})
    temperature: float = field(default=0.7, metadata={"help": "sampling temperature", "gt": 0})
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling mass", "gt": 0, "le": 1})
    seed: int = field(default=0, metadata={"help": "sampling seed", **SEED})

    def __post_init__(self):
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ConfigError("max_new_tokens and batch_size must be ≥ 1")
        if not self.temperature > 0:
            raise ConfigError(
                f"generation.temperature must be > 0, got {self.temperature} (greedy decoding is do_sample=false)"
            )
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"generation.top_p must be in (0, 1], got {self.top_p}")


def _read_done(path: Path, settings: dict) -> dict[str, Generation]:
    """Stored answers made with exactly `settings`; says how many others there are and why."""
    done: dict[str, Generation] = {}
    other: Counter[str] = Counter()
    if not path.exists():
        return done
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                g = Generation.from_dict(json.loads(line))
            except (json.JSONDecodeError, DataError) as exc:
                raise DataError(
                    f"cannot resume from a damaged generations file: {exc}. Delete or repair the line",
                    path=str(path),
                    line=lineno,
                ) from None
            if g.settings == settings:
                done[g.id] = g
            else:
                other.update(k for k in set(g.settings) | set(settings) if g.settings.get(k) != settings.get(k))
    if other:
        print(
            f"tuneforge: {path} holds answers made with other settings (differing: "
            f"{', '.join(f'{k} ×{n}' for k, n in other.most_common())}); they are not reused, the items "
            "are answered again",
            file=sys.stderr,
            flush=True,
        )
    return done


def generate_answers(
    model,
    tokenizer,
    items: list[EvalItem],
    cfg: GenerationConfig,
    model_name: str,
    out_path: str | Path | None = None,
    desc: str = "generate",
) -> list[Generation]:
    """Answer every item; returns Generations in the order of `items`. Each answer's `meta` gets
    `new_tokens` (decoded tokens, the stop token included) and `hit_max_tokens`."""
    # What produced an answer is part of its settings: the decoding settings, the weights' digest
    # (another model, or a retrained one under the same name, answers differently) and their dtype
    # (bf16 and fp32 round differently). A stored answer is reused only on an exact match.
    settings = {k: v for k, v in asdict(cfg).items() if k != "batch_size"} | {
        "dtype": str(getattr(model, "dtype", "")).removeprefix("torch."),
        "model_digest": model_digest(model),
    }
    context = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if isinstance(context, int) and cfg.max_new_tokens >= context:  # past it a model only runs on, slower and slower
        raise ConfigError(
            f"generation.max_new_tokens={cfg.max_new_tokens} is not below the model's context of {context} "
            f"positions (prompt included). Give at most {context // 2}"
        )
    ids, path, done, todo = _resume(items, settings, out_path)
    world = _world()  # under `accelerate launch` / torchrun: each process answers every N-th item
    if world.num_processes > 1:
        todo = todo[world.process_index :: world.num_processes]
        print(f"tuneforge: process {world.process_index + 1} of {world.num_processes} answers {len(todo)} items",
              file=sys.stderr, flush=True)  # fmt: skip
        shard = path.with_name(f"{path.name}.rank{world.process_index}") if path else None
        if shard is not None and shard.exists():  # a killed run's answers of this process
            todo = [it for it in todo if it.id not in _read_done(shard, settings)]
    else:
        shard = path
    prompts = {
        it.id: render_chat(tokenizer, it.messages, it.tools, add_generation_prompt=True)  # tools, calls, results
        for it in todo
    }
    todo.sort(key=lambda it: -len(prompts[it.id]))
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    model.eval()
    torch.manual_seed(cfg.seed)
    bar = tqdm(total=len(items), initial=len(items) - len(todo), desc=desc, unit="answer")
    try:
        for s in range(0, len(todo), cfg.batch_size):
            batch = todo[s : s + cfg.batch_size]
            texts, counts = generate_batch(
                model,
                tokenizer,
                [prompts[it.id] for it in batch],
                cfg.max_new_tokens,
                sampling=_sampling_kwargs(cfg),
                bar=bar,
            )
            rows = [
                _answer(it, t, model_name, settings, {"new_tokens": n, "hit_max_tokens": n >= cfg.max_new_tokens})
                for it, t, n in zip(batch, texts, counts)
            ]
            _keep(rows, done, shard)
    finally:
        tokenizer.padding_side = side
        bar.close()
    if world.num_processes > 1:
        done = _gather(world, path, settings, done, ids)
    return [done[i] for i in ids]


def _world():
    """The process group this generation runs in (one process unless launched distributed)."""
    from tuneforge.hardware import distributed_state

    return distributed_state()


def _gather(world, path: Path | None, settings: dict, done: dict[str, Generation], ids: list[str]):
    """Data-parallel generation's merge: the main process appends every process's answers to the one
    answer file in item order and removes the shard files; then every process reads the whole file."""
    if path is None:
        raise ConfigError("data-parallel generation needs an answer file (out_path) to gather the answers in")
    world.wait_for_everyone()
    if world.is_main_process:
        existing = _read_done(path, settings)
        shards = sorted(path.parent.glob(f"{path.name}.rank*"))
        answered = {k: v for f in shards for k, v in _read_done(f, settings).items()}
        new = [answered[i] for i in ids if i in answered and i not in existing]
        _keep(new, {}, path)
        for f in shards:
            f.unlink()
    world.wait_for_everyone()
    done = _read_done(path, settings)
    missing = [i for i in ids if i not in done]
    if missing:
        raise DataError(f"{len(missing)} items have no answer after gathering the processes' answers", path=str(path))
    return done


def _resume(
    items: list[EvalItem], settings: dict, out_path: str | Path | None
) -> tuple[list[str], Path | None, dict[str, Generation], list[EvalItem]]:
    """(item ids, answer file, answers already there made with exactly `settings`, items to answer)."""
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids) or any(not i for i in ids):
        raise DataError("every eval item needs a unique, non-empty id to generate resumably")
    path = Path(out_path) if out_path else None
    done = _read_done(path, settings) if path else {}
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
    return ids, path, done, [it for it in items if it.id not in done]


def _answer(item: EvalItem, text: str, model_name: str, settings: dict, meta: dict | None = None) -> Generation:
    return Generation(
        id=item.id,
        prompt=item.messages,
        generation=text,
        references=item.references,
        model=model_name,
        domain=item.domain,
        task=item.task,
        settings=settings,
        meta=dict(item.meta) | (meta or {}),
        tools=item.tools,
        reference_tool_calls=item.reference_tool_calls,
    )


def _keep(rows: list[Generation], done: dict[str, Generation], path: Path | None) -> None:
    """Record finished answers, appended to the answer file (fsync'd: a killed run loses at most
    the batch in flight)."""
    for g in rows:
        done[g.id] = g
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.writelines(json.dumps(g.to_dict(), ensure_ascii=False) + "\n" for g in rows)
            f.flush()
            os.fsync(f.fileno())


def answer_with_llm(
    llm,
    items: list[EvalItem],
    cfg: GenerationConfig,
    model_name: str,
    out_path: str | Path | None = None,
    desc: str = "generate",
    identity: str = "",
) -> list[Generation]:
    """`generate_answers` for a model behind an LLM client — a served model on an OpenAI-compatible
    endpoint (vLLM, SGLang, llama.cpp's server, Ollama): the same resumable answer file, keyed by the
    decoding settings and `identity` (what names the served weights: the client has no digest of
    them, so a server restarted on other weights under the same name must be given another
    identity). The client brings bounded concurrency and retries; wrap it in `CachedLLM` for a
    request cache. Answers are requested `cfg.batch_size` at a time, so a kill loses at most one batch."""
    from tuneforge.llm.client import Sampling, chat_with_tools

    settings = {k: v for k, v in asdict(cfg).items() if k != "batch_size"} | {"served": identity or llm.name}
    ids, path, done, todo = _resume(items, settings, out_path)
    sampling = Sampling(
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature if cfg.do_sample else 0.0,
        top_p=cfg.top_p if cfg.do_sample else 1.0,
        seed=cfg.seed,
    )
    bar = tqdm(total=len(items), initial=len(items) - len(todo), desc=desc, unit="answer")
    try:
        for s in range(0, len(todo), cfg.batch_size):
            batch = todo[s : s + cfg.batch_size]
            # each item's tools go with its request (`tools=`); calls come back as <tool_call> text
            replies = chat_with_tools(
                llm, [[m.to_openai() for m in it.messages] for it in batch], [it.tools for it in batch], sampling
            )
            rows = [_answer(it, reply[0].strip(), model_name, settings) for it, reply in zip(batch, replies)]
            _keep(rows, done, path)
            bar.update(len(batch))
    finally:
        bar.close()
    return [done[i] for i in ids]


def _sampling_kwargs(cfg: GenerationConfig) -> dict:
    if cfg.do_sample:
        return dict(do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p)
    return dict(do_sample=False, temperature=None, top_p=None, top_k=None)


class _Progress(StoppingCriteria):
    """Moves a tqdm bar (counting sequences) as the sequences of a batch finish, not only when the
    whole batch is done, and shows the decoding rate. It never stops generation itself."""

    def __init__(self, bar, stop_ids: list[int], rows: int):
        self.bar, self.stop, self.finished = bar, torch.tensor(stop_ids), torch.zeros(rows, dtype=torch.bool)
        self.tokens, self.start = 0, time.perf_counter()

    def __call__(self, input_ids, scores, **kwargs) -> torch.Tensor:
        newly = torch.isin(input_ids[:, -1].cpu(), self.stop) & ~self.finished  # (rows,)
        self.tokens += int((~self.finished).sum())
        self.finished |= newly
        if self.bar is not None:
            rate = self.tokens / max(time.perf_counter() - self.start, 1e-9)
            self.bar.set_postfix(tok_s=f"{rate:.0f}", refresh=False)
            self.bar.update(int(newly.sum()))
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    def close(self) -> None:
        """Count the rows that ran to max_new_tokens."""
        if self.bar is not None:
            self.bar.update(int((~self.finished).sum()))


@torch.inference_mode()
def generate_batch(
    model,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int,
    sampling: dict | None = None,
    n: int = 1,
    stop_strings: list[str] | None = None,
    bar=None,
    **extra,
) -> tuple[list[str], list[int]]:
    """Decode one left-padded batch: (answers, new-token counts), n answers per prompt in a row;
    `bar` (a tqdm counting sequences) moves as each sequence finishes.

    The one place tuneforge calls `model.generate`: eval answers, the local LLM client (synthesis,
    judges, reflection), safety and multi-task all decode here, with in-batch progress on `bar`.
    """
    announce_precision(model.device.type)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    enc = {k: v.to(model.device) for k, v in enc.items()}
    stops = stop_token_ids(tokenizer, model)
    progress = _Progress(bar, stops, len(prompts) * n)
    kwargs = dict(
        max_new_tokens=max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=stops,
        num_return_sequences=n,
        stopping_criteria=StoppingCriteriaList([progress]),
        **(sampling or {}),
        **extra,
    )
    if stop_strings:
        kwargs.update(stop_strings=stop_strings, tokenizer=tokenizer)
    out = model.generate(**enc, **kwargs)  # (B·n, prompt + new)
    new = out[:, enc["input_ids"].shape[1] :]
    progress.close()
    is_stop = torch.isin(new, torch.tensor(stops, device=new.device))
    # tokens up to and including the first stop token (all of them when none was reached)
    first_stop = torch.where(is_stop.any(1), is_stop.int().argmax(1) + 1, torch.full_like(new[:, 0], new.shape[1]))
    texts = [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
    return texts, first_stop.tolist()
