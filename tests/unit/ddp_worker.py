"""Run by test_distributed.py under torchrun (2 processes, gloo on CPU) and in-process (1 process):
the same 3 optimizer steps over the same global batches of 4 examples, split across processes."""

import json
import sys

import torch

from tuneforge.models import tiny_model, tiny_tokenizer
from tuneforge.records import Example, Message
from tuneforge.tokenisation import collate, count_targets, encode_examples
from tuneforge.train.adapters import AdapterConfig, apply_adapter
from tuneforge.train.loop import Objective, TrainConfig, train_loop
from tuneforge.train.sft import sft_loss

STEPS, GLOBAL_BATCH = 3, 4


def train(world: int, rank: int) -> dict:
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
    batches = iter(
        [
            collate(enc[s * GLOBAL_BATCH + rank * per : s * GLOBAL_BATCH + (rank + 1) * per], tok.pad_token_id)
            for s in range(STEPS)
        ]
    )
    model = apply_adapter(tiny_model(tok, hidden=32, seed=0), AdapterConfig(r=4))
    cfg = TrainConfig(steps=STEPS, batch_size=per, lr=1e-2, warmup_ratio=0.0, precision="fp32")
    result = train_loop(model, batches, Objective("sft", sft_loss, count_targets), cfg)
    params = torch.cat([p.detach().flatten() for p in model.parameters() if p.requires_grad])
    return {"losses": result.losses, "params": params.tolist()}


if __name__ == "__main__":
    import torch.distributed as dist

    from tuneforge.train.loop import distributed_state

    state = distributed_state()
    out = train(state.num_processes, state.process_index)
    out["world"], out["backend"] = state.num_processes, dist.get_backend() if dist.is_initialized() else None
    if state.is_main_process:
        with open(sys.argv[1], "w") as f:
            json.dump(out, f)
