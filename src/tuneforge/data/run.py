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
from dataclasses import dataclass, field
from pathlib import Path

from tuneforge.config import SEED, save_config
from tuneforge.data.augment import AugmentConfig, augment
from tuneforge.data.decontam import decontaminate, near_matches
from tuneforge.data.dedup import Removal, deduplicate
from tuneforge.data.ds2 import DS2Config, ds2_instruct
from tuneforge.data.evol_instruct import EvolConfig, evol_instruct
from tuneforge.data.ifd import ifd_scores, select_by_ifd
from tuneforge.data.io import read_records, write_records
from tuneforge.data.mix import mix_counts, mix_datasets
from tuneforge.data.preferences import PreferenceConfig, build_preferences
from tuneforge.data.quality import judge_quality
from tuneforge.data.rules import load_rule
from tuneforge.data.seed import load_examples
from tuneforge.data.self_instruct import SelfInstructConfig, self_instruct
from tuneforge.data.teacher import distill
from tuneforge.errors import ConfigError, DataError
from tuneforge.files import check_output_dir, run_directory, write_text_atomic
from tuneforge.hardware import hardware_summary
from tuneforge.llm.cache import CachedLLM
from tuneforge.llm.client import Sampling
from tuneforge.llm.config import LLMConfig, make_llm
from tuneforge.models import EMBEDDED_MODEL
from tuneforge.records import EvalItem, Example, Message, PreferencePair
from tuneforge.safety.training_data import unsafe_training_record

TEMPLATE_TOKENS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|start_header_id|>", "[INST]")


@dataclass
class ManualConfig:
    files: list[str] = field(default_factory=list, metadata={"help": "files (any format) or seed specs to import"})
    rating_key: str = field(default="rating", metadata={"help": "meta key holding a human rating"})
    rating_threshold: float = field(default=0.0, metadata={"help": "τ: keep records rated ≥ τ (0 = keep all)", "ge": 0})


@dataclass
class DistillStep:
    prompts: str = field(default="", metadata={"help": "prompts to answer with the teacher ('' = off)"})


@dataclass
class SelfInstructStep(SelfInstructConfig):
    enabled: bool = field(default=False, metadata={"help": "run Self-Instruct"})
    seeds: str = field(default="seed:train", metadata={"help": "seed tasks (our data, or a Self-Instruct seed file)"})


@dataclass
class EvolStep(EvolConfig):
    enabled: bool = field(default=False, metadata={"help": "run Evol-Instruct"})
    seeds: str = field(default="seed:train", metadata={"help": "instructions to evolve"})
    limit: int = field(default=20, metadata={"help": "evolve the first N seeds", "ge": 1})


@dataclass
class DS2Step(DS2Config):
    enabled: bool = field(default=False, metadata={"help": "run DS²-Instruct"})
    domains: list[str] = field(
        default_factory=lambda: ["healthcare"], metadata={"help": "domains to synthesise", "min_len": 1}
    )


@dataclass
class FilterConfig:
    min_response_words: int = field(default=1, metadata={"help": "drop records with shorter responses", "ge": 0})
    max_response_words: int = field(
        default=0, metadata={"help": "drop records with longer responses (0 = off)", "ge": 0}
    )
    format: bool = field(
        default=True,
        metadata={
            "help": "drop records with no instruction, template tokens "
            "in the text, or a response that repeats the instruction"
        },
    )
    safety: bool = field(
        default=False,
        metadata={
            "help": "drop risky requests answered without refusal, caution or a referral (tuneforge.safety detectors)"
        },
    )
    dedup: bool = field(default=True, metadata={"help": "remove exact and near duplicates"})
    dedup_threshold: float = field(default=0.7, metadata={"help": "Jaccard of word 5-grams", "ge": 0, "le": 1})
    decontaminate: list[str] = field(
        default_factory=lambda: ["seed:test"], metadata={"help": "evaluation sets to protect ([] = off)"}
    )
    ngram: int = field(default=13, metadata={"help": "decontamination n-gram length", "ge": 1})
    near_threshold: float = field(
        default=0.0,
        metadata={
            "help": "also find paraphrases of evaluation prompts: MiniLM cosine ≥ this is a near match, listed "
            "in the manifest (0 = off; 0.8 catches rewordings, see data/README.md)",
            "ge": 0,
            "le": 1,
        },
    )
    near_remove: bool = field(default=False, metadata={"help": "remove near matches instead of only reporting them"})
    score_sources: list[str] = field(
        default_factory=list,
        metadata={"help": "sources the judge and IFD score, e.g. [ds2, self_instruct] ([] = all; others pass)"},
    )
    judge: bool = field(default=False, metadata={"help": "LLM-judge quality scoring (uses llm.*)"})
    judge_threshold: float = field(
        default=6.0, metadata={"help": "keep records the judge rates ≥ this (1-10)", "ge": 1, "le": 10}
    )
    judge_drop_unparsed: bool = field(default=False, metadata={"help": "also drop records whose verdict is unreadable"})
    ifd: bool = field(default=False, metadata={"help": "IFD selection: loss with instruction ÷ loss without"})
    ifd_model: str = field(default=EMBEDDED_MODEL, metadata={"help": "causal LM that scores IFD"})
    ifd_max: float = field(default=1.0, metadata={"help": "drop records with IFD ≥ this", "gt": 0})
    ifd_top: float = field(
        default=1.0, metadata={"help": "then keep this fraction with the highest IFD", "gt": 0, "le": 1}
    )


@dataclass
class MixConfig:
    weights: dict[str, float] = field(
        default_factory=dict, metadata={"help": "source → weight ({} = keep all as they are)", "ge": 0}
    )
    ratio: float = field(default=1.0, metadata={"help": "α: keep M = α·N records after mixing", "gt": 0})
    seed: int = field(default=0, metadata={"help": "mixing seed", **SEED})


@dataclass
class BuildConfig:
    output_dir: str = field(default="runs/data", metadata={"help": "dataset directory"})
    llm: LLMConfig = field(default_factory=LLMConfig)
    manual: ManualConfig = field(default_factory=ManualConfig)
    distill: DistillStep = field(default_factory=DistillStep)
    self_instruct: SelfInstructStep = field(default_factory=SelfInstructStep)
    evol: EvolStep = field(default_factory=EvolStep)
    ds2: DS2Step = field(default_factory=DS2Step)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    mix: MixConfig = field(default_factory=MixConfig)
    preferences: PreferenceConfig = field(default_factory=PreferenceConfig)


def load_spec(spec, origin: bool = False) -> list:
    """Records of a data spec: `seed:...` for shipped data, else a file in any format (with
    `origin`, each record's meta names its source_file and line)."""
    spec = str(spec)
    return load_examples(spec) if spec.startswith("seed:") else read_records(spec, origin=origin)


def eval_items(specs: list[str]) -> list[EvalItem]:
    """The evaluation sets to protect (`filters.decontaminate`), as eval items."""
    return [EvalItem.from_example(e) if isinstance(e, Example) else e for spec in specs for e in load_spec(spec)]


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
        raise ConfigError("this build generates records (distill / self_instruct / evol / ds2): give it an LLM")
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
    if cfg.ds2.enabled:
        stages["ds2"], reports["ds2"] = [], {}
        for domain in cfg.ds2.domains:
            fields = {k: getattr(cfg.ds2, k) for k in DS2Config.__dataclass_fields__} | {"domain": domain}
            records, report = ds2_instruct(_required(llm), DS2Config(**fields))
            stages["ds2"] += records
            reports["ds2"][domain] = report
    if _augments(cfg.augment):
        if not stages:
            raise ConfigError("augment needs records to augment: set manual.files or enable a generator")
        stages["augment"], reports["augment"] = augment([r for rows in stages.values() for r in rows], cfg.augment, llm)
    return stages, reports


def builds_sft(cfg: BuildConfig) -> bool:
    """Whether the config makes SFT records (train.jsonl); preferences alone make only pairs."""
    return bool(
        cfg.manual.files or cfg.distill.prompts or cfg.self_instruct.enabled or cfg.evol.enabled or cfg.ds2.enabled
    )


def _augments(cfg: AugmentConfig) -> bool:
    return bool(cfg.mosaic or cfg.paraphrase or cfg.token)


def needs_llm(cfg: BuildConfig) -> bool:
    return bool(
        cfg.distill.prompts
        or cfg.self_instruct.enabled
        or cfg.evol.enabled
        or cfg.ds2.enabled
        or cfg.augment.paraphrase
        or cfg.filters.judge
    )


def format_problem(r: Example) -> str:
    """Why a record fails the format check ('' = it passes)."""
    if not r.instruction.strip():
        return "no instruction"
    text = "\n".join(m.content for m in r.messages)
    if any(t in text for t in TEMPLATE_TOKENS):
        return "chat-template tokens in the text"
    if " ".join(r.response.split()).lower() == " ".join(r.instruction.split()).lower():
        return "response repeats the instruction"
    return ""


def apply_filters(
    pooled: list[Example], cfg: FilterConfig, llm: CachedLLM | None = None
) -> tuple[list[Example], list[tuple[str, Removal]], dict]:
    """Length and format checks → dedup → decontamination → LLM judge → IFD, in that order (the
    costly model-based filters see only what the cheap ones kept). Returns (kept, [(filter,
    removal)], {filter: report})."""
    removed: list[tuple[str, Removal]] = []
    reports: dict[str, dict] = {}
    kept = []
    for r in pooled:
        n = len(r.response.split())
        why = (
            f"response shorter than {cfg.min_response_words} words"
            if n < cfg.min_response_words
            else f"response longer than {cfg.max_response_words} words"
            if cfg.max_response_words and n > cfg.max_response_words
            else ""
        )
        if why:
            removed.append(("length", Removal(r.id, why)))
        elif cfg.format and (why := format_problem(r)):
            removed.append(("format", Removal(r.id, why)))
        elif cfg.safety and (why := unsafe_training_record(r)):
            removed.append(("safety", Removal(r.id, why)))
        else:
            kept.append(r)
    if cfg.dedup:
        kept, gone = deduplicate(kept, cfg.dedup_threshold, part="instruction")
        removed += [("dedup", g) for g in gone]
    if cfg.decontaminate:
        evals = eval_items(cfg.decontaminate)
        kept, gone = decontaminate(kept, evals, cfg.ngram)
        removed += [("decontaminate", g) for g in gone]
        if cfg.near_threshold > 0:
            from tuneforge.models import EMBEDDED_ENCODER, load_encoder

            encoder = load_encoder(EMBEDDED_ENCODER)
            near = near_matches(kept, evals, lambda t: encoder.encode(t, batch_size=64), cfg.near_threshold)
            reports["near_matches"] = {
                "encoder": EMBEDDED_ENCODER,
                "threshold": cfg.near_threshold,
                "n": len(near),
                "removed": cfg.near_remove,
                "matches": near[:100],
            }
            if cfg.near_remove:
                ids = {m["id"] for m in near}
                removed += [
                    (
                        "near_match",
                        Removal(
                            m["id"],
                            f"paraphrase of evaluation item {m['eval_id']} (cosine {m['cosine']})",
                            m["eval_id"],
                            detail=m["eval_prompt"],
                        ),
                    )
                    for m in near
                ]
                kept = [r for r in kept if r.id not in ids]
            elif near:
                print(
                    f"      {len(near)} training prompts are near matches (cosine ≥ {cfg.near_threshold}) of "
                    "evaluation prompts: listed in manifest.json reports.near_matches; "
                    "filters.near_remove=true removes them",
                    flush=True,
                )
    scored = [r for r in kept if not cfg.score_sources or r.source.split("/")[0] in cfg.score_sources]
    passed = {id(r) for r in kept} - {id(r) for r in scored}
    if cfg.judge:
        if llm is None:
            raise ConfigError("filters.judge needs an LLM (llm.kind / llm.model)")
        scored, gone, reports["judge"] = judge_quality(llm, scored, cfg.judge_threshold, cfg.judge_drop_unparsed)
        removed += [("judge", g) for g in gone]
    if cfg.ifd and scored:
        from tuneforge.models import load_model

        model, tok = load_model(cfg.ifd_model, "auto", "sdpa")
        scores = ifd_scores(model, tok, scored)
        scored, gone, reports["ifd"] = select_by_ifd(scored, scores, cfg.ifd_max, cfg.ifd_top)
        removed += [("ifd", g) for g in gone]
    survivors = {id(r) for r in scored} | passed
    kept = [r for r in kept if id(r) in survivors]
    return kept, removed, reports


def build_dataset(cfg: BuildConfig) -> Path:
    """Run the declared recipe; returns the dataset directory."""
    out = Path(cfg.output_dir)
    check_output_dir(out, "data build")  # a folder of the user's is refused before any work
    # every input is read once before anything is written: a bad file fails here, not after the LLM calls
    if not builds_sft(cfg) and not cfg.preferences.prompts:
        raise ConfigError(
            "the build config enables no source: set manual.files, distill.prompts, "
            "self_instruct / evol / ds2 .enabled=true, or preferences.prompts"
        )
    inputs = [
        *cfg.manual.files,
        cfg.distill.prompts,
        *cfg.filters.decontaminate,
        cfg.self_instruct.seeds if cfg.self_instruct.enabled else "",
        cfg.evol.seeds if cfg.evol.enabled else "",
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
            pooled, removed, filter_reports = apply_filters(pooled, cfg.filters, llm)
            final = _mix(pooled, cfg.mix)
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


def _with_source(r: Example, source: str) -> Example:
    r.source = r.source or source
    return r


def _mix(pooled: list[Example], cfg: MixConfig) -> list[Example]:
    if not cfg.weights and cfg.ratio == 1.0:
        return pooled
    groups: dict[str, list[Example]] = {}
    for r in pooled:
        groups.setdefault(r.source.split("/")[0], []).append(r)
    names = list(groups)
    unknown = [n for n in cfg.weights if n not in groups]
    if unknown:
        raise ConfigError(f"mix.weights names {unknown}, but the sources present are {names}")
    unlisted = [n for n in names if cfg.weights and n not in cfg.weights]
    if unlisted:  # silently weighting them 0 would drop whole sources
        raise ConfigError(
            f"mix.weights gives no weight to the sources {unlisted} ({sum(len(groups[n]) for n in unlisted)} "
            f"records), so they would be dropped. Give each source present ({names}) a weight; "
            "0 drops a source on purpose"
        )
    weights = [float(cfg.weights.get(n, 0.0)) for n in names] if cfg.weights else None
    total = round(cfg.ratio * len(pooled))
    mix_counts([len(groups[n]) for n in names], weights, total)  # validates
    return mix_datasets([groups[n] for n in names], weights, cfg.seed, total)


def datacard(cfg: BuildConfig, m: dict) -> str:
    lines = [
        f"# Dataset card: {Path(cfg.output_dir).name}",
        "",
        f"{m['final']} training records in `train.jsonl` (TRL `messages` format), built by "
        f"`tuneforge data build` with {m['llm']['kind']} model `{m['llm']['model']}` "
        f"({m['llm']['calls']} model calls, {m['llm']['cache_hits']} answers from the cache).",
        "",
        "| stage | records |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in m["stages"].items()]
    lines += ["", f"Filters removed {sum(m['removed'].values())} records (each listed in `removed.jsonl`):", ""]
    lines += [f"- {k}: {v}" for k, v in m["removed_reasons"].items()] or ["- nothing"]
    lines += ["", "| domain | records |", "|---|---|"] + [f"| {k} | {v} |" for k, v in m["final_by_domain"].items()]
    lines += ["", "| source | records |", "|---|---|"] + [f"| {k} | {v} |" for k, v in m["final_by_source"].items()]
    if "preferences" in m["reports"]:
        p = m["reports"]["preferences"]
        lines += [
            "",
            f"`preferences.jsonl`: {p['pairs']} preference pairs from {p['prompts']} prompts × "
            f"{p['sampling']['n']} samples of `{p['policy']}` (temperature {p['sampling']['temperature']}), "
            f"scored by {p['scorer']}; {p['ties']} ties and {p['too_few_scored']} prompts with fewer than two "
            f"scored samples gave no pair; {p['parse_failures']} judge verdicts did not parse and were left out. "
            "Each pair's `meta` holds every sample, score and verdict.",
        ]
    lines += [
        "",
        "Every record carries its provenance: `source`, and in `meta` the generator model, step,",
        "parameters and seed. Synthetic records were produced by a model and are not checked by people.",
        "",
    ]
    return "\n".join(lines)
