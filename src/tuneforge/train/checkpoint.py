"""Checkpoints for exact resume: trainable tensors (safetensors), optimizer, scheduler, RNG, and
the loop's counters. Only trainable parameters are stored — a LoRA checkpoint is megabytes, not a
copy of the frozen base. Data order needs no state: the batch stream is a pure function of the
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


def save_checkpoint(directory: Path, model, optimizer, scheduler, counters: dict) -> Path:
    """Write checkpoint-<step>/ atomically and point `latest` at it."""
    directory = Path(directory)
    final = directory / f"checkpoint-{counters['step']}"
    tmp = directory / f".tmp-checkpoint-{counters['step']}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    trainable = {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}
    save_file(trainable, tmp / "trainable.safetensors")
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "rng": {"torch": torch.get_rng_state(), "python": random.getstate(),
                        "numpy": np.random.get_state()}}, tmp / "state.pt")
    (tmp / "counters.json").write_text(json.dumps(counters), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    (directory / "latest").write_text(final.name, encoding="utf-8")
    return final


def latest_checkpoint(directory: Path) -> Path | None:
    pointer = Path(directory) / "latest"
    return Path(directory) / pointer.read_text().strip() if pointer.exists() else None


def load_checkpoint(path: Path, model, optimizer, scheduler) -> dict:
    """Restore a checkpoint into the (already built) model, optimizer and scheduler; return counters."""
    tensors = load_file(Path(path) / "trainable.safetensors")
    params = dict(model.named_parameters())
    missing = [n for n in tensors if n not in params]
    if missing:
        raise TuneforgeError(f"checkpoint {path} does not match this model (first unknown tensor: {missing[0]}). "
                             "Resume with the same model and adapter config, or start a new output_dir")
    with torch.no_grad():
        for n, t in tensors.items():
            params[n].copy_(t)
    state = torch.load(Path(path) / "state.pt", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    random.setstate(state["rng"]["python"])
    np.random.set_state(state["rng"]["numpy"])
    return json.loads((Path(path) / "counters.json").read_text())
