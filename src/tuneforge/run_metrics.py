"""The contract of a run directory's `metrics.json`: a typed, versioned record that every verb
writing results fills (`write_metrics`) and every reader — `report`, `report compare`,
`eval compare`, the CLI summaries — reads through (`read_metrics`), so a writer that drifts
fails its own test instead of a reader's page.

    metrics.json = {
      "schema_version": 1,
      "run":    {"name", "kind": demo | eval | safety | bench, …what the run was},
      "models": {label: {"n", "overall": {metric: {"score", "ci"?, …}}, "per_domain": {domain: {metric: …}}, …}},
      "comparison"?, "comparison_models"?: [a, b],   the paired comparison of the first two models
      "judge"?, "correlation"?,                        eval: LLM judge, metric–human correlation
      "safety"?,                                       safety: calibration, failures, judge
      "bench"?                                         lm-evaluation-harness results per model
      "compression"?                                   compress compare: size, speed and quality per variant
    }

Files written before the version existed (no `schema_version`) are read as version 1: the layout
is the same. A newer version, an unknown section or a model without scores is a DataError naming
the file.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneforge.errors import DataError
from tuneforge.files import write_text_atomic

SCHEMA_VERSION = 1
_SECTIONS = ("comparison", "comparison_models", "judge", "correlation", "safety", "bench", "compression")
RUN_KINDS = ("demo", "eval", "safety", "bench")


@dataclass
class ModelResult:
    """One model's scores: each metric overall and per domain (`score`, and `ci` where there is one)."""

    n: int  # items scored
    overall: dict[str, dict] = field(default_factory=dict)
    per_domain: dict[str, dict[str, dict]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # what a stage adds beside the scores

    def to_dict(self) -> dict:
        return {"n": self.n, "overall": self.overall, "per_domain": self.per_domain, **self.extra}


@dataclass
class RunMetrics:
    run: dict[str, Any]
    models: dict[str, ModelResult] = field(default_factory=dict)
    comparison: dict | None = None
    comparison_models: list[str] | None = None
    judge: dict | None = None
    correlation: dict | None = None
    safety: dict | None = None
    bench: dict | None = None
    compression: dict | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def kind(self) -> str:
        return self.run.get("kind", "demo")

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"schema_version": self.schema_version, "run": self.run}
        out["models"] = {k: m.to_dict() for k, m in self.models.items()}
        for f in _SECTIONS:
            if getattr(self, f) is not None:
                out[f] = getattr(self, f)
        return out

    @classmethod
    def from_dict(cls, data: Any, path: str = "metrics.json") -> RunMetrics:
        """Check `data` against the schema; every problem is a DataError naming `path`."""
        if not isinstance(data, dict):
            raise DataError(f"metrics must be a JSON object, got {type(data).__name__}", path=path)
        version = data.get("schema_version", 1)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise DataError(
                f"metrics schema_version {version!r} is newer than this tuneforge reads ({SCHEMA_VERSION}); "
                "upgrade tuneforge to read this run",
                path=path,
                field="schema_version",
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DataError(f"unknown sections {unknown} (known: {', '.join(sorted(known))})", path=path)
        run = data.get("run")
        if not isinstance(run, dict) or run.get("kind", "demo") not in RUN_KINDS:
            raise DataError(
                f"'run' must be an object whose kind is one of {', '.join(RUN_KINDS)}", path=path, field="run"
            )
        models = data.get("models") or {}
        if not isinstance(models, dict):
            raise DataError("'models' must be an object of label → scores", path=path, field="models")
        parsed = {}
        for label, m in models.items():
            if not isinstance(m, dict) or not isinstance(m.get("overall"), dict):
                raise DataError(f"model '{label}' has no 'overall' scores", path=path, field=f"models.{label}")
            if not isinstance(m.get("n"), int) or isinstance(m.get("n"), bool):
                raise DataError(f"model '{label}' has no item count 'n'", path=path, field=f"models.{label}.n")
            for metric, r in m["overall"].items():
                if not isinstance(r, dict) or not _number(r.get("score")):
                    raise DataError(
                        f"model '{label}' metric '{metric}' has no numeric score", path=path, field=f"models.{label}"
                    )
            rest = {k: v for k, v in m.items() if k not in ("n", "overall", "per_domain")}
            parsed[label] = ModelResult(m["n"], m["overall"], m.get("per_domain") or {}, rest)
        sections = {k: data.get(k) for k in _SECTIONS}
        return cls(run=run, models=parsed, schema_version=version, **sections)


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and (isinstance(x, int) or not math.isinf(x))


def _nan_safe(x: Any) -> float:
    return float(x)  # numpy scalars


def write_metrics(run_dir: str | Path, metrics: RunMetrics | dict) -> Path:
    """Check `metrics` against the schema and write run_dir/metrics.json atomically."""
    path = Path(run_dir) / "metrics.json"
    record = metrics if isinstance(metrics, RunMetrics) else RunMetrics.from_dict(metrics, str(path))
    write_text_atomic(path, json.dumps(record.to_dict(), indent=2, default=_nan_safe))
    return path


def read_metrics(run_dir: str | Path) -> RunMetrics:
    """A run directory's metrics.json, checked against the schema."""
    path = Path(run_dir) / "metrics.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"metrics.json is not valid JSON ({exc.msg})", path=str(path), line=exc.lineno) from None
    return RunMetrics.from_dict(data, str(path))
