"""Every training objective, one line each, and the one fit path that runs them.

An entry names the objective's options (its `objective.*` keys), its builder (`build(ctx) ->
ObjectiveSetup`, in the objective's own module) and what the generic path must know about it:
what data it reads, whether it needs a frozen reference when the base weights train, whether it
packs rows, and whether it samples from the model it trains (then it is built on the adapted model).
`OBJECTIVES`, the CLI help, `train inspect`, the run fingerprint and the docs test are derived from
this table; adding an objective is a module with options + builder and one line here (and a bundled
`configs/<name>.yaml`, which a test asks for).

    model, result, evals = fit(model, tok, SFTOptions(), train_cfg, adapter_cfg, run_dir)
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneforge.chat_template import check_end_of_turn
from tuneforge.errors import ConfigError, suggest
from tuneforge.hardware import distributed_state
from tuneforge.records import Example
from tuneforge.train import distill, domain_adapt, dpo, grpo, kto, reward, sft
from tuneforge.train.adapters import AdapterConfig, apply_adapter, save_trained
from tuneforge.train.best import best_dir
from tuneforge.train.config import ModelConfig, SFTDataConfig
from tuneforge.train.context import BuildContext, ObjectiveOptions
from tuneforge.train.loop import ObjectiveSetup, TrainConfig, TrainResult, train_loop
from tuneforge.train.sharding import full_state_dict, load_trainable_state


@dataclass(frozen=True)
class ObjectiveEntry:
    name: str
    options: type[ObjectiveOptions]
    build: Callable[[BuildContext], ObjectiveSetup]
    data: str  # what data.train holds: "examples" (conversations) | "pairs" (preference pairs) | "prompts"
    summary: str  # one line for --help and the docs
    reference: bool = False  # needs a frozen copy of the base when the base weights themselves train
    packs: bool = False  # train.packing applies
    adapt_first: bool = False  # samples from the model it trains: built on the adapted model


REGISTRY: dict[str, ObjectiveEntry] = {
    e.name: e
    for e in (
        ObjectiveEntry(
            "sft", sft.SFTOptions, sft.build, "examples", "cross-entropy on the assistant tokens", packs=True
        ),
        ObjectiveEntry("dpo", dpo.DPOOptions, dpo.build, "pairs", "direct preference optimisation", reference=True),
        ObjectiveEntry("ipo", dpo.IPOOptions, dpo.build, "pairs", "identity preference optimisation", reference=True),
        ObjectiveEntry("simpo", dpo.SimPOOptions, dpo.build, "pairs", "reference-free, length-normalised margin"),
        ObjectiveEntry("orpo", dpo.ORPOOptions, dpo.build, "pairs", "SFT plus an odds-ratio penalty, no reference"),
        ObjectiveEntry("kto", kto.KTOOptions, kto.build, "pairs", "desirable / undesirable answers", reference=True),
        ObjectiveEntry("reward", reward.RewardOptions, reward.build, "pairs", "a reward model (Bradley–Terry)"),
        ObjectiveEntry(
            "grpo", grpo.GRPOOptions, grpo.build, "prompts", "online RL on prompts", reference=True, adapt_first=True
        ),
        ObjectiveEntry(
            "distill", distill.DistillOptions, distill.build, "examples", "KL to a teacher + CE", packs=True
        ),
        ObjectiveEntry(
            "domain_adaptation",
            domain_adapt.DomainAdaptationOptions,
            domain_adapt.build,
            "examples",
            "L_general + α·L_domain + β·KL to the base",
            reference=True,
        ),
    )
}
OBJECTIVES = tuple(REGISTRY)


class _ByName(Mapping):
    """name → one attribute of its entry, read from REGISTRY when asked (the config loader's
    variants and their help), so an entry added to REGISTRY is a valid `objective.name` at once."""

    def __init__(self, attribute: str):
        self.attribute = attribute

    def __getitem__(self, name: str) -> Any:
        return getattr(REGISTRY[name], self.attribute)

    def __iter__(self) -> Iterator[str]:
        return iter(REGISTRY)

    def __len__(self) -> int:
        return len(REGISTRY)


OPTIONS_BY_NAME, SUMMARY_BY_NAME = _ByName("options"), _ByName("summary")


def entry(name: str) -> ObjectiveEntry:
    if name not in REGISTRY:
        raise ConfigError(f"objective.name '{name}' unknown.{suggest(name, REGISTRY)} Use one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


def options_class(name: str) -> type[ObjectiveOptions]:
    """The options dataclass `objective.name=name` reads (the config loader's variant lookup)."""
    return entry(name).options


def eval_row(result: dict) -> dict:
    """An objective's held-out evaluation as a log row: the loss and its bootstrap 95% CI."""
    from tuneforge.intervals import ratio_ci

    lo, hi = result["ci"] if "ci" in result else ratio_ci(result["sums"], result["units"])
    return {"eval_loss": result["loss"], "eval_loss_lo": lo, "eval_loss_hi": hi}


def fit(
    model,
    tok,
    options: ObjectiveOptions,
    train: TrainConfig,
    adapter: AdapterConfig,
    run_dir: Path,
    data: SFTDataConfig | None = None,
    model_config: ModelConfig | None = None,
    device: str = "cpu",
    examples: list[Example] | None = None,
    eval_examples: list[Example] | None = None,
) -> tuple[Any, TrainResult, dict]:
    """Any objective, one path: build its loss and batches, adapt, train in the one loop, save to
    run_dir/adapter; returns (model, result, evaluations before/after as the objective summarises
    them). `examples` / `eval_examples` hand in data already loaded (else `data` names it)."""
    e = entry(options.name)
    if train.packing and not e.packs:
        packing = ", ".join(x.name for x in REGISTRY.values() if x.packs)
        raise ConfigError(f"train.packing is for {packing}; set train.packing=false for objective.name={e.name}")
    if (train.curriculum.enabled or train.active.enabled) and e.name != "sft":
        raise ConfigError(f"train.curriculum and train.active choose SFT examples; objective.name={e.name} reads none")
    if train.active.enabled and adapter.method in ("prefix_tuning", "prompt_tuning", "p_tuning"):
        raise ConfigError(
            f"train.active scores the pool with the model being trained; adapter.method={adapter.method} adds its "
            "virtual tokens only inside PEFT's wrapper, so the scores would ignore it. Use lora, ia3, bitfit or full"
        )
    check_end_of_turn(tok, model)
    state = distributed_state()  # under accelerate launch / torchrun each process trains on its own shard
    frozen = (  # the base weights themselves train: keep a frozen copy as the reference (2x the weights)
        copy.deepcopy(model).eval().requires_grad_(False)
        if e.reference and adapter.method in ("full", "bitfit")
        else None
    )
    ctx = BuildContext(
        model, tok, options, data or SFTDataConfig(), train, adapter, model_config or ModelConfig(), device,
        Path(run_dir), {"num_shards": state.num_processes, "shard": state.process_index}, frozen, examples,
        eval_examples,
    )  # fmt: skip
    if e.adapt_first:
        model = apply_adapter(model, adapter, train.seed)
        setup = e.build(dataclasses.replace(ctx, model=model))
    else:
        setup = e.build(ctx)
        model = apply_adapter(model if setup.model is None else setup.model, adapter, train.seed)
    if train.eval_every and not (setup.before and "loss" in setup.before):
        raise ConfigError(
            f"train.eval_every needs a held-out loss: objective '{e.name}' "
            + ("has none" if setup.before is None else "was given no held-out examples (data.eval)")
        )
    result = train_loop(
        model,
        setup.batches,
        setup.objective,
        train,
        run_dir / "train_log.jsonl",
        checkpoint_dir=run_dir / "checkpoints",
        evaluate=(lambda m: eval_row(setup.evaluate(m))) if train.eval_every else None,
    )
    if result.best_step is not None and result.best_step != result.steps:
        from safetensors.torch import load_file

        # the last weights stay available beside the run's adapter, which becomes the best step's
        gathered = full_state_dict(model)
        if state.is_main_process:
            save_trained(model, tok, run_dir / "adapter-last", gathered)
        best = load_file(best_dir(run_dir / "checkpoints", result.best_step) / "trainable.safetensors")
        load_trainable_state(model, best)
    gathered = full_state_dict(model)  # a sharded (FSDP) model's weights, gathered on the main process
    if state.is_main_process:
        save_trained(model, tok, run_dir / "adapter", gathered)
    state.wait_for_everyone()
    after = setup.evaluate(model)
    summary = setup.summarise(setup.before, after) if setup.summarise else {"base": setup.before, "tuned": after}
    return model, result, summary
