"""`tuneforge ui` used as a person would, in headless Chromium (Debian's, driven over the DevTools
protocol): launch a 4-step tiny-model run from the form and see it finish with its curve; a bad
value shows the CLI's own one-line error; a second run's curve gains points while it runs, it is
cancelled from the page and resumed from the CLI; the report and the compare page open; a script
planted in a run name or a model answer does not run. Screenshots go to test-artifacts/ui-*.png."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from test_report_browser import _chromium  # noqa: I001 (same folder)

from tuneforge.config import load_config
from tuneforge.data.io import write_records
from tuneforge.evaluate.run import EvalRunConfig, eval_score
from tuneforge.records import Generation, Message

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
PWN = "document.body.setAttribute('data-pwned','1')"
PAYLOAD = f'<script>{PWN}</script><img src=x onerror="{PWN}">'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(probe, timeout: float = 60.0, what: str = ""):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Browser:
    """Just enough of the DevTools protocol: navigate, evaluate, screenshot."""

    def __init__(self, chromium: str, tmp: Path):
        import websocket

        port = _free_port()
        self.proc = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
             "--disable-background-networking", "--disable-component-update", f"--remote-debugging-port={port}",
             "--remote-allow-origins=*", f"--user-data-dir={tmp / 'profile'}", "--window-size=1280,900",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

        def page():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
                    return next((t for t in json.load(r) if t["type"] == "page"), None)
            except OSError:
                return None

        self.ws = websocket.create_connection(_wait(page, 60, "chromium")["webSocketDebuggerUrl"], timeout=60)
        self.n = 0

    def call(self, method: str, **params):
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.n:
                assert "error" not in msg, msg["error"]
                return msg.get("result", {})

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result.get("result", {}).get("value")

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        _wait(lambda: self.js("document.readyState") == "complete" and self.js("location.href").startswith(url),
              30, url)  # fmt: skip

    def submit(self, button: str) -> None:
        """Click `button` and wait for the page it loads (marked: the old document holds a flag)."""
        self.js(f"window.__before = 1; document.querySelector({json.dumps(button)}).click()")
        _wait(lambda: self.js("window.__before === undefined && document.readyState === 'complete'"), 30,
              f"the page after {button}")  # fmt: skip

    def text(self, selector: str) -> str:
        return self.js(f"(document.querySelector({json.dumps(selector)}) || {{}}).textContent || ''")

    def pwned(self) -> bool:
        return bool(self.js("document.body.hasAttribute('data-pwned') || document.title === 'PWNED'"))

    def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        data = self.call("Page.captureScreenshot", format="png")["data"]
        (ARTIFACTS / f"ui-{name}.png").write_bytes(base64.b64decode(data))

    def close(self) -> None:
        self.ws.close()
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="module")
def chromium() -> str:
    return _chromium()  # skips, or fails under TUNEFORGE_REQUIRE_BROWSER=1, without Debian's chromium


def _tiny_setup(where: Path) -> Path:
    """A tiny model, its data and a training config in the folder the page lists (root)."""
    from tuneforge.models import tiny_model, tiny_tokenizer

    tok = tiny_tokenizer()
    tiny_model(tok).save_pretrained(where / "model")
    tok.save_pretrained(where / "model")
    from conftest import make_examples

    write_records(make_examples(12), where / "train.jsonl")
    root = where / "runs"
    root.mkdir()
    (root / "tiny.yaml").write_text(f"""model: {{name: {where / "model"}, dtype: float32, device: cpu}}
data: {{train: {where / "train.jsonl"}, eval: {where / "train.jsonl"}}}
adapter: {{method: lora, r: 4, target_modules: [q_proj, v_proj]}}
train: {{steps: 4, batch_size: 4, lr: 0.01, warmup_ratio: 0.0, precision: fp32, log_every: 1}}
""")
    return root


def _eval_run(root: Path) -> None:
    """A finished evaluation run whose tuned answer carries a planted script."""
    out = root / "evalrun"
    for label, bad in (("base", False), ("tuned", True)):
        gens = [
            Generation(id=f"q{i}", prompt=[Message("user", f"Question {i}?")],
                       generation=(PAYLOAD if bad and i == 0 else "") + f"An answer about rates {i}.",
                       references=[f"An answer about rates {i}."], model=label, domain=["finance", "travel"][i % 2])
            for i in range(6)
        ]  # fmt: skip
        write_records(gens, out / "generations" / f"{label}.jsonl")
    cfg = load_config(EvalRunConfig, None, [f"output_dir={out}", "models=[base=x, tuned=y]", "metrics=[rouge_l]",
                                            "bootstrap=50"])  # fmt: skip
    eval_score(cfg)


def test_launch_watch_cancel_resume_report_and_compare_in_a_real_browser(tmp_path, chromium, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    root = _tiny_setup(tmp_path)
    _eval_run(root)
    planted = root / f"x{PAYLOAD.replace('/', '')}"  # a run folder whose name is markup
    planted.mkdir()
    (planted / ".tuneforge-output.json").write_text('{"verb": "train"}')
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "tuneforge.cli", "ui", "--root", str(root), "--port", str(port)],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    browser = Browser(chromium, tmp_path)
    try:
        _wait(lambda: _up(base), 60, "tuneforge ui")
        browser.goto(base + "/")
        assert not browser.pwned() and "evalrun" in browser.text("table")

        # a bad value: the CLI's own one-line error, on the form, with what was typed kept
        browser.goto(base + "/launch")
        _fill(browser, "tiny.yaml", "bad", "train.lr=-1")
        browser.submit("#launch")
        error = browser.text("#error")
        assert error.startswith("tuneforge: error: ") and "train.lr must be > 0" in error
        assert browser.js("document.querySelector('#overrides').value") == "train.lr=-1"

        # launch a 4-step run from the form; it finishes with its curve drawn
        browser.goto(base + "/launch")
        _fill(browser, "tiny.yaml", "first", "train.eval_every=2")
        browser.submit("#launch")
        assert browser.js("location.pathname") == "/run/first"
        _wait(lambda: browser.text("#status") == "finished", 120, "the first run to finish")
        assert "steps: 4" in browser.text("#config")  # the resolved config, once the run wrote it
        assert "CPU:" in browser.text("#hardware") and "Precision auto" in browser.text("#hardware")
        _wait(lambda: browser.text("#points") == "6", 10, "4 training points and 2 evaluations")
        assert browser.js("document.querySelectorAll('#chart rect.eval').length") == 2
        browser.screenshot("finished-run")

        # a longer run gains points while it runs; cancel it from the page, resume it from the CLI
        browser.goto(base + "/launch")
        _fill(browser, "tiny.yaml", "second", "train.steps=300\ntrain.checkpoint_every=5")
        browser.submit("#launch")
        points = lambda: int(browser.text("#points") or 0)  # noqa: E731
        seen = _wait(lambda: browser.text("#status") == "running" and points() >= 6 and points(), 120,
                     "the second run's first points")  # fmt: skip
        _wait(lambda: points() > seen and browser.text("#status") == "running", 60, "more points while it runs")
        assert browser.text("#progress").startswith("step ") and "/300" in browser.text("#progress")
        browser.screenshot("running-run")
        browser.submit("#cancel")
        _wait(lambda: browser.text("#status") == "cancelled", 60, "the run to stop")
        resumed = subprocess.run([sys.executable, "-m", "tuneforge.cli", "train", str(root / "tiny.yaml"),
                                  "train.steps=300", "train.checkpoint_every=5", f"output_dir={root / 'second'}"],
                                 capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
        assert resumed.returncode == 0 and "resumed from" in resumed.stdout, resumed.stderr[-2000:]
        browser.goto(base + "/")
        rows = browser.js("[...document.querySelectorAll('tr')].map(r => r.textContent)")
        assert any("second" in r and "finished" in r and "300/300" in r for r in rows), rows
        assert not browser.pwned()
        browser.screenshot("runs")

        # the report, then the compare page of the two models; the planted answer stays text
        browser.goto(base + "/run/evalrun/report")
        assert "tuneforge report" in browser.text("h1") and not browser.pwned()
        browser.goto(base + "/")
        browser.js('document.querySelectorAll("input[name=pick]").forEach(b => b.checked = true)')
        browser.submit("form[action='/compare'] button")
        assert "compare" in browser.js("document.title").lower() and not browser.pwned()
        browser.screenshot("compare")
    finally:
        browser.close()
        server.terminate()
        server.wait(timeout=30)


def _up(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/", timeout=2):
            return True
    except OSError:
        return False


def _fill(browser: Browser, config: str, name: str, overrides: str) -> None:
    browser.js(
        "const s = document.querySelector('#config');"
        f"s.value = [...s.options].find(o => o.textContent.startsWith({json.dumps(config)})).value;"
        f"document.querySelector('#name').value = {json.dumps(name)};"
        f"document.querySelector('#overrides').value = {json.dumps(overrides)};"
    )
