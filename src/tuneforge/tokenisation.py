"""Tokenisation for training and scoring: conversations → token ids and target labels, padded
batches, packed rows and the seeded batch stream. Every stage that turns records into model input
(training objectives, IFD scoring, multi-task) uses this one path.

Encoding renders each conversation with the tokenizer's chat template and marks as targets the
characters each assistant turn adds (its content and end-of-turn token). Token labels follow from
the tokenizer's offset mapping, so this works for any template whose renderings of successive
prefixes extend one another; a template that does not is rejected loudly rather than mis-masked.

Packing concatenates examples into rows of up to `max_length` tokens with position ids restarting
at 0 for each example and no attention mask: transformers then builds a block-diagonal causal mask
(eager/SDPA) or uses the varlen path (flash-attention), so examples in a row never see each other.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from tuneforge.chat_template import render_chat
from tuneforge.errors import ConfigError, DataError, TuneforgeError, UnknownNameError, suggest
from tuneforge.records import Example

IGNORE = -100
MASKS = ("assistant", "last", "all")
REASONING = ("train", "mask", "drop")  # what a reasoning trace in an assistant turn becomes


@dataclass
class Encoded:
    """One tokenised example (or a packed row): ids and labels (IGNORE where not a target);
    `position_ids` is set for packed rows only."""

    input_ids: list[int]
    labels: list[int]
    id: str = ""
    position_ids: list[int] | None = None

    @property
    def n_targets(self) -> int:
        return sum(1 for x in self.labels[1:] if x != IGNORE)


def target_spans(
    example: Example, tokenizer, mask: str = "assistant", reasoning: str = "train"
) -> tuple[str, list[tuple[int, int]]]:
    """Render an example and return (text, [(start, end) character spans that are targets]).

    Assistant turns are targets — their words, their tool calls (the call text the template writes)
    and their end-of-turn token; tool results and the tool definitions are context. A reasoning
    trace is a target (`reasoning=train`), rendered but not a target (`mask`), or left out (`drop`)."""
    if mask not in MASKS:
        raise UnknownNameError(f"unknown mask '{mask}'.{suggest(mask, MASKS)} Available: {', '.join(MASKS)}")
    if reasoning not in REASONING:
        raise UnknownNameError(
            f"unknown train.reasoning '{reasoning}'.{suggest(reasoning, REASONING)} Available: {', '.join(REASONING)}"
        )
    messages = example.messages
    if reasoning == "drop":
        messages = [dataclasses.replace(m, reasoning="") for m in messages]
    text = render_chat(tokenizer, messages, example.tools)
    if mask == "all":
        return text, [(0, len(text))]
    spans = []
    for i, m in enumerate(messages):
        if m.role != "assistant":
            continue
        before = render_chat(tokenizer, messages[:i], example.tools, add_generation_prompt=True) if i else ""
        upto = render_chat(tokenizer, messages[: i + 1], example.tools)
        if not (upto.startswith(before) and text.startswith(upto)):
            raise TuneforgeError(
                f"the chat template of {getattr(tokenizer, 'name_or_path', 'this tokenizer')} renders "
                "a conversation prefix differently from the whole conversation, so assistant "
                "tokens cannot be located. Use train.mask=all or a tokenizer with a standard template"
            )
        end = len(upto.rstrip())  # the turn's content and end token, not the newline after it
        turn = [(len(before), end)]
        if reasoning == "mask" and m.reasoning:
            turn = _without_trace(text, len(before), end, m.reasoning)
        spans.append(turn)
    spans = spans[-1:] if mask == "last" else spans
    return text, [s for turn in spans for s in turn]


def _without_trace(text: str, start: int, end: int, trace: str) -> list[tuple[int, int]]:
    """The spans of text[start:end] around its reasoning trace (with the <think> tags around it and
    the blank after them, when the template writes them)."""
    at = text.find(trace, start, end)
    if at < 0:
        raise TuneforgeError(
            "the chat template does not write this turn's reasoning trace as given, so it cannot be masked. "
            "Use train.reasoning=drop or train"
        )
    a, b = at, at + len(trace)
    open_at = text.rfind("<think>", start, a)
    if open_at >= 0 and not text[open_at + len("<think>") : a].strip():
        a = open_at
    close_at = text.find("</think>", b, end)
    if close_at >= 0 and not text[b:close_at].strip():
        b = close_at + len("</think>")
    while b < end and text[b] in " \n":
        b += 1
    return [(s, e) for s, e in ((start, a), (b, end)) if e > s]


def encode_example(
    example: Example, tokenizer, max_length: int = 1024, mask: str = "assistant", reasoning: str = "train"
) -> Encoded:
    """Tokenise one example with target labels (truncated on the right to `max_length`)."""
    text, spans = target_spans(example, tokenizer, mask, reasoning)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=True, max_length=max_length)
    labels = []
    for tok_id, (start, _end) in zip(enc["input_ids"], enc["offset_mapping"]):
        inside = any(a <= start < b for a, b in spans)
        labels.append(tok_id if inside else IGNORE)
    return Encoded(list(enc["input_ids"]), labels, example.id)


def encode_examples(
    examples: list[Example],
    tokenizer,
    max_length: int = 1024,
    mask: str = "assistant",
    reasoning: str = "train",
    kept: list[int] | None = None,
) -> tuple[list[Encoded], int]:
    """Encode many examples; drop (and count) those whose targets were truncated away. `kept`, when
    given, receives the position in `examples` of each encoded one (to align per-example scores)."""
    from jinja2 import TemplateError

    out, dropped = [], 0
    for i, ex in enumerate(examples):
        try:
            enc = encode_example(ex, tokenizer, max_length, mask, reasoning)
        except TemplateError as exc:  # the template's own raise_exception() on this conversation
            raise DataError(
                f"example {i + 1} (id {ex.id or '-'}, source {ex.source or '-'}): the chat template refuses it: {exc}. "
                "Change the example or model.chat_template",
                field="messages",
            ) from None
        if enc.n_targets == 0:
            dropped += 1
            continue
        out.append(enc)
        if kept is not None:
            kept.append(i)
    if not out:
        raise DataError(
            f"no example has a target token left after truncation to max_length="
            f"{max_length} ({dropped} dropped). Raise train.max_length"
        )
    return out, dropped


def pack_examples(encoded: list[Encoded], max_length: int) -> list[Encoded]:
    """Pack examples into rows of at most `max_length` tokens (first-fit decreasing)."""
    rows: list[list[Encoded]] = []
    space: list[int] = []
    for e in sorted(encoded, key=lambda e: -len(e.input_ids)):
        n = len(e.input_ids)
        k = next((i for i, free in enumerate(space) if free >= n), None)
        if k is None:
            rows.append([])
            space.append(max_length)
            k = len(rows) - 1
        rows[k].append(e)
        space[k] -= n
    packed = []
    for row in rows:
        ids, labels, pos = [], [], []
        for e in row:
            ids += e.input_ids
            labels += [IGNORE] + e.labels[1:]  # a segment's first token is never predicted from the previous one
            pos += list(range(len(e.input_ids)))
        packed.append(Encoded(ids, labels, "+".join(e.id for e in row), pos))
    return packed


def collate(batch: list[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch to (B, T): input_ids, labels, num_tokens (real tokens), and either
    attention_mask (plain rows) or position_ids (packed rows; padding forms its own segment)."""
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    packed = batch[0].position_ids is not None
    extra = torch.zeros((len(batch), width), dtype=torch.long)
    for i, e in enumerate(batch):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        if packed:
            extra[i, :n] = torch.tensor(e.position_ids)
            extra[i, n:] = torch.arange(width - n)
        else:
            extra[i, :n] = 1
    out = {"input_ids": ids, "labels": labels, "num_tokens": torch.tensor(sum(len(e.input_ids) for e in batch))}
    out["position_ids" if packed else "attention_mask"] = extra
    return out


def model_inputs(batch: dict) -> dict:
    """The forward() arguments of a collated batch (no KV cache: it would disable packing)."""
    keys = ("input_ids", "attention_mask", "position_ids")
    return {**{k: batch[k] for k in keys if k in batch}, "use_cache": False}


def length_grouped_batches(encoded: list[Encoded], batch_size: int, seed: int, epoch: int) -> list[list[Encoded]]:
    """Shuffle, then sort within mega-batches of 16 batches by length to cut padding (like
    transformers' group_by_length), then shuffle the batch order."""
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(encoded)))
    rng.shuffle(order)
    mega = batch_size * 16
    batches = []
    for s in range(0, len(order), mega):
        chunk = sorted(order[s : s + mega], key=lambda i: -len(encoded[i].input_ids))
        batches += [[encoded[i] for i in chunk[b : b + batch_size]] for b in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def batch_stream(
    encoded: list[Encoded],
    batch_size: int,
    pad_id: int,
    seed: int = 0,
    pack_length: int = 0,
    num_shards: int = 1,
    shard: int = 0,
) -> Iterator[dict]:
    """Endless collated micro-batches, reshuffled every epoch. With `pack_length`, examples are
    packed into rows of that many tokens each epoch and `batch_size` counts rows. With
    `num_shards` > 1 (data-parallel processes), this shard yields every num_shards-th batch of the
    same global order, so the processes together see each batch once."""
    if not 0 <= shard < num_shards:
        raise ConfigError(f"shard {shard} is outside 0..{num_shards - 1}")
    index = 0
    for b in _global_batches(encoded, batch_size, seed, pack_length):
        if index % num_shards == shard:  # collate only this shard's batches
            yield collate(b, pad_id)
        index += 1


def _global_batches(encoded: list[Encoded], batch_size: int, seed: int, pack_length: int) -> Iterator[list[Encoded]]:
    epoch = 0
    while True:
        rows = encoded
        if pack_length:
            order = list(encoded)
            random.Random(seed * 100_003 + epoch).shuffle(order)
            rows = pack_examples(order, pack_length)
        yield from length_grouped_batches(rows, batch_size, seed, epoch)
        epoch += 1


def count_targets_per_row(batch: dict) -> torch.Tensor:
    """(B,) target tokens per batch row."""
    return (batch["labels"][:, 1:] != IGNORE).sum(1)


def count_targets(batch: dict) -> int:
    """Number of target tokens in a batch (labels are shifted by one inside the loss)."""
    return int((batch["labels"][:, 1:] != IGNORE).sum())
