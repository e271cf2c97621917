"""The README's Python quick tour runs as written (on the real embedded model)."""

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_readme_quick_tour_runs(tmp_path, monkeypatch, capsys):
    readme = (ROOT / "README.md").read_text()
    tour = readme[readme.index("## Quick tour") :]
    code = re.search(r"```python\n(.*?)```", tour, re.S).group(1)
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md:quick-tour", "exec"), {})
    assert (tmp_path / "train.alpaca.json").exists() and (tmp_path / "gens.jsonl").exists()
    assert len(list((tmp_path / "runs").glob("demo-*/metrics.json"))) == 1
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed.split()[1].startswith("nrefs:1")
