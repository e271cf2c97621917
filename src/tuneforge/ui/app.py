"""`tuneforge ui`: a local web page to launch, follow, cancel and compare runs.

A Starlette app served by uvicorn (no home-made server). Pages: the runs under a folder with their
status, progress and ETA (`ui/runs.py`); one run with its live loss and held-out curves (rows of
its train_log.jsonl pushed as server-sent events and drawn in an inline SVG), its resolved config
and, when done, its report; a form that launches a training run from a config with overrides; the
compare page of the runs picked. A run launched here is an ordinary CLI run — `python -m
tuneforge.cli train CONFIG overrides… output_dir=ROOT/NAME`, the same run folder and files — so the
page and the CLI never disagree; cancelling sends it SIGINT, which leaves the folder resumable.

Safety: it listens on 127.0.0.1 unless told otherwise, and a non-local host needs a token (every
request must carry it, once as ?token=…, then as a cookie). Requests whose Host is not the one
served are refused (DNS rebinding), and so are form posts from another origin. Everything a run
holds (names, configs, answers) is escaped before it reaches the page; the scripts write text with
textContent only.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

from tuneforge.errors import ConfigError, TuneforgeError
from tuneforge.files import marker_state
from tuneforge.train.compute import describe as describe_compute
from tuneforge.ui.runs import fmt_eta, list_runs, read_log, run_info

_CSS = (
    "body{font-family:system-ui,sans-serif;margin:1.5rem;max-width:72rem}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}.running{color:#0a5}.failed{color:#c00}"
    ".cancelled,.incomplete{color:#a60}.error{background:#fee;border:1px solid #c00;padding:.5rem}"
    "pre{background:#f6f6f6;padding:.5rem;overflow:auto;max-height:24rem}nav a{margin-right:1rem}"
)


def _page(title: str, body: str, script: str = "") -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body><nav><a href='/'>runs</a><a href='/launch'>launch</a></nav>"
        f"<h1>{html.escape(title)}</h1>{body}{f'<script>{script}</script>' if script else ''}</body></html>"
    )


def train_configs(root: Path, bundled: Path | None) -> list[Path]:
    """YAML configs a training run can start from: the bundled configs/ and YAML files in `root`."""
    from tuneforge.config import load_config
    from tuneforge.train.run_config import TrainRunConfig

    found = []
    for folder in (bundled, root):
        for path in sorted(folder.glob("*.yaml")) if folder and folder.is_dir() else []:
            try:
                load_config(TrainRunConfig, path)
            except TuneforgeError:
                continue
            found.append(path)
    return found


_SCRIPT = """
const svg = document.getElementById('chart'), statusEl = document.getElementById('status');
const train = [], evals = [];
function draw() {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const pts = train.concat(evals);
  if (!pts.length) return;
  const W = 640, H = 260, P = 36, ns = 'http://www.w3.org/2000/svg';
  const xs = pts.map(r => r.step), ys = train.map(r => r.loss).concat(evals.flatMap(r => [r.lo, r.hi]));
  const x0 = 0, x1 = Math.max(...xs, STEPS), y0 = Math.min(...ys), y1 = Math.max(...ys) + 1e-9;
  const X = s => P + (W - 2 * P) * (s - x0) / (x1 - x0 || 1), Y = v => H - P - (H - 2 * P) * (v - y0) / (y1 - y0);
  const el = (tag, attrs, text) => { const e = document.createElementNS(ns, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]); if (text) e.textContent = text; svg.appendChild(e); return e; };
  el('line', {x1: P, y1: H - P, x2: W - P, y2: H - P, stroke: '#999'});
  el('line', {x1: P, y1: P, x2: P, y2: H - P, stroke: '#999'});
  el('text', {x: 2, y: P - 8, 'font-size': 11}, y1.toFixed(3));
  el('text', {x: 2, y: H - P, 'font-size': 11}, y0.toFixed(3));
  el('text', {x: W - P - 60, y: H - 8, 'font-size': 11}, 'step ' + x1);
  let avg = 0, line = [];
  train.forEach((r, i) => { el('circle', {class: 'train', cx: X(r.step), cy: Y(r.loss), r: 2, fill: '#36c', opacity: 0.3});
    avg = 0.6 * avg + 0.4 * r.loss; line.push(X(r.step) + ',' + Y(avg / (1 - Math.pow(0.6, i + 1)))); });
  if (line.length) el('polyline', {points: line.join(' '), fill: 'none', stroke: '#36c', 'stroke-width': 2});
  evals.forEach(r => { el('line', {x1: X(r.step), x2: X(r.step), y1: Y(r.lo), y2: Y(r.hi), stroke: '#c60'});
    el('rect', {class: 'eval', x: X(r.step) - 3, y: Y(r.v) - 3, width: 6, height: 6, fill: '#c60'}); });
}
const source = new EventSource(EVENTS);
source.onmessage = (e) => {
  const msg = JSON.parse(e.data);
  for (const r of msg.rows) {
    if ('loss' in r) train.push({step: r.step, loss: r.loss});
    if ('eval_loss' in r) evals.push({step: r.step, v: r.eval_loss, lo: r.eval_loss_lo ?? r.eval_loss,
                                      hi: r.eval_loss_hi ?? r.eval_loss});
  }
  if (msg.status !== INITIAL && (INITIAL === 'starting' || msg.done)) { source.close(); location.reload(); return; }
  statusEl.textContent = msg.status; statusEl.className = msg.status;
  document.getElementById('progress').textContent = msg.progress; STEPS = msg.steps || STEPS;
  document.getElementById('points').textContent = String(train.length + evals.length);
  draw();
  if (msg.done) source.close();
};
"""


def make_app(root: Path, token: str | None = None, bundled: Path | None = None, host: str = "127.0.0.1"):
    """The Starlette app over the runs in `root` (launched runs go there too)."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import (
        FileResponse,
        HTMLResponse,
        PlainTextResponse,
        RedirectResponse,
        Response,
        StreamingResponse,
    )
    from starlette.routing import Route

    root = Path(root).resolve()
    launched: dict[str, subprocess.Popen] = {}
    machine: list[str] = []

    def hardware() -> str:  # `tuneforge env` without the matmul measurement, read once
        if not machine:
            from tuneforge.hardware import describe_environment, format_environment

            machine.append(format_environment(describe_environment(measure=False)))
        return machine[0]

    ui_dir = root / ".tuneforge-ui"

    def _run_dir(name: str) -> Path:
        path = (root / name).resolve()
        if path.parent != root:
            raise ConfigError(f"{name!r} is not a run under {root}")
        return path

    async def index(request: Request) -> Response:
        rows, runs = [], list_runs(root)
        for i in runs:
            picks = "".join(
                f"<label><input type='checkbox' name='pick' value='{html.escape(i.name)}:{html.escape(label)}'> "
                f"{html.escape(label)}</label> "
                for label in i.labels
            )
            report = f"<a href='/run/{html.escape(i.name)}/report'>report</a>" if i.report else ""
            rows.append(
                f"<tr><td><a href='/run/{html.escape(i.name)}'>{html.escape(i.name)}</a></td><td>{html.escape(i.verb)}"
                f"</td><td class='{i.status}'>{i.status}</td><td>{html.escape(i.stage)}</td><td>{html.escape(i.progress)}</td>"
                f"<td>{fmt_eta(i.eta_s)}</td><td>{html.escape(i.detail)}</td><td>{report}</td><td>{picks}</td></tr>"
            )
        table = (
            "<form action='/compare' method='get'><table><tr><th>run</th><th>verb</th><th>status</th>"
            "<th>stage</th><th>step</th><th>ETA</th><th>detail</th><th>report</th><th>compare</th></tr>"
            + "".join(rows)
            + "</table><p><button type='submit'>compare the picked models</button></p></form>"
            if rows
            else f"<p>No runs under {html.escape(str(root))} yet. <a href='/launch'>Launch one</a>.</p>"
        )
        refresh = "setTimeout(() => location.reload(), 3000);" if any(i.status == "running" for i in runs) else ""
        return HTMLResponse(_page(f"Runs in {root}", table, refresh))

    def _launch_form(error: str = "", values: dict | None = None) -> str:
        values = values or {}
        options = "".join(
            f"<option value='{html.escape(str(p))}'{' selected' if str(p) == values.get('config') else ''}>"
            f"{html.escape(p.name)} ({html.escape(str(p.parent))})</option>"
            for p in train_configs(root, bundled)
        )
        return (
            (f"<p class='error' id='error'>tuneforge: error: {html.escape(error)}</p>" if error else "")
            + "<form method='post' action='/launch'><p><label>config <select name='config' id='config'>"
            + options
            + "</select></label></p><p><label>run name <input name='name' id='name' value='"
            + html.escape(values.get("name", ""))
            + "'></label></p><p><label>overrides, one key=value per line<br><textarea name='overrides' "
            "id='overrides' rows='6' cols='60'>"
            + html.escape(values.get("overrides", ""))
            + "</textarea></label></p><p><button type='submit' id='launch'>launch</button></p></form>"
        )

    async def launch_page(request: Request) -> Response:
        return HTMLResponse(_page("Launch a training run", _launch_form()))

    async def launch(request: Request) -> Response:
        from tuneforge.config import load_config
        from tuneforge.train.run_config import TrainRunConfig

        form = await request.form()
        values = {k: str(form.get(k, "")) for k in ("config", "name", "overrides")}
        overrides = [line.strip() for line in values["overrides"].splitlines() if line.strip()]
        try:
            name = values["name"].strip()
            if not name or name.startswith(".") or "/" in name or "\\" in name:
                raise ConfigError("run name: give a folder name (no '/', not starting with '.')")
            run = _run_dir(name)
            if run.exists() or name in launched:
                raise ConfigError(f"{run} exists already: pick another run name")
            config = Path(values["config"])
            if config.resolve() not in {p.resolve() for p in train_configs(root, bundled)}:
                raise ConfigError(f"config {config}: pick one of the listed configs")
            load_config(TrainRunConfig, config, [*overrides, f"output_dir={run}"])  # the CLI's own checks
        except TuneforgeError as exc:
            return HTMLResponse(_page("Launch a training run", _launch_form(str(exc), values)), status_code=400)
        ui_dir.mkdir(parents=True, exist_ok=True)
        log = open(ui_dir / f"{name}.log", "w", encoding="utf-8")  # noqa: SIM115 — the child writes it
        cmd = [sys.executable, "-m", "tuneforge.cli", "train", str(config), *overrides, f"output_dir={run}"]
        # SIGINT as Python's default (KeyboardInterrupt): a server started in the background of a shell
        # inherits it ignored, and the child would then ignore `cancel`
        launched[name] = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
        )
        log.close()
        return RedirectResponse(f"/run/{name}", status_code=303)

    def _status(name: str) -> str:
        run = _run_dir(name)
        info = run_info(run) if run.exists() else None
        if info is None:
            proc = launched.get(name)
            if proc is not None and proc.poll() is None:
                return "starting"
            return "failed" if proc is not None else "missing"
        return info.status

    async def run_page(request: Request) -> Response:
        name = request.path_params["name"]
        run = _run_dir(name)
        if not run.exists() and name not in launched:
            return HTMLResponse(_page("No such run", f"<p>{html.escape(str(run))} does not exist.</p>"), 404)
        info = run_info(run) if run.exists() else None
        config = (run / "config.yaml").read_text(encoding="utf-8") if (run / "config.yaml").exists() else ""
        summary = run / "train_summary.json"
        facts = json.loads(summary.read_text(encoding="utf-8")) if summary.exists() else {}
        shown = {k: facts[k] for k in ("steps", "first_loss", "final_loss", "best_step", "stopped", "train_seconds",
                                        "eval_seconds", "tokens_per_s") if k in facts}  # fmt: skip
        if facts.get("compute"):
            shown["compute"] = describe_compute(facts["compute"])
        ui_log = ui_dir / f"{name}.log"
        output = ui_log.read_text(encoding="utf-8", errors="replace")[-4000:] if ui_log.exists() else ""
        status = _status(name)
        cancel = (
            f"<form method='post' action='/run/{html.escape(name)}/cancel'><button id='cancel' type='submit'>cancel"
            "</button> (stops it at once; rerun its command, or launch it again under this name, to resume)</form>"
        )
        body = (
            f"<p>status: <b id='status' class='{status}'>{html.escape(status)}</b> · <span id='progress'></span> · "
            "points drawn: <span id='points'>0</span>"
            + (f" · <a href='/run/{html.escape(name)}/report'>report</a>" if info and info.report else "")
            + "</p>"
            + (cancel if status in ("running", "starting") else "")
            + "<h2>Loss</h2><p>training (raw points faint, smoothed line) and held-out evaluations (squares, 95% CI)"
            "</p><svg id='chart' width='640' height='260' role='img' aria-label='loss curve'></svg>"
            + (f"<h2>Summary</h2><pre>{html.escape(json.dumps(shown, indent=1))}</pre>" if shown else "")
            + f"<h2>Resolved config</h2><pre id='config'>{html.escape(config)}</pre>"
            + f"<h2>Hardware (this machine; the config above says the precision the run resolved)</h2>"
            f"<pre id='hardware'>{html.escape(hardware())}</pre>"
            + (f"<h2>Output</h2><pre id='output'>{html.escape(output)}</pre>" if output else "")
        )
        steps = info.steps if info else 0
        script = (
            f"let STEPS = {int(steps)}; const EVENTS = {json.dumps(f'/run/{name}/events')}, "
            f"INITIAL = {json.dumps(status)};" + _SCRIPT
        )
        return HTMLResponse(_page(f"Run {name}", body, script))

    async def events(request: Request) -> Response:
        name = request.path_params["name"]
        run = _run_dir(name)

        async def stream():
            sent = 0
            while True:
                rows = read_log(run) if run.exists() else []
                status = _status(name)
                done = status not in ("running", "starting")
                info = run_info(run) if run.exists() else None
                progress = " · ".join(x for x in (
                    f"stage {info.stage}" if info and info.stage else "",
                    f"step {info.progress}" if info and info.steps else "",
                    f"ETA {fmt_eta(info.eta_s)}" if info and info.eta_s else "",
                ) if x)  # fmt: skip
                msg = {"rows": rows[sent:], "status": status, "done": done, "progress": progress,
                       "steps": info.steps if info else 0}  # fmt: skip
                yield f"data: {json.dumps(msg)}\n\n"
                sent = len(rows)
                if done or await request.is_disconnected():
                    return
                await asyncio.sleep(0.5)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    async def cancel(request: Request) -> Response:
        name = request.path_params["name"]
        run = _run_dir(name)
        state = marker_state(run) or {}
        proc = launched.get(name)
        pid = int(state.get("pid") or 0) or (proc.pid if proc is not None else 0)
        if pid and _status(name) in ("running", "starting"):
            os.kill(pid, signal.SIGINT)  # the CLI stops at once and leaves the run resumable
        return RedirectResponse(f"/run/{name}", status_code=303)

    async def report(request: Request) -> Response:
        run = _run_dir(request.path_params["name"])
        if not (run / "report.html").exists():
            return PlainTextResponse("this run has no report", 404)
        return FileResponse(run / "report.html", media_type="text/html")

    async def compare(request: Request) -> Response:
        from tuneforge.evaluate.compare_page import compare_page

        picks = request.query_params.getlist("pick")
        if len(picks) < 2:
            return HTMLResponse(_page("Compare", "<p class='error'>Pick at least two models to compare.</p>"), 400)
        specs = []
        for p in picks:
            name, _, label = p.rpartition(":")
            specs.append(f"{_run_dir(name)}:{label}")
        out = ui_dir / ("compare-" + hashlib.sha256("\n".join(specs).encode()).hexdigest()[:12])
        try:
            page = await asyncio.to_thread(compare_page, specs, out, 1000)
        except TuneforgeError as exc:
            return HTMLResponse(
                _page("Compare", f"<p class='error'>tuneforge: error: {html.escape(str(exc))}</p>"), 400
            )
        return FileResponse(page if page.is_file() else page / "compare.html", media_type="text/html")

    class Guard(BaseHTTPMiddleware):
        """The token (when set), and form posts only from the page's own origin."""

        async def dispatch(self, request: Request, call_next):
            if token is not None:
                given = request.query_params.get("token") or request.cookies.get("tuneforge_token")
                if not given or not secrets.compare_digest(given, token):
                    return PlainTextResponse("a token is needed: open the URL `tuneforge ui` printed", 403)
            if request.method == "POST":
                origin = request.headers.get("origin")
                if origin and origin.split("://", 1)[-1] != request.headers.get("host"):
                    return PlainTextResponse("form posts from another site are refused", 403)
            try:
                response = await call_next(request)
            except ConfigError as exc:
                return PlainTextResponse(str(exc), 400)
            if token is not None and request.query_params.get("token"):
                response.set_cookie("tuneforge_token", token, httponly=True, samesite="strict")
            return response

    hosts = ["127.0.0.1", "localhost"] if host in ("127.0.0.1", "localhost") else ["*"]
    routes = [
        Route("/", index),
        Route("/launch", launch_page, methods=["GET"]),
        Route("/launch", launch, methods=["POST"]),
        Route("/run/{name}", run_page),
        Route("/run/{name}/events", events),
        Route("/run/{name}/cancel", cancel, methods=["POST"]),
        Route("/run/{name}/report", report),
        Route("/compare", compare),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=hosts), Middleware(Guard)]
    return Starlette(routes=routes, middleware=middleware)


def serve(root: str | Path = "runs", host: str = "127.0.0.1", port: int = 7860, token: str | None = None) -> None:
    """Serve the app until Ctrl-C. A host other than 127.0.0.1/localhost needs a token."""
    import uvicorn

    if host not in ("127.0.0.1", "localhost") and not token:
        raise ConfigError(
            f"--host {host} would let anyone who reaches this machine launch runs: pass --token TOKEN too "
            "(then open the printed URL), or keep the default 127.0.0.1"
        )
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    bundled = Path.cwd() / "configs"
    app = make_app(root, token, bundled if bundled.is_dir() else None, host)
    url = f"http://{host}:{port}/" + (f"?token={token}" if token else "")
    print(f"tuneforge ui: {url} (runs in {root.resolve()}; Ctrl-C stops the page, not the runs)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
