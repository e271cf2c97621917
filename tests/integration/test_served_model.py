"""Generation and synthesis against a real OpenAI-compatible server: llama.cpp's (llama-cpp-python
[server], built from PyPI's source distribution by scripts/install.sh) serving the embedded GGUF on
127.0.0.1. The same client path talks to vLLM, SGLang or Ollama at scale."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tuneforge.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if subprocess.run([sys.executable, "-c", "import llama_cpp.server"], capture_output=True).returncode:
        if os.environ.get("TUNEFORGE_REQUIRE_SERVER"):
            pytest.fail("llama-cpp-python[server] is not installed, and CI requires the real-server tests")
        pytest.skip("llama-cpp-python[server] is not installed (scripts/install.sh installs it)")
    from tuneforge.embedded import embedded_gguf_path

    log = open(tmp_path_factory.mktemp("server") / "server.log", "w+")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(embedded_gguf_path()),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--model_alias",
            "smollm2",
            "--n_threads",
            "2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip  (a log file, not a pipe: llama.cpp logs enough to fill a pipe and block)
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(240):
        try:
            if requests.get(url + "/models", timeout=1).ok:
                break
        except requests.RequestException:
            pass
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"llama.cpp server exited: {log.read()[-2000:]}")
        time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("llama.cpp server did not start in 120 s")
    yield url
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def _answers(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_eval_generate_against_a_served_model_answers_resumes_and_reuses(server, tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["eval", "generate", f"output_dir={out}", f"models=[served=openai:smollm2@{server}]",
            "test_per_domain=2", "generation.max_new_tokens=24", "generation.batch_size=4"]  # fmt: skip
    assert main(args) == 0
    path = out / "generations" / "served.jsonl"
    first = _answers(path)
    assert len(first) == 10 and all(g["generation"].strip() for g in first)
    assert len({g["generation"] for g in first}) > 5  # a real model: different answers to different prompts
    assert all(g["settings"]["served"] == f"smollm2@{server}" for g in first)
    # killed after 4 answers: a rerun answers only the 6 missing ones, from the request cache
    path.write_text("".join(json.dumps(g) + "\n" for g in first[:4]))
    (out / ".incomplete").write_text("")
    assert main(args) == 0
    again = _answers(path)
    assert [g["id"] for g in again] == [g["id"] for g in first]
    assert [g["generation"] for g in again] == [g["generation"] for g in first]  # greedy + cache: identical
    # another decoding setting is not served the old answers
    assert main([*args[:-2], "generation.max_new_tokens=8", "generation.batch_size=4"]) == 0
    assert "not reused" in capsys.readouterr().err


def test_a_served_model_that_is_not_running_is_an_error_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["eval", "generate", f"output_dir={out}", "models=[x=openai:m@http://127.0.0.1:9/v1]"]
    assert main(args) == 2
    assert "did not answer" in capsys.readouterr().err and not out.exists()


def test_data_build_distils_and_self_instructs_through_the_served_model(server, tmp_path):
    cfg = tmp_path / "build.yaml"
    cfg.write_text(f"""output_dir: {tmp_path / "data"}
llm: {{kind: openai, model: smollm2, base_url: "{server}", max_new_tokens: 48}}
distill: {{prompts: "seed:test:finance"}}
self_instruct: {{enabled: true, seeds: seed:train, num_instructions: 3, max_rounds: 2, requests_per_round: 2}}
filters: {{decontaminate: []}}
""")
    assert main(["data", "build", str(cfg)]) == 0
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert manifest["stages"]["distill"] > 0 and "self_instruct" in manifest["stages"] and manifest["llm"]["calls"] > 0
    calls = manifest["llm"]["calls"]
    assert main(["data", "build", str(cfg)]) == 0  # the rerun is served from the request cache
    again = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert again["llm"]["calls"] == 0 and again["llm"]["cache_hits"] >= calls
    assert again["final"] == manifest["final"]
