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
    yield from _serve(tmp_path_factory)


@pytest.fixture(scope="module")
def tool_server(tmp_path_factory):
    """The same server with llama-cpp-python's chat format that takes `tools` and returns `tool_calls`
    (the GGUF's own SmolLM2 template renders no tools)."""
    yield from _serve(tmp_path_factory, "--chat_format", "chatml-function-calling")


def _serve(tmp_path_factory, *extra: str):
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
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip  (a log file, not a pipe: llama.cpp logs enough to fill a pipe and block)
    url = f"http://127.0.0.1:{port}/v1"

    def died(what: str) -> str:
        log.flush()
        log.seek(0)
        tail = "\n".join(log.read().splitlines()[-25:])
        code = proc.poll()
        how = f"exit code {code}" + (" (SIGILL: an instruction this CPU does not run)" if code == -4 else "")
        return f"the server died {what} ({how}); its last log lines:\n{tail}"

    for _ in range(240):
        try:
            if requests.get(url + "/models", timeout=1).ok:
                break
        except requests.RequestException:
            pass
        if proc.poll() is not None:
            pytest.fail(died("while starting"))
        time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("llama.cpp server did not start in 120 s")
    # One completion before any test: a server that answers /models but dies on its first forward
    # pass (a build using instructions this CPU lacks) fails here, once, with its own log.
    try:
        r = requests.post(url + "/chat/completions", json={"model": "smollm2", "max_tokens": 2,
                          "messages": [{"role": "user", "content": "Hi"}]}, timeout=120)  # fmt: skip
        r.raise_for_status()
    except requests.RequestException as exc:
        if proc.poll() is not None:
            pytest.fail(died("on its first completion"))
        proc.kill()
        pytest.fail(f"the llama.cpp server did not answer its first completion: {exc}")
    yield url
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def test_the_server_is_built_for_any_x86_64_cpu_with_avx2_not_for_the_build_machine():
    """A native build on one CI machine died with SIGILL on another CPU (issue 29): the installed
    library must be the portable build scripts/install_server.sh makes, whatever this CPU has."""
    if subprocess.run([sys.executable, "-c", "import llama_cpp.server"], capture_output=True).returncode:
        pytest.skip("llama-cpp-python[server] is not installed (scripts/install_server.sh installs it)")
    code = "import llama_cpp, pathlib; print(llama_cpp.llama_print_system_info().decode()); " \
        "print((pathlib.Path(llama_cpp.__file__).parent / 'tuneforge-build-flags.txt').read_text())"  # fmt: skip
    info = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "-DGGML_NATIVE=OFF" in info, info
    features = {k.strip(): v.strip() for k, _, v in (p.partition("=") for p in info.replace("\n", "|").split("|"))}
    assert features.get("AVX2") == "1", info  # the baseline it is built for
    for isa in ("AVX512", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16", "AMX_INT8", "AVX_VNNI"):
        assert features.get(isa, "0") == "0", f"{isa} compiled in: {info}"


def _answers(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_eval_generate_against_a_served_model_answers_resumes_and_reuses(server, tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["eval", "generate", f"output_dir={out}", f"models=[served=openai:smollm2@{server}]",
            "data.test_per_domain=2", "generation.max_new_tokens=24", "generation.batch_size=4"]  # fmt: skip
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


def test_the_multitask_base_row_is_answered_by_the_served_model(server, tmp_path, shared_data):
    from tuneforge.models import tiny_model, tiny_tokenizer
    from tuneforge.multitask.superni import load_tasks

    tasks = load_tasks(shared_data / "superni")
    corpus = [t.definition for t in tasks] + [i["input"] for t in tasks for i in t.instances[:20]]
    tok = tiny_tokenizer(corpus, vocab_size=3000)  # the tuned rows: a tiny local model, trained in process
    tiny_model(tok).save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    out = tmp_path / "mt"
    args = ["multitask", "run", f"output_dir={out}", f"superni_dir={shared_data / 'superni'}",
            f"model.name={tmp_path / 'model'}", f"base_served=openai:smollm2@{server}", "model.dtype=float32",
            "methods=[mixed]", "seen_tasks=2", "unseen_tasks=2", "train_per_task=4", "eval_per_task=2",
            "train.steps=1", "train.precision=fp32", "train.max_length=512", "generation.max_new_tokens=8",
            "phrasing_forms=[]", "bootstrap=20"]  # fmt: skip
    assert main(args) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["methods"]["base"]["answered_by"] == f"openai:smollm2@{server}"
    base = _answers(out / "base" / "generations.jsonl")
    assert len(base) == 8 and all(g["settings"]["served"] == f"smollm2@{server}" for g in base)
    assert len({g["generation"] for g in base}) > 1
    assert (out / "base" / "generations.cache.sqlite").exists()
    bad = [*args[:5], "base_served=runs/some-model"]  # a local model there is a config error, not a silent switch
    assert main(bad) == 2


def test_reflect_run_with_a_served_teacher_and_student(server, tmp_path):
    out = tmp_path / "reflect"
    served = ["kind=openai", "model=smollm2", f"base_url={server}"]
    args = ["reflect", "run", str(Path(__file__).resolve().parents[2] / "configs" / "reflect.yaml"), f"output_dir={out}", "limit=1",
            "loop.levels=[basic]", "loop.max_iterations=1", "verdict=text", "question_tokens=24",
            "verdict_tokens=32", "answer_tokens=48", "reply_tokens=24",
            *[f"{role}.{kv}" for role in ("teacher", "student") for kv in served]]  # fmt: skip
    assert main(args) == 0
    summary = json.loads((out / "alignment.json").read_text())
    assert summary["teacher"] == summary["student"] == "smollm2"
    trace = _answers(out / "trace.jsonl")
    answers = [r["answer"] for r in trace if r["step"] == "generate"]
    assert answers and all(a.strip() for a in answers)  # the served student wrote the answer
    assert (out / "llm_cache.sqlite").exists()
    before = (out / "trace.jsonl").read_text()
    assert main(args) == 0  # replayed from the request cache
    assert (out / "trace.jsonl").read_text() == before


def test_a_served_model_gets_tools_and_its_tool_calls_are_read_back_as_calls(tool_server, tmp_path):
    from tuneforge.data.seed import load_examples
    from tuneforge.evaluate.metrics.tool_calls import score_calls
    from tuneforge.generation import GenerationConfig, answer_with_llm
    from tuneforge.llm.client import Sampling
    from tuneforge.llm.openai_http import OpenAIChatLLM
    from tuneforge.records import EvalItem
    from tuneforge.tool_text import parse_turn

    items = [EvalItem.from_example(e) for e in load_examples("seed:tools:test") if e.domain == "finance"][:3]
    llm = OpenAIChatLLM("smollm2", tool_server, api_key_env="")
    rate = next(
        it for it in items if it.reference_tool_calls and it.reference_tool_calls[0].name == "get_exchange_rate"
    )
    conv = [m.to_openai() for m in rate.messages]
    (reply,) = llm.chat([conv], Sampling(max_new_tokens=64, tools=rate.tools, tool_choice="get_exchange_rate"))
    turn = parse_turn(reply[0])  # the server's tool_calls, as the call blocks every metric reads
    assert [c.name for c in turn.calls] == ["get_exchange_rate"] and not turn.malformed
    assert set(turn.calls[0].arguments) <= {"base", "quote"}
    # eval's path: every item asked with its tools (the server's default choice), answers stored and scored
    gens = answer_with_llm(llm, items, GenerationConfig(max_new_tokens=48), "served", tmp_path / "answers.jsonl")
    assert len(gens) == 3 and all(g.tools for g in gens)
    for g in gens:
        scores = score_calls(g.generation, g.tools, g.reference_tool_calls)
        assert any(v is not None for v in scores.values())


def test_data_build_distils_tool_use_from_a_served_teacher_and_counts_the_rejects(tool_server, tmp_path):
    from tuneforge.data.io import read_records

    cfg = tmp_path / "build.yaml"
    cfg.write_text(f"""output_dir: {tmp_path / "data"}
llm: {{kind: openai, model: smollm2, base_url: "{tool_server}", max_new_tokens: 48}}
distill: {{prompts: "seed:tools:test[:12]"}}
tool_synth: {{enabled: true, tools: "seed:tools:test[:1]", per_tool: 1, no_tool: 1}}
filters: {{decontaminate: [], dedup: false}}
""")
    assert main(["data", "build", str(cfg)]) == 0
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    report = manifest["reports"]["distill"]
    assert report["prompts"] == 12 and set(report["tool_calls"]["rejected"]) == {"malformed", "schema"}
    kept = report["kept"]
    assert kept + report["empty_answers"] + sum(report["tool_calls"]["rejected"].values()) == 12
    synth = manifest["reports"]["tool_synth"]  # questions written from one domain's 3 tool schemas, then answered
    assert synth["tool_sets"] == 1 and synth["questions_asked_for"] == 4
    assert synth["questions_kept"] == sum(synth["answers"].get(k, 0) for k in ("kept", "empty_answers")) + sum(
        synth["answers"].get("tool_calls", {}).get("rejected", {}).values()
    )
    records = read_records(tmp_path / "data" / "train.jsonl")
    assert all(r.tools for r in records)  # every kept record carries the schemas its calls were checked against
