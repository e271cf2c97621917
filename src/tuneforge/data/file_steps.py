"""Single steps of `data build`, over files: `tuneforge data synth|augment|filter|dedup|decontam|mix`.

Each step reads records in any supported format and writes the kept ones as JSONL (TRL
`messages`). A step that removes records writes every one of them — whole, with the filter and the
reason — to `<OUT>.removed.jsonl` beside the output, so nothing is lost and any removal can be
undone by hand. Steps that call a model keep their request cache beside the output
(`<OUT>.cache.sqlite`), so a rerun repeats no call.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

from tuneforge.data.augment import AugmentConfig, augment
from tuneforge.data.build_config import BuildConfig, FilterConfig, MixConfig
from tuneforge.data.decontam import decontaminate
from tuneforge.data.dedup import Removal, deduplicate
from tuneforge.data.filters import apply_filters
from tuneforge.data.io import write_records
from tuneforge.data.mix import mix_counts, mix_datasets, mix_report, mix_total
from tuneforge.data.run import build_dataset
from tuneforge.data.seed import load_spec
from tuneforge.errors import ConfigError, DataError
from tuneforge.files import check_output_file
from tuneforge.llm.config import LLMConfig, make_llm
from tuneforge.records import EvalItem, Example
from tuneforge.safety.training_data import unsafe_training_record


def _examples(spec: str | Path) -> list[Example]:
    rows = load_spec(spec)
    bad = [type(r).__name__ for r in rows if not isinstance(r, Example)]
    if bad:
        raise DataError(
            f"this step works on SFT records; the file holds {Counter(bad).most_common(1)[0][0]} records",
            path=str(spec),
        )
    return rows


def _sidecars(output: str | Path) -> list[Path]:
    """A file a step writes beside its output (the LLM request cache is its own, kept to resume)."""
    return [removed_path(output)]


def removed_path(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.stem + ".removed.jsonl")


def write_removed(records: list, removed: list[tuple[str, Removal]], output: str | Path) -> Path | None:
    """Write each removed record whole, with its filter and reason, next to `output`."""
    if not removed:
        return None
    by_id: dict[str, list] = {}
    for i, r in enumerate(records):
        by_id.setdefault(getattr(r, "id", "") or f"#{i}", []).append(r)
    path = removed_path(output)
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "w", encoding="utf-8") as f:
        for name, rem in removed:
            rec = by_id[rem.id].pop(0) if by_id.get(rem.id) else None
            row = {"filter": name, **rem.to_dict(), "record": rec.to_dict() if rec is not None else None}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def _report(step: str, n_in: int, kept: list, removed: list[tuple[str, Removal]], output, **extra) -> dict:
    return {
        "step": step,
        "input": n_in,
        "kept": len(kept),
        "removed": len(removed),
        "removed_by": dict(Counter(f"{name}: {r.reason.split(' (')[0]}" for name, r in removed)),
        "output": str(output),
        "removed_file": str(removed_path(output)) if removed else None,
        **extra,
    }


def synth(cfg: BuildConfig) -> Path:
    """The sources, generators and augmentations of a build config, unfiltered and unmixed, into
    `cfg.output_dir` (train.jsonl, stages/, manifest.json, datacard.md, cache.sqlite)."""
    off = FilterConfig(min_response_words=0, format=False, dedup=False, decontaminate=[])
    return build_dataset(dataclasses.replace(cfg, filters=off, mix=MixConfig()))


def augment_file(
    input: str | Path, output: str | Path, cfg: AugmentConfig, llm: LLMConfig | None = None, overwrite: bool = False
) -> dict:
    """Write the input records followed by their augmentations."""
    check_output_file(output, [input], overwrite, _sidecars(output))
    rows = _examples(input)
    client = make_llm(llm or LLMConfig(), Path(str(output) + ".cache.sqlite"), "paraphrase") if cfg.paraphrase else None
    new, report = augment(rows, cfg, client)
    write_records(rows + new, output)
    return {"step": "augment", "input": len(rows), "added": len(new), "output": str(output), **report}


def filter_file(
    input: str | Path, output: str | Path, cfg: FilterConfig, llm: LLMConfig | None = None, overwrite: bool = False
) -> dict:
    """Run the filters of `cfg` (length, format, dedup, decontamination, judge, IFD) over a file."""
    check_output_file(output, [input], overwrite, _sidecars(output))
    rows = _examples(input)
    client = make_llm(llm or LLMConfig(), Path(str(output) + ".cache.sqlite"), "judge") if cfg.judge else None
    kept, removed, reports = apply_filters(list(rows), cfg, client, unsafe_training_record)
    write_records(kept, output)
    write_removed(rows, removed, output)
    return _report("filter", len(rows), kept, removed, output, **reports)


def dedup_file(
    input: str | Path,
    output: str | Path,
    threshold: float = 0.7,
    part: str = "instruction",
    ngram: int = 5,
    overwrite: bool = False,
) -> dict:
    check_output_file(output, [input], overwrite, _sidecars(output))
    rows = load_spec(input)
    kept, gone = deduplicate(rows, threshold, ngram, part)
    removed = [("dedup", g) for g in gone]
    write_records(kept, output)
    write_removed(rows, removed, output)
    return _report("dedup", len(rows), kept, removed, output, threshold=threshold, ngram=ngram, part=part)


def decontam_file(
    input: str | Path, output: str | Path, against: list[str], ngram: int = 13, overwrite: bool = False
) -> dict:
    check_output_file(output, [input, *against], overwrite, _sidecars(output))
    if not against:
        raise ConfigError("decontamination needs at least one evaluation set: --against FILE (or seed:test)")
    rows = load_spec(input)
    evals = [EvalItem.from_example(e) if isinstance(e, Example) else e for spec in against for e in load_spec(spec)]
    kept, gone = decontaminate(rows, evals, ngram)
    removed = [("decontaminate", g) for g in gone]
    write_records(kept, output)
    write_removed(rows, removed, output)
    return _report(
        "decontam", len(rows), kept, removed, output, against=list(against), ngram=ngram, eval_items=len(evals)
    )


def parse_source(spec: str) -> tuple[str, float | None]:
    """'file.jsonl:2.5' → ('file.jsonl', 2.5); 'file.jsonl' → ('file.jsonl', None)."""
    head, sep, tail = spec.rpartition(":")
    if sep and head and not head.startswith("seed") and tail.replace(".", "", 1).isdigit():
        return head, float(tail)
    return spec, None


def mix_files(
    sources: list[str],
    output: str | Path,
    total: int | None = None,
    ratio: float = 1.0,
    seed: int = 0,
    overwrite: bool = False,
) -> dict:
    """Mix sources given as `PATH[:WEIGHT]` into one shuffled file of `total` records (default:
    α·N with α = `ratio`, N = all records); without weights the sources are concatenated."""
    if not sources:
        raise ConfigError("data mix needs at least one source: PATH[:WEIGHT] ...")
    check_output_file(output, [parse_source(s)[0] for s in sources], overwrite, _sidecars(output))
    parsed = [parse_source(s) for s in sources]
    given = [w for _, w in parsed if w is not None]
    if given and len(given) != len(parsed):
        raise ConfigError("give a weight to every source (PATH:WEIGHT) or to none: " + " ".join(sources))
    rows = [_examples(path) for path, _ in parsed]
    weights = given or None
    n = sum(len(r) for r in rows)
    if total is None:
        total = mix_total(ratio, n)
    if weights is None and total != n:
        weights = [float(len(r)) for r in rows]  # subsample in proportion to size
    counts = mix_counts([len(r) for r in rows], weights, total)
    mixed = mix_datasets(rows, weights, seed, total)
    write_records(mixed, output)
    return {
        "step": "mix",
        "sources": {p: len(r) for (p, _), r in zip(parsed, rows)},
        "output": str(output),
        "total": len(mixed),
        "summary": mix_report([p for p, _ in parsed], [len(r) for r in rows], counts),
    }
