"""The sources and generators of a data build: human-written files (with an optional rating
threshold), teacher distillation, Self-Instruct, Evol-Instruct, IDEA-MCTS, DS²-Instruct, then
augmentation — each stage's records with its report. Every record carries its source."""

from __future__ import annotations

from tuneforge.data.augment import AugmentConfig, augment
from tuneforge.data.build_config import BuildConfig
from tuneforge.data.ds2 import DS2Config, ds2_instruct
from tuneforge.data.evol_instruct import EvolConfig, evol_instruct
from tuneforge.data.idea_mcts import IdeaMCTSConfig, idea_mcts
from tuneforge.data.seed import load_spec
from tuneforge.data.self_instruct import SelfInstructConfig, self_instruct
from tuneforge.data.teacher import distill
from tuneforge.data.tool_questions import tool_synth
from tuneforge.errors import ConfigError, DataError
from tuneforge.llm.cache import CachedLLM
from tuneforge.llm.client import Sampling
from tuneforge.records import Example


def _rating(record: Example, key: str, spec: str) -> float | None:
    """A record's human rating: one number, or several raters' numbers (their mean); None if unrated."""
    value = record.meta.get(key)
    if value is None:
        return None
    values = value if isinstance(value, list) else [value]
    try:
        if not values or any(isinstance(v, bool) for v in values):
            raise ValueError
        return sum(float(v) for v in values) / len(values)
    except (TypeError, ValueError):
        raise DataError(
            f"record '{record.id}' has rating {value!r} in meta.{key}; give a number or a list of "
            "numbers (one per rater, averaged)",
            path=spec,
            field=f"meta.{key}",
        ) from None


def _required(llm: CachedLLM | None) -> CachedLLM:
    if llm is None:
        raise ConfigError(
            "this build generates records (distill / self_instruct / evol / idea_mcts / ds2 / tool_synth): "
            "give it an LLM"
        )
    return llm


def synthesize(cfg: BuildConfig, llm: CachedLLM | None) -> tuple[dict[str, list[Example]], dict]:
    """Run the sources, generators and augmentations of `cfg`: ({stage: records}, {stage: report})."""
    stages: dict[str, list[Example]] = {}
    reports: dict[str, dict] = {}
    if cfg.manual.files:
        rows, ratings = [], []
        for spec in cfg.manual.files:
            for r in load_spec(spec, origin=True):
                rows.append(r)
                ratings.append(_rating(r, cfg.manual.rating_key, spec))
        tau = cfg.manual.rating_threshold
        rated = [q for q in ratings if q is not None]
        kept = [r for r, q in zip(rows, ratings) if tau <= 0 or (q is not None and q >= tau)]
        reports["manual"] = {
            "imported": len(rows),
            "rated": len(rated),
            "kept": len(kept),
            "q_manual": sum(q >= tau for q in rated) / len(rated) if rated and tau > 0 else None,
        }
        stages["manual"] = [_with_source(r, "manual") for r in kept]
    if cfg.distill.prompts:
        prompts = load_spec(cfg.distill.prompts)
        stages["distill"], reports["distill"] = distill(
            _required(llm), prompts, Sampling(max_new_tokens=cfg.llm.max_new_tokens)
        )
    if cfg.self_instruct.enabled:
        si = SelfInstructConfig(**{k: getattr(cfg.self_instruct, k) for k in SelfInstructConfig.__dataclass_fields__})
        stages["self_instruct"], reports["self_instruct"] = self_instruct(
            _required(llm), load_spec(cfg.self_instruct.seeds), si
        )
    if cfg.evol.enabled:
        ev = EvolConfig(**{k: getattr(cfg.evol, k) for k in EvolConfig.__dataclass_fields__})
        stages["evol"], reports["evol"] = evol_instruct(_required(llm), load_spec(cfg.evol.seeds)[: cfg.evol.limit], ev)
    if cfg.idea_mcts.enabled:
        im = IdeaMCTSConfig(**{k: getattr(cfg.idea_mcts, k) for k in IdeaMCTSConfig.__dataclass_fields__})
        seeds = load_spec(cfg.idea_mcts.seeds)[: cfg.idea_mcts.limit]
        stages["idea_mcts"], reports["idea_mcts"] = idea_mcts(_required(llm), seeds, im)
    if cfg.ds2.enabled:
        stages["ds2"], reports["ds2"] = [], {}
        for domain in cfg.ds2.domains:
            fields = {k: getattr(cfg.ds2, k) for k in DS2Config.__dataclass_fields__} | {"domain": domain}
            records, report = ds2_instruct(_required(llm), DS2Config(**fields))
            stages["ds2"] += records
            reports["ds2"][domain] = report
    if cfg.tool_synth.enabled:
        stages["tool_synth"], reports["tool_synth"] = tool_synth(_required(llm), cfg.tool_synth, cfg.llm.max_new_tokens)
    if _augments(cfg.augment):
        if not stages:
            raise ConfigError("augment needs records to augment: set manual.files or enable a generator")
        stages["augment"], reports["augment"] = augment([r for rows in stages.values() for r in rows], cfg.augment, llm)
    return stages, reports


def builds_sft(cfg: BuildConfig) -> bool:
    """Whether the config makes SFT records (train.jsonl); preferences alone make only pairs."""
    return bool(
        cfg.manual.files
        or cfg.distill.prompts
        or cfg.self_instruct.enabled
        or cfg.evol.enabled
        or cfg.idea_mcts.enabled
        or cfg.ds2.enabled
        or cfg.tool_synth.enabled
    )


def _augments(cfg: AugmentConfig) -> bool:
    return bool(cfg.mosaic or cfg.paraphrase or cfg.token)


def needs_llm(cfg: BuildConfig) -> bool:
    return bool(
        cfg.distill.prompts
        or cfg.self_instruct.enabled
        or cfg.evol.enabled
        or cfg.idea_mcts.enabled
        or cfg.ds2.enabled
        or cfg.tool_synth.enabled
        or cfg.augment.paraphrase
        or cfg.filters.judge
    )


def _with_source(r: Example, source: str) -> Example:
    r.source = r.source or source
    return r
