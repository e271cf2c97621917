"""`tuneforge data build CONFIG`: sources → generators → augmentation → filters → mix, into one
dataset directory. Filters run cheapest first: length, format and (optional) safety checks, exact/near dedup,
decontamination, LLM-judge quality, IFD selection. A `preferences:` step (its own, or beside the
SFT data) samples a policy on prompts and pairs the best sample with the worst by a judge, a
reward model or a rule (`data/preferences.py`).

    OUT/train.jsonl       the dataset (TRL `messages` records, provenance in source / meta)
    OUT/preferences.jsonl preference pairs (TRL `prompt`/`chosen`/`rejected`; samples, scores and verdicts in meta)
    OUT/stages/*.jsonl    what each source or generator produced, before filtering
    OUT/removed.jsonl     every record a filter dropped, with the filter and the reason
    OUT/manifest.json     counts per stage, source and domain; filter removals; LLM calls and cache hits
    OUT/datacard.md       the same, for people
    OUT/cache.sqlite      every LLM answer (a rerun or a killed run repeats no call)
    OUT/config.yaml       the resolved config

Generation goes through `CachedLLM`, which commits each batch before moving on, and every file is
written atomically at the end, so a run killed at any point and started again produces every
record exactly once and only asks the model what it had not answered yet.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tuneforge.config import save_config
from tuneforge.data.build_config import BuildConfig
from tuneforge.data.datacard import datacard
from tuneforge.data.decontam import decontaminate
from tuneforge.data.dedup import Removal
from tuneforge.data.filters import apply_filters
from tuneforge.data.io import write_records
from tuneforge.data.mix import mix_by_source
from tuneforge.data.preferences import build_preferences
from tuneforge.data.rules import load_rule
from tuneforge.data.seed import eval_items, load_spec
from tuneforge.data.synthesis import builds_sft, needs_llm, synthesize
from tuneforge.errors import ConfigError, DataError
from tuneforge.files import check_output_dir, run_directory, write_text_atomic
from tuneforge.hardware import hardware_summary
from tuneforge.llm.config import make_llm
from tuneforge.records import EvalItem, Example, Message, PreferencePair
from tuneforge.safety.training_data import unsafe_training_record


def build_dataset(cfg: BuildConfig) -> Path:
    """Run the declared recipe; returns the dataset directory."""
    out = Path(cfg.output_dir)
    check_output_dir(out, "data build")  # a folder of the user's is refused before any work
    # every input is read once before anything is written: a bad file fails here, not after the LLM calls
    if not builds_sft(cfg) and not cfg.preferences.prompts:
        raise ConfigError(
            "the build config enables no source: set manual.files, distill.prompts, "
            "self_instruct / evol / idea_mcts / ds2 .enabled=true, or preferences.prompts"
        )
    inputs = [
        *cfg.manual.files,
        cfg.distill.prompts,
        *cfg.filters.decontaminate,
        cfg.self_instruct.seeds if cfg.self_instruct.enabled else "",
        cfg.evol.seeds if cfg.evol.enabled else "",
        cfg.idea_mcts.seeds if cfg.idea_mcts.enabled else "",
        cfg.preferences.prompts,
    ]
    for spec in dict.fromkeys(i for i in inputs if i):
        load_spec(spec)
    rule = load_rule(cfg.preferences.rule) if cfg.preferences.prompts and cfg.preferences.scorer == "rule" else None
    with run_directory(out, "data build"):
        (out / "stages").mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
        stages: dict[str, list[Example]] = {}
        reports: dict = {}
        removed: list[tuple[str, Removal]] = []
        filter_reports: dict = {}
        pooled = final = []
        llm = make_llm(cfg.llm, out / "cache.sqlite") if needs_llm(cfg) else None
        if builds_sft(cfg):
            stages, reports = synthesize(cfg, llm)
            for name, rows in stages.items():
                write_records(rows, out / "stages" / f"{name}.jsonl")
            pooled = [r for rows in stages.values() for r in rows]
            pooled, removed, filter_reports = apply_filters(pooled, cfg.filters, llm, unsafe_training_record)
            final = mix_by_source(pooled, cfg.mix.weights, cfg.mix.ratio, cfg.mix.seed)
            write_records(final, out / "train.jsonl")
        if cfg.preferences.prompts:
            pairs, reports["preferences"], gone = _preferences(cfg, out, rule)
            removed += gone
            write_records(pairs, out / "preferences.jsonl")
        with open(out / "removed.jsonl.partial", "w", encoding="utf-8") as f:
            f.writelines(json.dumps({"filter": name, **r.to_dict()}, ensure_ascii=False) + "\n" for name, r in removed)
        (out / "removed.jsonl.partial").replace(out / "removed.jsonl")
        manifest = {
            "stages": {name: len(rows) for name, rows in stages.items()},
            "generated_total": sum(len(rows) for rows in stages.values()),
            "removed": dict(Counter(name for name, _ in removed)),
            "removed_reasons": dict(Counter(f"{name}: {r.reason.split(' (')[0]}" for name, r in removed)),
            "after_filters": len(pooled),
            "final": len(final),
            "final_by_source": dict(Counter(r.source.split("/")[0] for r in final)),
            "final_by_domain": dict(Counter(r.domain or "(none)" for r in final)),
            "llm": {
                "model": cfg.llm.model,
                "kind": cfg.llm.kind,
                "calls": llm.calls if llm else 0,
                "cache_hits": llm.hits if llm else 0,
                "dtype": getattr(llm.llm, "dtype", None) if llm else None,
            },
            # Greedy decoding is deterministic on one machine and precision; a CPU with another ISA or
            # another precision (bf16 vs fp32) rounds differently, and a 135M teacher's answers (hence
            # what the filters keep) can then change. This says where the records were made.
            "hardware": hardware_summary(),
            "reports": reports | {f"filter:{k}": v for k, v in filter_reports.items()},
        }
        write_text_atomic(out / "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        write_text_atomic(out / "datacard.md", datacard(cfg, manifest))
        return out


def _preferences(cfg: BuildConfig, out: Path, rule) -> tuple[list, dict, list[tuple[str, Removal]]]:
    """The preference step: its prompts decontaminated like SFT records (n-gram overlap with
    `filters.decontaminate`), then sampled and scored."""
    p = cfg.preferences
    records = [_prompt_record(r, p.prompts) for r in load_spec(p.prompts)]
    records = records[: p.limit] if p.limit else records
    gone: list[Removal] = []
    if cfg.filters.decontaminate:
        records, gone = decontaminate(records, eval_items(cfg.filters.decontaminate), cfg.filters.ngram)
    policy = make_llm(p.policy, out / "cache.sqlite", desc="sample")
    judge = score_fn = None
    if p.scorer.startswith("judge"):
        judge = policy if p.judge == p.policy else make_llm(p.judge, out / "cache.sqlite", desc="judge")
    elif p.scorer == "reward":
        from tuneforge.train.reward import load_reward_model, score_answers

        reward_model, reward_tok = load_reward_model(p.reward_model)
        score_fn = lambda prompts, answers: score_answers(reward_model, reward_tok, prompts, answers)  # noqa: E731
    pairs, report = build_preferences(records, policy, p, judge=judge, score_fn=score_fn, rule=rule)
    report |= {
        "decontaminated_prompts": len(gone),
        "llm_calls": policy.calls + (judge.calls if judge is not None and judge is not policy else 0),
        "cache_hits": policy.hits + (judge.hits if judge is not None and judge is not policy else 0),
    }
    print(
        f"      preferences: {report['pairs']} pairs from {report['prompts']} prompts × {p.k} samples "
        f"({report['ties']} ties, {report['too_few_scored']} with < 2 scored samples, "
        f"{report['parse_failures']} unparsed verdicts)",
        flush=True,
    )
    return pairs, report, [("preferences:decontaminate", g) for g in gone]


def _prompt_record(r, spec: str) -> Example:
    """A prompt to sample, as an Example whose last assistant turn is the reference (rules compare
    with it): SFT records as they are; a preference pair's chosen answer; an eval item's reference."""
    if isinstance(r, Example):
        return r
    if isinstance(r, PreferencePair):
        return Example(messages=[*r.prompt, Message("assistant", r.chosen)], id=r.id, domain=r.domain, task=r.task)
    if isinstance(r, EvalItem):
        ref = r.references[0] if r.references else ""
        return Example(messages=[*r.messages, Message("assistant", ref)], id=r.id, domain=r.domain, task=r.task)
    raise DataError(f"preferences.prompts: {type(r).__name__} records hold no prompt to sample", path=spec)
