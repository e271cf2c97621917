"""What a training run's result depends on, and the check that a run directory may be resumed:
its checkpoints and adapter must come from the same resolved config and the same data bytes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tuneforge.config import config_to_dict
from tuneforge.data.hub import HUB_PREFIX, hub_digest
from tuneforge.data.seed import load_examples, load_pairs, split_rows
from tuneforge.errors import ConfigError, read_text

# Keys that change how a run is watched, not what it computes: they may differ on a resume.
_RESUME_FREE = {"output_dir", "train.resume", "train.log_every", "train.report_to", "train.checkpoint_every"}


def _flatten(d: dict, prefix: str = "") -> dict:
    out: dict = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def run_fingerprint(cfg) -> dict:
    """What a training run's result depends on: its resolved config (a TrainRunConfig) and a digest
    of every data source it reads (file contents, or the shipped seed data)."""
    specs = [
        *([cfg.data.train] if isinstance(cfg.data.train, str) else cfg.data.train),
        cfg.data.eval,
        *cfg.objective.data_sources(),
    ]
    return {
        "config": {k: v for k, v in _flatten(config_to_dict(cfg)).items() if k not in _RESUME_FREE},
        "data": {spec: data_digest(spec) for spec in specs if spec},
    }


def data_digest(spec: str) -> str:
    """SHA-256 of a data file's bytes, of the shipped seed data a `seed:` spec names, or of the rows
    of an `hf:` dataset."""
    if spec.startswith("seed:"):
        rows = load_pairs(spec) if spec.startswith("seed:preferences") else load_examples(spec)
        blob = json.dumps([r.to_dict() for r in rows], sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()
    if spec.startswith(HUB_PREFIX):
        return hub_digest(spec)
    path = Path(split_rows(spec)[0])  # FILE[a:b]: the rows are in the spec, the bytes in the file
    if not path.exists():
        raise ConfigError(f"data file not found: {spec}. Check data.train / data.eval / objective.general")
    return hashlib.sha256(read_text(path, "data file").encode("utf-8")).hexdigest()  # bounded, regular files only


def check_resumable(run_dir: Path, fingerprint: dict) -> None:
    """Refuse to continue a run directory whose checkpoints or adapter came from another config or
    other data: resuming would return the old model under the new config."""
    made = (run_dir / "checkpoints" / "latest").exists() or (run_dir / "adapter").exists()
    stored = run_dir / "run_fingerprint.json"
    if not made:
        return
    if not stored.exists():
        raise ConfigError(
            f"{run_dir} already holds a trained run with no record of what produced it, so it cannot "
            "be resumed safely. Use a new output_dir, or train.resume=false to train again in place"
        )
    old = json.loads(stored.read_text(encoding="utf-8"))
    diff = [
        f"{k}: {old['config'].get(k)!r} → {v!r}" for k, v in fingerprint["config"].items() if old["config"].get(k) != v
    ]
    diff += [f"{k} (removed)" for k in old["config"] if k not in fingerprint["config"]]
    diff += [f"data {k}: contents changed" for k, v in fingerprint["data"].items() if old["data"].get(k) != v]
    if diff:
        raise ConfigError(
            f"{run_dir} holds a run made with another config or data, so resuming it would return "
            f"that run's model: {'; '.join(diff)}. Use a new output_dir, or train.resume=false to "
            "train again in place"
        )
