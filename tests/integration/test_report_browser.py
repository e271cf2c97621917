"""report.html in headless Chromium (Debian's package, installed by `make test` via
scripts/install_browser.sh): the charts render, and a script planted in a generation does not run.
The screenshot is kept in test-artifacts/report.png."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tuneforge.config import load_config
from tuneforge.data.io import write_records
from tuneforge.evaluate.run import EvalRunConfig, eval_score
from tuneforge.records import Generation, Message

ROOT = Path(__file__).resolve().parents[2]
PAYLOAD = "<script>document.title='PWNED'</script><img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">"


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("TUNEFORGE_REQUIRE_BROWSER"):
            pytest.fail("chromium is required here (TUNEFORGE_REQUIRE_BROWSER=1): run scripts/install_browser.sh")
        pytest.skip("chromium not installed (bash scripts/install_browser.sh)")
    return path


def _run(chromium: str, tmp: Path, *args: str) -> str:
    cmd = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        f"--user-data-dir={tmp / 'profile'}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("xss")
    refs = {
        "healthcare": "See a doctor if a fever lasts more than three days.",
        "finance": "APR is the yearly cost of borrowing, fees included.",
        "legal": "A will names who inherits your property.",
    }
    for label, bad in (("base", False), ("tuned", True)):
        gens = [
            Generation(
                id=f"{d}-{i}",
                prompt=[Message("user", f"Question {i} about {d}?")],
                generation=(PAYLOAD + " " + r) if bad and i == 0 else r[: 20 + 7 * i],
                references=[r],
                model=label,
                domain=d,
            )
            for d, r in refs.items()
            for i in range(4)
        ]
        write_records(gens, out / "generations" / f"{label}.jsonl")
    cfg = load_config(
        EvalRunConfig,
        None,
        [f"output_dir={out}", "models=[base=x, tuned=y]", "metrics=[bleu, rouge_l, tsas]", "bootstrap=200"],
    )
    eval_score(cfg)
    return out / "report.html"


def test_model_text_is_escaped_in_the_html(report):
    html = report.read_text()
    assert "&lt;script&gt;document.title=" in html and "<script>document.title" not in html
    assert "<img src=x" not in html


def test_report_renders_its_charts_and_the_planted_script_does_not_run(report, tmp_path):
    chromium = _chromium()
    dom = _run(chromium, tmp_path, "--virtual-time-budget=3000", "--dump-dom", report.as_uri())
    assert "<title>tuneforge report" in dom and "PWNED" not in dom.split("</title>")[0]
    assert 'data-pwned="1"' not in dom
    assert dom.count('<figure class="chart">') >= 2 and dom.count("<svg") >= 2 and "<path" in dom
    # the same payload unescaped does run under this detector: the check above can fail
    bad = tmp_path / "unescaped.html"
    bad.write_text(f"<html><head><title>t</title></head><body>{PAYLOAD}</body></html>")
    bad_dom = _run(chromium, tmp_path, "--virtual-time-budget=3000", "--dump-dom", bad.as_uri())
    assert "PWNED" in bad_dom and 'data-pwned="1"' in bad_dom

    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    shot = artifacts / "report.png"
    _run(chromium, tmp_path, "--window-size=1280,2200", f"--screenshot={shot}", report.as_uri())
    import matplotlib.image as mpimg
    import numpy as np

    img = mpimg.imread(shot)
    assert img.shape[0] >= 2000 and img.shape[1] >= 1200
    colours = np.unique((img[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 50  # text, tables and coloured bars, not a blank page
