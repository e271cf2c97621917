"""The filters of a data build, cheapest first: length, format and (optional) safety checks →
exact/near dedup → decontamination (n-gram, and optionally embedding near matches) → LLM-judge
quality → IFD selection. Every removal is returned with its filter and reason."""

from __future__ import annotations

from collections.abc import Callable

from tuneforge.data.build_config import FilterConfig
from tuneforge.data.decontam import decontaminate, near_matches
from tuneforge.data.dedup import Removal, deduplicate
from tuneforge.data.ifd import ifd_scores, select_by_ifd
from tuneforge.data.quality import judge_quality
from tuneforge.data.seed import eval_items
from tuneforge.errors import ConfigError
from tuneforge.llm.cache import CachedLLM
from tuneforge.records import Example

TEMPLATE_TOKENS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|start_header_id|>", "[INST]")


def format_problem(r: Example) -> str:
    """Why a record fails the format check ('' = it passes)."""
    if not r.instruction.strip():
        return "no instruction"
    text = "\n".join(m.content for m in r.messages)
    if any(t in text for t in TEMPLATE_TOKENS):
        return "chat-template tokens in the text"
    if " ".join(r.response_text.split()).lower() == " ".join(r.instruction.split()).lower():
        return "response repeats the instruction"
    return ""


def apply_filters(
    pooled: list[Example],
    cfg: FilterConfig,
    llm: CachedLLM | None = None,
    unsafe: Callable[[Example], str] | None = None,
) -> tuple[list[Example], list[tuple[str, Removal]], dict]:
    """Length and format checks → dedup → decontamination → LLM judge → IFD, in that order (the
    costly model-based filters see only what the cheap ones kept). Returns (kept, [(filter,
    removal)], {filter: report}). `unsafe(record)` says why a record is unsafe to train on ('' = it
    is not): `filters.safety` needs it (the safety stage's detectors, handed in by the recipe)."""
    if cfg.safety and unsafe is None:
        raise ConfigError(
            "filters.safety needs a detector: pass unsafe=tuneforge.safety.training_data.unsafe_training_record"
        )
    removed: list[tuple[str, Removal]] = []
    reports: dict[str, dict] = {}
    kept = []
    for r in pooled:
        n = len(r.response_text.split())  # a turn that only calls a tool counts its call
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
        elif cfg.safety and unsafe is not None and (why := unsafe(r)):
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
