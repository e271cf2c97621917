"""The runs under a folder as the web app lists them: what each is, its status, how far it got and
when it will finish — read from the files every run writes (`.tuneforge-output.json`, `.incomplete`,
config.yaml, train_log.jsonl, train_summary.json, metrics.json), so a run started from the CLI and
one started from the page look the same."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from tuneforge.files import MARKER, STAMP, marker_state

STATUSES = ("running", "finished", "failed", "cancelled", "incomplete")


@dataclass
class RunInfo:
    name: str
    path: Path
    verb: str
    status: str  # one of STATUSES
    detail: str = ""  # why it failed, or that it can resume
    step: int = 0
    steps: int = 0
    eta_s: float | None = None
    started: float = 0.0
    stage: str = ""  # a run of several stages (the demo): "3/6 lora fine-tuning, 240 steps"
    labels: list[str] = field(default_factory=list)  # models of an evaluated run (metrics.json)
    report: bool = False

    @property
    def progress(self) -> str:
        return f"{self.step}/{self.steps}" if self.steps else ""

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "verb": self.verb,
            "status": self.status,
            "detail": self.detail,
            "step": self.step,
            "steps": self.steps,
            "eta_s": self.eta_s,
            "started": self.started,
            "stage": self.stage,
            "labels": self.labels,
            "report": self.report,
        }


def read_log(run: Path) -> list[dict]:
    """The rows of RUN/train_log.jsonl written so far (a half-written last line is left for later)."""
    path = run / "train_log.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


def _planned_steps(run: Path) -> int:
    import yaml

    try:
        cfg = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) or {}
        return int((cfg.get("train") or {}).get("steps") or 0)
    except (OSError, ValueError, TypeError, AttributeError, yaml.YAMLError):
        return 0


def run_info(run: Path) -> RunInfo | None:
    """What the app shows of one run folder; None for a folder tuneforge did not write."""
    try:
        stamp = json.loads((run / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    verb = str(stamp.get("verb", "?"))
    state = marker_state(run)
    if state is None:
        status, detail = "finished", ""
    elif state.get("stopped"):
        stopped = state["stopped"]
        status = "cancelled" if stopped.startswith("KeyboardInterrupt") else "failed"
        detail = stopped
    elif state.get("pid") and _alive(int(state["pid"])) and state.get("host") == os.uname().nodename:
        status, detail = "running", ""
    else:
        status, detail = "incomplete", "stopped without finishing (killed?); rerun its command to resume"
    info = RunInfo(run.name, run, verb, status, detail, started=(run / STAMP).stat().st_mtime)
    try:
        stage = json.loads((run / "stage.json").read_text(encoding="utf-8"))
        info.stage = f"{int(stage['stage'])}/{int(stage['of'])} {stage['text']}" if status != "finished" else ""
    except (OSError, ValueError, KeyError, TypeError):
        pass
    rows = [r for r in read_log(run) if "loss" in r]
    info.steps = _planned_steps(run)
    if rows:
        info.step = int(rows[-1]["step"])
        elapsed = float(rows[-1].get("elapsed_s", 0.0))
        if status == "running" and info.steps and info.step < info.steps and elapsed > 0:
            info.eta_s = elapsed / info.step * (info.steps - info.step)
    if (run / "metrics.json").exists() and status == "finished":
        try:
            info.labels = list(json.loads((run / "metrics.json").read_text(encoding="utf-8")).get("models", {}))
        except ValueError:
            pass
    info.report = (run / "report.html").exists() and status == "finished"
    return info


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_runs(root: Path) -> list[RunInfo]:
    """Every run folder directly under `root`, newest first."""
    if not root.is_dir():
        return []
    found = [i for d in root.iterdir() if d.is_dir() and (i := run_info(d)) is not None]
    return sorted(found, key=lambda i: -i.started)


def fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return time.strftime("%M:%S", time.gmtime(seconds)) if seconds < 3600 else f"{seconds / 3600:.1f} h"


__all__ = ["MARKER", "RunInfo", "list_runs", "read_log", "run_info", "fmt_eta", "STATUSES"]
