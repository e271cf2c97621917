"""Checkpoints for exact resume: trainable tensors (safetensors), optimizer, scheduler, RNG, and
the loop's counters. Nothing is pickled: tensors (parameters, optimizer moments, the torch RNG)
go to safetensors, everything else (optimizer hyper-parameters, scheduler, Python and NumPy RNG,
counters) to JSON — a checkpoint planted in a run directory cannot run code when training resumes.
A checkpoint with a pickle (`state.pt`, written by tuneforge before 2026-12) is refused. Only trainable
parameters are stored — a LoRA checkpoint is megabytes, not a copy of the frozen base. Parameters and
optimizer state are taken by parameter name through torch's `distributed.checkpoint.state_dict`
API (`sharding.trainable_state`), so the same files serve one process, DDP and FSDP: a sharded run
gathers them on the main process, and each process takes its shard back on resume. Data order needs no state: the batch stream is a pure function of the
seed, so resuming replays it and skips the micro-batches already consumed.

Written by hand rather than with `accelerator.save_state`, which stores the whole state dict
(frozen base weights included) at every checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from tuneforge.errors import TuneforgeError
from tuneforge.files import write_text_atomic
from tuneforge.train.sharding import load_trainable_state, trainable_state

FORMAT = 2  # 2: parameters and optimizer state keyed by parameter name (1: optimizer state by position)


def _split(obj, prefix: str, tensors: dict):
    """obj with every tensor replaced by {"__tensor__": key}, the tensors collected in `tensors`."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().contiguous().cpu()
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        return {
            "__dict__": [
                [_split(k, f"{prefix}.k{i}", tensors), _split(v, f"{prefix}.{i}", tensors)]
                for i, (k, v) in enumerate(obj.items())
            ]
        }
    if isinstance(obj, (list, tuple)):
        return {
            "__tuple__" if isinstance(obj, tuple) else "__list__": [
                _split(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)
            ]
        }
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    raise TuneforgeError(
        f"cannot store a {type(obj).__name__} in a checkpoint (only tensors, numbers, strings, lists and dicts)"
    )


def _join(obj, tensors: dict):
    """Inverse of `_split`."""
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {_join(k, tensors): _join(v, tensors) for k, v in obj["__dict__"]}
        if "__tuple__" in obj:
            return tuple(_join(v, tensors) for v in obj["__tuple__"])
        if "__list__" in obj:
            return [_join(v, tensors) for v in obj["__list__"]]
        if "__ndarray__" in obj:
            return np.array(obj["__ndarray__"], dtype=obj["dtype"])
    return obj


def save_checkpoint(directory: Path, model, optimizer, scheduler, counters: dict, write: bool = True) -> Path:
    """Write checkpoint-<step>/ atomically and point `latest` at it. Every process calls it (the
    state is gathered across processes under FSDP); only the one with `write` writes."""
    directory = Path(directory)
    final = directory / f"checkpoint-{counters['step']}"
    trainable, optim_state = trainable_state(model, optimizer)
    if not write:
        return final
    tmp = directory / f".tmp-checkpoint-{counters['step']}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({n: t.contiguous() for n, t in trainable.items()}, tmp / "trainable.safetensors")
    tensors: dict = {}
    state = _split(
        {
            "format": FORMAT,
            "optimizer": optim_state,
            "scheduler": scheduler.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()},
        },
        "s",
        tensors,
    )
    save_file(tensors, tmp / "state.safetensors")
    (tmp / "state.json").write_text(json.dumps(state), encoding="utf-8")
    (tmp / "counters.json").write_text(json.dumps(counters), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    # atomically: a run cancelled mid-write (tuneforge ui's cancel) once left an empty pointer, and resume failed
    write_text_atomic(directory / "latest", final.name)
    return final


def latest_checkpoint(directory: Path) -> Path | None:
    pointer = Path(directory) / "latest"
    return Path(directory) / pointer.read_text().strip() if pointer.exists() else None


def load_checkpoint(path: Path, model, optimizer, scheduler) -> dict:
    """Restore a checkpoint into the (already built) model, optimizer and scheduler; return counters."""
    path = Path(path)
    if not (path / "state.json").exists():
        found = (
            "a pickle (state.pt), which could run code when loaded" if (path / "state.pt").exists() else "no state.json"
        )
        raise TuneforgeError(
            f"checkpoint {path} holds {found}; it is not loaded. Start a new output_dir, or set "
            "train.resume=false to train from scratch in this one"
        )
    tensors = load_file(path / "trainable.safetensors")
    params = dict(model.named_parameters())
    missing = [n for n in tensors if n not in params]
    if missing:
        raise TuneforgeError(
            f"checkpoint {path} does not match this model (first unknown tensor: {missing[0]}). "
            "Resume with the same model and adapter config, or start a new output_dir"
        )
    state = _join(json.loads((path / "state.json").read_text(encoding="utf-8")), load_file(path / "state.safetensors"))
    if state.get("format") != FORMAT:
        raise TuneforgeError(
            f"checkpoint {path} was written by an older tuneforge (optimizer state by position, not by "
            "parameter name). Start a new output_dir, or set train.resume=false to train from scratch in this one"
        )
    load_trainable_state(model, tensors, optimizer, state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    random.setstate(state["rng"]["python"])
    np.random.set_state(state["rng"]["numpy"])
    return json.loads((Path(path) / "counters.json").read_text())
