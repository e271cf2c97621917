"""The GPU check script runs end to end (here on CPU, at one step): every row trains or says why not."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_gpu_check_script_trains_every_row_and_writes_its_json(tmp_path):
    out = tmp_path / "gpu_check.json"
    args = ["--steps", "1", "--batch-size", "2", "--max-length", "64", "--prompts", "2", "--max-new-tokens", "8"]
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), *args, "--out", str(out)], check=True)
    res = json.loads(out.read_text())
    assert res["device"] == "cpu" and res["precision"] in ("bf16", "fp32")
    for row in ("lora", "lora+gc", "full", "full+gc"):
        assert res["rows"][row]["steps"] == 1 and res["rows"][row]["tokens_per_s"] > 0, row
    qlora = res["rows"]["qlora"]
    assert qlora.get("steps") == 1 if res["bitsandbytes"] else "skipped" in qlora
    assert res["rows"]["generate"]["answers"] == 2
