"""Every script under benchmarks/ runs end to end in its --smoke mode (issue 30): a renamed module
can no longer leave a benchmark that crashes while the README quotes its figures. The smoke runs
write their JSON to a temporary folder, never over benchmarks/results/."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py"))
pytestmark = pytest.mark.slow


def test_every_benchmark_has_a_smoke_mode():
    assert SCRIPTS and all("--smoke" in (ROOT / "benchmarks" / s).read_text() for s in SCRIPTS)


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s != "gpu_check.py"])  # test_gpu_check.py runs that one
def test_a_benchmark_runs_in_smoke_mode_and_writes_its_json_elsewhere(script):
    results = {p: p.stat().st_mtime_ns for p in (ROOT / "benchmarks" / "results").glob("*.json")}
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--smoke"], capture_output=True, text=True, timeout=900
    )
    assert run.returncode == 0, run.stderr[-3000:]
    written = re.findall(r"(/\S*tuneforge-smoke-\S*\.json)", run.stdout + run.stderr)
    assert written, run.stdout[-2000:]
    data = json.loads(Path(written[-1].rstrip(".,)")).read_text())
    assert data  # a real result: the CPU / device it ran on, and its figures
    assert {p: p.stat().st_mtime_ns for p in (ROOT / "benchmarks" / "results").glob("*.json")} == results
