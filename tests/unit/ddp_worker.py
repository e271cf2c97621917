"""Run by test_distributed.py under torchrun / `accelerate launch` (2 processes, gloo on CPU; DDP, or
FSDP with configs/accelerate/fsdp.yaml) and in-process (1 process): the same optimizer steps over
the same global batches of 4 examples, split across processes. `python ddp_worker.py OUT [CKPT]`:
with CKPT, the run is also repeated with a crash after the step-2 checkpoint, and OUT.resumed holds
the run resumed from it (launch again with `--resume`); `--full` trains every weight instead of LoRA."""

import json
import sys

from tuneforge.models import tiny_model, tiny_tokenizer
from tuneforge.records import Example, Message
from tuneforge.tokenisation import collate, count_targets, encode_examples
from tuneforge.train.adapters import AdapterConfig, apply_adapter
from tuneforge.train.loop import Objective, TrainConfig, train_loop
from tuneforge.train.sft import sft_loss
from tuneforge.train.sharding import trainable_state

STEPS, GLOBAL_BATCH = 4, 4


def train(world: int, rank: int, checkpoint_dir=None, crash_after_step: int = 0, method: str = "lora") -> dict:
    tok = tiny_tokenizer()
    examples = [
        Example(
            messages=[
                Message("user", f"Question {i}: what now?"),
                Message("assistant", "Please consult a professional. " * (1 + i % 3)),
            ],
            id=str(i),
        )
        for i in range(STEPS * GLOBAL_BATCH)
    ]
    enc, _ = encode_examples(examples, tok)
    per = GLOBAL_BATCH // world

    def batches():
        for s in range(STEPS):
            if crash_after_step and s == crash_after_step:
                raise KeyboardInterrupt("simulated crash")
            yield collate(enc[s * GLOBAL_BATCH + rank * per : s * GLOBAL_BATCH + (rank + 1) * per], tok.pad_token_id)

    model = apply_adapter(tiny_model(tok, hidden=32, seed=0), AdapterConfig(method=method, r=4))
    cfg = TrainConfig(
        steps=STEPS,
        batch_size=per,
        lr=1e-2,
        warmup_ratio=0.0,
        precision="fp32",
        checkpoint_every=2 * bool(checkpoint_dir),
    )
    result = train_loop(model, batches(), Objective("sft", sft_loss, count_targets), cfg, checkpoint_dir=checkpoint_dir)
    params, _ = trainable_state(model)  # gathered on the main process when the model is sharded
    return {"losses": result.losses, "params": {n: t.flatten().tolist() for n, t in params.items()}}


if __name__ == "__main__":
    import torch.distributed as dist

    from tuneforge.train.loop import distributed_state

    state = distributed_state()
    flags = [a for a in sys.argv[1:] if a.startswith("--")]
    out, *rest = [a for a in sys.argv[1:] if not a.startswith("--")]
    ckpt, method = rest[0] if rest else None, "full" if "--full" in flags else "lora"
    world, rank = state.num_processes, state.process_index
    if "--resume" in flags:
        results = {"resumed": train(world, rank, ckpt, method=method)}
    else:
        results = {"straight": train(world, rank, method=method)}
        if ckpt:
            try:
                train(world, rank, ckpt, crash_after_step=3, method=method)
            except KeyboardInterrupt:
                results["crashed"] = {"latest": open(f"{ckpt}/latest").read()}
    for r in results.values():
        r["world"], r["backend"] = state.num_processes, dist.get_backend() if dist.is_initialized() else None
    if state.is_main_process:
        with open(out, "w") as f:
            json.dump(results, f)
