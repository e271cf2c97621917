"""Shared + task-specific LoRA adapters: the `per_task_lora` multi-task baseline (MTL-LoRA-style).

Every seen task t gets its own low-rank adapter ΔW_t beside one shared adapter ΔW_s on the same
layers; a task's examples run through W + ΔW_s + ΔW_t (PEFT sums the active LoRA adapters), so
ΔW_s learns what the tasks share and ΔW_t what only t needs. Tasks without an adapter — every
unseen task — run through W + ΔW_s alone. Built on PEFT's multi-adapter LoRA (`add_adapter` +
`set_adapter([...])`): the saved folders load back with `PeftModel.from_pretrained` /
`load_adapter`, one per adapter name.
"""

from __future__ import annotations

import re
from dataclasses import replace

import torch

from tuneforge.errors import ConfigError

SHARED = "default"  # PEFT's name for the adapter get_peft_model creates


class TaskAdapters:
    """Names the adapters of a PEFT LoRA model and switches which ones are active."""

    def __init__(self, model, tasks: list[str], r: int = 4, alpha: int = 8):
        from peft import LoraConfig

        if not hasattr(model, "peft_config") or not isinstance(model.peft_config.get(SHARED), LoraConfig):
            raise ConfigError("per_task_lora needs a LoRA model (adapter.method: lora) as the shared adapter")
        self.model = model
        self.names = {t: f"task{i}_{re.sub(r'[^A-Za-z0-9_]', '_', t)[:40]}" for i, t in enumerate(tasks)}
        base = model.peft_config[SHARED]
        for name in self.names.values():
            model.add_adapter(name, replace(base, r=r, lora_alpha=alpha))
        self.all_names = [SHARED, *self.names.values()]
        model.base_model.set_adapter(self.all_names)  # every adapter trainable before the optimizer is built
        self.params = {n: [p for pn, p in model.named_parameters() if f".{n}." in pn] for n in self.all_names}
        if any(not ps for ps in self.params.values()):
            raise ConfigError("an adapter of per_task_lora has no parameters (adapter.target_modules)")

    def use(self, task: str | None) -> list[torch.nn.Parameter]:
        """Activate shared (+ `task`'s own adapter when it has one); returns the parameters in play."""
        own = self.names.get(task) if task is not None else None
        self.model.base_model.set_adapter([SHARED, own] if own else [SHARED])
        return self.params[SHARED] + (self.params[own] if own else [])

    def save(self, out_dir) -> None:
        """One PEFT adapter folder per adapter (shared in OUT/, task adapters in OUT/<name>/)."""
        self.model.save_pretrained(out_dir, selected_adapters=self.all_names)
