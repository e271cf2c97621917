"""`tuneforge report compare` on two demo runs of the tiny model (one with a data build, trained for
other steps): metrics with CIs and paired deltas, overlaid loss curves, per-domain charts, data-build
counts, answers side by side with a CSS-only domain filter — rendered in headless Chromium, where a
script planted in an answer must not run. The screenshot is kept in test-artifacts/compare.png."""

import json

import pytest
from test_report_browser import PAYLOAD, ROOT, _chromium, _run  # noqa: I001 (same folder)

from tuneforge.cli import main
from tuneforge.config import load_config
from tuneforge.demo import DemoConfig, run_demo

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_tok):
    from tuneforge.models import tiny_model

    tmp = tmp_path_factory.mktemp("compare")
    tiny_model(tiny_tok, hidden=32, layers=2, seed=0).save_pretrained(tmp / "model")
    tiny_tok.save_pretrained(tmp / "model")
    common = [f"model.name={tmp / 'model'}", "model.dtype=float32", "model.device=cpu", "train.precision=fp32",
              "data.test_per_domain=2", "generation.max_new_tokens=8", "train.log_every=1"]  # fmt: skip
    a = run_demo(load_config(DemoConfig, None, [f"output_dir={tmp / 'a'}", "train.steps=2", *common]))
    b = run_demo(
        load_config(
            DemoConfig,
            None,
            [f"output_dir={tmp / 'b'}", "train.steps=4", "build.enabled=true", "build.augment.mosaic=2", *common],
        )
    )
    path = b / "generations" / "tuned.jsonl"  # a model answer carrying a script
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    rows[0]["generation"] = PAYLOAD + rows[0]["generation"]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp, a, b


def test_the_compare_page_holds_every_part_and_escapes_model_text(runs, capsys):
    tmp, a, b = runs
    assert (
        main(["report", "compare", f"{a}:base", str(a), str(b), "--out", str(tmp / "cmp"), "--bootstrap", "100"]) == 0
    )
    html = (tmp / "cmp" / "compare.html").read_text()
    md = (tmp / "cmp" / "compare.md").read_text()
    assert "a:base" in md and "a:tuned" in md and "b:tuned" in md
    rouge = next(line for line in md.splitlines() if line.startswith("| rouge_l |"))
    assert rouge.count("[") == 5 and "p=" in rouge  # three scores with CIs, two paired deltas with CIs
    assert (
        "Loss per optimizer step" in html
        and "held-out evaluations with 95% CIs" in html
        and "rouge_l per domain" in html
    )
    assert "Data build" in html and "augment" in html
    # each run's compute: b trained twice the steps, so it saw more tokens and more FLOPs
    ca, cb = (json.loads((r / "metrics.json").read_text())["run"]["compute"] for r in (a, b))
    assert cb["tokens"] > ca["tokens"] and f"{ca['c_train_6nd']:.3g}" in html and f"{cb['tokens']:,}" in html
    assert html.count("<tr class='item d-") == 10  # 5 domains × 2 items answered by all three
    assert "&lt;script&gt;document.title=" in html and "<script>document.title" not in html


def test_the_compare_page_renders_in_chromium_and_the_planted_script_does_not_run(runs, tmp_path):
    tmp, a, b = runs
    assert main(["report", "compare", str(a), str(b), "--out", str(tmp / "cmp2"), "--bootstrap", "100"]) == 0
    page = tmp / "cmp2" / "compare.html"
    chromium = _chromium()
    dom = _run(chromium, tmp_path, "--virtual-time-budget=3000", "--dump-dom", page.as_uri())
    assert "PWNED" not in dom.split("</title>")[0] and 'data-pwned="1"' not in dom
    assert dom.count('<figure class="chart">') >= 3 and "<path" in dom
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    shot = artifacts / "compare.png"
    _run(chromium, tmp_path, "--window-size=1280,2600", f"--screenshot={shot}", page.as_uri())
    import matplotlib.image as mpimg
    import numpy as np

    img = mpimg.imread(shot)
    colours = np.unique((img[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert img.shape[1] >= 1200 and len(colours) > 50  # tables, text and coloured charts


def test_runs_with_no_common_items_say_so_instead_of_dropping_the_delta(runs, tmp_path):
    tmp, a, _ = runs
    other = tmp_path / "other"
    (other / "scores").mkdir(parents=True)
    (other / "generations").mkdir()
    metrics = json.loads((a / "metrics.json").read_text())
    (other / "metrics.json").write_text(json.dumps(metrics))
    for label in ("base", "tuned"):
        rows = [json.loads(x) for x in (a / "scores" / f"{label}.jsonl").read_text().splitlines()]
        (other / "scores" / f"{label}.jsonl").write_text(
            "".join(json.dumps(r | {"id": "x" + r["id"]}) + "\n" for r in rows)
        )
    assert main(["report", "compare", str(a), str(other), "--out", str(tmp_path / "cmp"), "--bootstrap", "50"]) == 0
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "not comparable" in md and "share no item ids" in md


def test_an_unfinished_run_is_refused(runs, tmp_path, capsys):
    tmp, a, b = runs
    (b / ".incomplete").write_text("")
    try:
        assert main(["report", "compare", str(a), str(b), "--out", str(tmp_path / "cmp")]) == 2
        assert "did not finish" in capsys.readouterr().err
    finally:
        (b / ".incomplete").unlink()
