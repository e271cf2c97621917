import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
FSDP_CONFIG = HERE.parents[1] / "configs" / "accelerate" / "fsdp.yaml"


def _launch(args: list[str], fsdp: bool = False, timeout: int = 300) -> subprocess.CompletedProcess:
    """Two gloo processes: torchrun (DDP), or `accelerate launch` with the bundled FSDP config."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    if fsdp:
        launcher = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(FSDP_CONFIG)]
    else:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run([*launcher, *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _assert_same_run(two: dict, one: dict) -> None:
    assert two["world"] == 2 and two["backend"] == "gloo"
    assert two["losses"] == pytest.approx(one["losses"], rel=1e-5)
    assert two["params"].keys() == one["params"].keys()
    for name, values in one["params"].items():
        assert two["params"][name] == pytest.approx(values, rel=1e-4, abs=1e-6), name
    assert one["losses"][-1] < one["losses"][0]


@pytest.mark.slow  # two torchrun processes: ~20 s
def test_two_gloo_processes_match_one_process_on_the_same_global_batch(tmp_path):
    import ddp_worker

    _launch([str(HERE / "ddp_worker.py"), str(tmp_path / "ddp.json")])
    _assert_same_run(json.loads((tmp_path / "ddp.json").read_text())["straight"], ddp_worker.train(world=1, rank=0))


@pytest.mark.slow  # two accelerate-launched processes, twice: ~40 s
def test_fsdp_over_two_processes_matches_one_process_and_resumes_after_a_crash(tmp_path):
    import ddp_worker

    out, ckpt = tmp_path / "fsdp.json", tmp_path / "ckpt"
    proc = _launch([str(HERE / "ddp_worker.py"), str(out), str(ckpt)], fsdp=True)
    assert "FSDP (torch fully_shard, 3 shard groups) over 2 cpu processes" in proc.stdout  # really sharded
    first = json.loads(out.read_text())
    one = ddp_worker.train(world=1, rank=0)
    _assert_same_run(first["straight"], one)
    assert first["crashed"]["latest"] == "checkpoint-2"  # died in step 3, after the step-2 checkpoint
    proc = _launch([str(HERE / "ddp_worker.py"), str(out), str(ckpt), "--resume"], fsdp=True)
    assert "resumed from" in proc.stdout and "checkpoint-2 at step 2" in proc.stdout
    _assert_same_run(json.loads(out.read_text())["resumed"], one)


@pytest.mark.slow  # two accelerate-launched processes: ~20 s
def test_fsdp_full_fine_tuning_with_tied_embeddings_matches_one_process(tmp_path):
    import ddp_worker

    _launch([str(HERE / "ddp_worker.py"), str(tmp_path / "full.json"), "--full"], fsdp=True)
    two = json.loads((tmp_path / "full.json").read_text())["straight"]
    _assert_same_run(two, ddp_worker.train(world=1, rank=0, method="full"))


def test_data_shards_partition_the_global_stream(tiny_tok, examples):
    from tuneforge.tokenisation import batch_stream, encode_examples

    encs, _ = encode_examples(examples, tiny_tok)
    whole = batch_stream(encs, 2, tiny_tok.pad_token_id, seed=1)
    shards = [batch_stream(encs, 2, tiny_tok.pad_token_id, seed=1, num_shards=2, shard=r) for r in range(2)]
    for _ in range(6):
        for r in range(2):
            assert next(shards[r])["input_ids"].tolist() == next(whole)["input_ids"].tolist()


@pytest.mark.slow  # two processes running the CLI, and one in-process: ~40 s each
@pytest.mark.parametrize("fsdp", [False, True], ids=["ddp-torchrun", "fsdp-accelerate"])
def test_tuneforge_train_on_two_processes_writes_one_run_with_the_weights_of_one_process(
    tmp_path, tiny_lm, tiny_tok, examples, fsdp
):
    from safetensors.torch import load_file

    from tuneforge.cli import main
    from tuneforge.data.io import write_records

    tiny_lm.save_pretrained(tmp_path / "model")
    tiny_tok.save_pretrained(tmp_path / "model")
    write_records(examples, tmp_path / "train.jsonl")
    (tmp_path / "cfg.yaml").write_text(f"""model: {{name: {tmp_path / "model"}, dtype: float32}}
data: {{train: {tmp_path / "train.jsonl"}, eval: {tmp_path / "train.jsonl"}}}
adapter: {{method: lora, r: 4}}
train: {{steps: 4, batch_size: 1, lr: 0.01, warmup_ratio: 0.0, precision: fp32, log_every: 1}}
""")
    proc = _launch(["-m", "tuneforge.cli", "train", str(tmp_path / "cfg.yaml"), f"output_dir={tmp_path / 'run'}"], fsdp)
    run = tmp_path / "run"
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["steps"] == 4 and summary["final_loss"] < summary["first_loss"]
    assert [json.loads(x)["step"] for x in (run / "train_log.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    assert proc.stdout.count("Trained ") == 1  # the summary is printed by the main process only
    assert ("FSDP (torch fully_shard" in proc.stdout) == fsdp
    # one process with a batch of 2 sees the same global batches as two processes with 1 each
    main(["train", str(tmp_path / "cfg.yaml"), f"output_dir={tmp_path / 'one'}", "train.batch_size=2"])
    one_summary = json.loads((tmp_path / "one" / "train_summary.json").read_text())
    # compute accounting counts every process's tokens: D and 6ND as one process with the same batches
    assert summary["compute"]["tokens"] == one_summary["compute"]["tokens"] > 0
    assert summary["compute"]["c_train_6nd"] == one_summary["compute"]["c_train_6nd"]
    assert summary["compute"]["devices"] == 2
    for when in ("base", "tuned"):  # held-out loss, evaluated on the (sharded) model by both processes
        assert summary["eval"][when]["loss"] == pytest.approx(one_summary["eval"][when]["loss"], rel=1e-5)
    two_weights = load_file(run / "adapter" / "adapter_model.safetensors")
    one_weights = load_file(tmp_path / "one" / "adapter" / "adapter_model.safetensors")
    assert two_weights.keys() == one_weights.keys() and len(one_weights) > 0
    for name, tensor in one_weights.items():  # whole tensors, not one process's shards
        assert two_weights[name].shape == tensor.shape, name
        assert two_weights[name].flatten().tolist() == pytest.approx(tensor.flatten().tolist(), rel=1e-4, abs=1e-6), (
            name
        )


@pytest.mark.slow  # two torchrun processes answering: ~40 s
def test_two_processes_split_generation_and_write_the_same_answer_file_as_one(tmp_path, tiny_lm, tiny_tok):
    tiny_lm.save_pretrained(tmp_path / "model")
    tiny_tok.save_pretrained(tmp_path / "model")
    common = [f"models=[tiny={tmp_path / 'model'}]", "data.test_per_domain=3", "generation.max_new_tokens=12",
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
