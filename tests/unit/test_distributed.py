import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.mark.slow  # two torchrun processes: ~20 s
def test_two_gloo_processes_match_one_process_on_the_same_global_batch(tmp_path):
    import ddp_worker

    out = tmp_path / "ddp.json"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(HERE / "ddp_worker.py"),
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads(out.read_text())
    assert two["world"] == 2 and two["backend"] == "gloo"
    one = ddp_worker.train(world=1, rank=0)
    assert two["losses"] == pytest.approx(one["losses"], rel=1e-5)
    assert two["params"] == pytest.approx(one["params"], rel=1e-4, abs=1e-6)
    assert one["losses"][-1] < one["losses"][0]


def test_data_shards_partition_the_global_stream(tiny_tok, examples):
    from tuneforge.tokenisation import batch_stream, encode_examples

    encs, _ = encode_examples(examples, tiny_tok)
    whole = batch_stream(encs, 2, tiny_tok.pad_token_id, seed=1)
    shards = [batch_stream(encs, 2, tiny_tok.pad_token_id, seed=1, num_shards=2, shard=r) for r in range(2)]
    for _ in range(6):
        for r in range(2):
            assert next(shards[r])["input_ids"].tolist() == next(whole)["input_ids"].tolist()


@pytest.mark.slow  # two torchrun processes running the CLI: ~30 s
def test_tuneforge_train_under_torchrun_writes_one_run(tmp_path, tiny_lm, tiny_tok, examples):
    from tuneforge.data.io import write_records

    tiny_lm.save_pretrained(tmp_path / "model")
    tiny_tok.save_pretrained(tmp_path / "model")
    write_records(examples, tmp_path / "train.jsonl")
    (tmp_path / "cfg.yaml").write_text(f"""output_dir: {tmp_path / "run"}
model: {{name: {tmp_path / "model"}, dtype: float32}}
data: {{train: {tmp_path / "train.jsonl"}, eval: ''}}
adapter: {{method: lora, r: 4}}
train: {{steps: 4, batch_size: 2, lr: 0.01, warmup_ratio: 0.0, precision: fp32, log_every: 1}}
""")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "tuneforge.cli",
            "train",
            str(tmp_path / "cfg.yaml"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "run"
    assert (run / "adapter" / "adapter_model.safetensors").exists()
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["steps"] == 4 and summary["final_loss"] < summary["first_loss"]
    assert [json.loads(x)["step"] for x in (run / "train_log.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    assert proc.stdout.count("Trained ") == 1  # the summary is printed by the main process only


@pytest.mark.slow  # two torchrun processes answering: ~40 s
def test_two_processes_split_generation_and_write_the_same_answer_file_as_one(tmp_path, tiny_lm, tiny_tok):
    tiny_lm.save_pretrained(tmp_path / "model")
    tiny_tok.save_pretrained(tmp_path / "model")
    common = [f"models=[tiny={tmp_path / 'model'}]", "test_per_domain=3", "generation.max_new_tokens=12",
              "generation.batch_size=2", "dtype=float32", "device=cpu"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(out, procs):
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs)]
        cmd = [*(launch if procs > 1 else [sys.executable]), "-m", "tuneforge.cli", "eval", "generate"]
        proc = subprocess.run(
            [*cmd, f"output_dir={out}", *common], env=env, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert (f"process 2 of {procs} answers" in proc.stderr) == (procs > 1)  # the items were really split
        return [json.loads(x) for x in (out / "generations" / "tiny.jsonl").read_text().splitlines()]

    one, two = run(tmp_path / "one", 1), run(tmp_path / "two", 2)
    assert len(one) == 15 and [g["id"] for g in two] == [g["id"] for g in one]  # one file, in item order
    assert [g["generation"] for g in two] == [g["generation"] for g in one]
    assert len({g["generation"] for g in one}) > 1 and not list((tmp_path / "two" / "generations").glob("*.rank*"))
    # killed after 5 answers: two processes answer the other 10, in the same file
    path = tmp_path / "two" / "generations" / "tiny.jsonl"
    path.write_text("".join(json.dumps(g) + "\n" for g in two[:5]))
    assert [g["generation"] for g in run(tmp_path / "two", 2)] == [g["generation"] for g in one]
