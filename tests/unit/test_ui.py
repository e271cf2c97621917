"""`tuneforge ui` without a browser (Starlette's test client): what each run's status is read from,
the launch form's checks (the CLI's own errors), the token and origin guards, and escaping. The
browser test (tests/integration/test_ui_browser.py) uses the page as a person would."""

from __future__ import annotations

import html
import json
import os

import pytest

from tuneforge.errors import ConfigError
from tuneforge.files import incomplete_until_done, marker_state

pytest.importorskip("httpx")


def _run(root, name: str, marker: str | None = None, verb: str = "train"):
    run = root / name
    run.mkdir(parents=True)
    (run / ".tuneforge-output.json").write_text(json.dumps({"verb": verb}))
    (run / "config.yaml").write_text("train: {steps: 10}\n")
    (run / "train_log.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1.0, "elapsed_s": s}) + "\n"
                                                 for s in (1, 2)))  # fmt: skip
    if marker is not None:
        (run / ".incomplete").write_text(marker)
    return run


def test_a_run_says_running_finished_failed_cancelled_or_incomplete_from_its_marker(tmp_path):
    from tuneforge.ui.runs import list_runs

    host = os.uname().nodename
    _run(tmp_path, "done")
    _run(tmp_path, "live", f"not finished\npid: {os.getpid()}\nhost: {host}\n")
    _run(tmp_path, "broke", f"not finished\npid: 1\nhost: {host}\nstopped: DataError: bad line [f.jsonl:3]\n")
    _run(tmp_path, "stopped", f"not finished\npid: 1\nhost: {host}\nstopped: KeyboardInterrupt: \n")
    _run(tmp_path, "killed", f"not finished\npid: 999999999\nhost: {host}\n")
    (tmp_path / "not-a-run").mkdir()
    found = {i.name: i for i in list_runs(tmp_path)}
    assert {n: i.status for n, i in found.items()} == {
        "done": "finished", "live": "running", "broke": "failed", "stopped": "cancelled", "killed": "incomplete",
    }  # fmt: skip
    assert found["broke"].detail == "DataError: bad line [f.jsonl:3]" and "resume" in found["killed"].detail
    assert found["live"].progress == "2/10" and found["live"].eta_s == pytest.approx(8.0)
    (tmp_path / "live" / "stage.json").write_text('{"stage": 3, "of": 6, "name": "train", "text": "lora, 10 steps"}')
    stages = {i.name: i.stage for i in list_runs(tmp_path)}
    assert stages["live"] == "3/6 lora, 10 steps" and stages["done"] == ""  # the demo writes which stage it is in


def test_the_marker_records_the_process_and_why_a_run_stopped(tmp_path):
    with incomplete_until_done(tmp_path):
        state = marker_state(tmp_path)
        assert state == {"pid": str(os.getpid()), "host": os.uname().nodename}
    assert marker_state(tmp_path) is None  # finished
    with pytest.raises(KeyboardInterrupt), incomplete_until_done(tmp_path):
        raise KeyboardInterrupt
    assert marker_state(tmp_path)["stopped"] == "KeyboardInterrupt: "


@pytest.fixture
def client(tmp_path):
    from starlette.testclient import TestClient

    from tuneforge.ui.app import make_app

    (tmp_path / "tiny.yaml").write_text("model: {name: smollm2-135m-instruct}\ntrain: {steps: 4}\n")
    return TestClient(make_app(tmp_path), base_url="http://127.0.0.1:7860"), tmp_path


def test_a_bad_value_in_the_form_shows_the_clis_one_line_error_and_keeps_what_was_typed(client):
    from tuneforge.config import load_config
    from tuneforge.errors import TuneforgeError
    from tuneforge.train.run_config import TrainRunConfig

    c, root = client
    assert "tiny.yaml" in c.get("/launch").text
    r = c.post("/launch", data={"config": str(root / "tiny.yaml"), "name": "a", "overrides": "train.lr=-1"})
    with pytest.raises(TuneforgeError) as cli:
        load_config(TrainRunConfig, root / "tiny.yaml", ["train.lr=-1"])
    assert r.status_code == 400 and html.escape(f"tuneforge: error: {cli.value}") in r.text  # the CLI's words
    assert ">train.lr=-1</textarea>" in r.text and not (root / "a").exists()
    r = c.post("/launch", data={"config": "/etc/passwd", "name": "b", "overrides": ""})
    assert r.status_code == 400 and "pick one of the listed configs" in r.text
    r = c.post("/launch", data={"config": str(root / "tiny.yaml"), "name": "../up", "overrides": ""})
    assert r.status_code == 400 and "no &#x27;/&#x27;" in r.text


def test_names_and_configs_holding_markup_are_escaped(client):
    c, root = client
    run = _run(root, 'x<img src=x onerror="alert(1)">')
    (run / "config.yaml").write_text("model: {name: '<script>alert(2)</script>'}\n")
    index = c.get("/").text
    assert "<img src=x" not in index and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in index
    page = c.get("/run/" + run.name).text
    assert "<script>alert(2)" not in page and "&lt;script&gt;alert(2)&lt;/script&gt;" in page


def test_other_hosts_other_origins_and_missing_tokens_are_refused(tmp_path):
    from starlette.testclient import TestClient

    from tuneforge.ui.app import make_app, serve

    local = TestClient(make_app(tmp_path), base_url="http://127.0.0.1:7860")
    assert local.get("/").status_code == 200
    assert local.get("/", headers={"host": "evil.example"}).status_code == 400  # DNS rebinding
    posted = local.post("/launch", data={}, headers={"origin": "http://evil.example"})
    assert posted.status_code == 403  # a form posted from another site
    guarded = TestClient(make_app(tmp_path, token="s3cret", host="0.0.0.0"), base_url="http://10.0.0.5:7860")
    assert guarded.get("/").status_code == 403
    assert guarded.get("/?token=s3cret").status_code == 200  # and sets the cookie
    assert guarded.get("/").status_code == 200
    with pytest.raises(ConfigError, match="needs|--token"):
        serve(tmp_path, host="0.0.0.0")
