"""YAML configs mapped onto typed dataclasses, with `key=value` overrides and strict keys.

    cfg = load_config(DemoConfig, "configs/demo.yaml", ["train.steps=50", "adapter.r=8"])

- YAML keys are the dataclass field names, nested sections are nested dataclasses.
- Unknown keys are errors with a suggestion ("did you mean: steps?") and the file:line.
- Values are checked against the field types; every problem is reported at once.
- `save_config` writes the resolved config (every field, defaults included) to a run directory.
Field help lives in `field(metadata={"help": ...})`, shown by `tuneforge <verb> --help`, with the
field's allowed range in the same metadata: `ge` / `gt` / `le` / `lt` bound a number (each item of a
list, each value of a dict), `min_len` a list. Every float must be finite and every int fit in 64
bits; `_build` checks all of it for every verb, before anything runs:

    lr: float = field(default=2e-4, metadata={"help": "peak learning rate", "gt": 0})
    seed: int = field(default=0, metadata={"help": "sampling seed", **SEED})

User YAML (configs, suites, item lists) is read by one loader (`parse_yaml`, `read_yaml`): numbers
as YAML 1.2 reads them (`1:30` is a string, `1e-4` a float), duplicate keys refused, and aliases
bounded (a "billion laughs" document is refused before it is expanded).
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tuneforge.errors import ConfigError, DataError, TuneforgeError, read_text, suggest
from tuneforge.files import write_text_atomic

T = TypeVar("T")


SEED = {"ge": 0, "le": 2**32 - 1}  # what numpy's and torch's seeding both accept

# The words every verb uses for the same things (issue 30): one model is a `model` section
# (name, dtype, device); several are `models: [label=spec]` beside one `dtype` and `device`; the
# test set is `data.test` (+ `data.test_per_domain`), training data `data.train`, the run's folder
# `output_dir`, decoding `generation.*`, randomness `seed`. A renamed key is an error naming the new
# one: a config dataclass lists its old keys in `RENAMED = {"old": "new.dotted.key"}`.
SHARED_KEYS = ("output_dir", "model", "models", "dtype", "device", "data", "generation", "seed")
DTYPE_HELP = "auto (bfloat16 where the hardware runs it natively, else float32) | bfloat16 | float32 | float16"
DEVICE_HELP = "auto (GPU if visible) | cpu | cuda | cuda:N"


def dtype_field(what: str = "model dtype") -> Any:
    """The one definition of a dtype key: `auto` and the names torch spells."""
    return dataclasses.field(default="auto", metadata={"help": f"{what}: {DTYPE_HELP}"})


def device_field() -> Any:
    return dataclasses.field(default="auto", metadata={"help": DEVICE_HELP})


MAX_ALIAS_NODES = 100_000  # nodes that YAML aliases may add to a document when expanded

_INT, _FLOAT_TAG, _BOOL = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool"
_SPECIAL_FLOATS = {".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf, ".nan": math.nan}


class _Refusal(yaml.MarkedYAMLError):
    """A document PyYAML reads but we refuse (duplicate key, alias bomb, bad number); its problem
    text says how to fix it."""

    def __init__(self, problem: str, mark):
        super().__init__(problem=problem, problem_mark=mark)


def _construct_int(loader, node) -> int:
    text = loader.construct_scalar(node)
    try:
        return int(text, 0) if text.lower().startswith(("0o", "0x")) else int(text, 10)
    except ValueError:
        raise _Refusal(f"not an integer: {text[:40]!r}; write digits, 0o17 or 0x1f", node.start_mark) from None


def _construct_float(loader, node) -> float:
    text = loader.construct_scalar(node)
    if text.lower() in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[text.lower()]
    try:
        return float(text)
    except ValueError:
        raise _Refusal(f"not a number: {text[:40]!r}; write e.g. 0.5 or 1e-4", node.start_mark) from None


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 numbers and booleans (no sexagesimal `1:30`, octal `017`, `1_000`,
    or `yes`/`on` read as true) and no duplicate keys."""

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT_TAG, _BOOL)]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` merges; its keys may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                if key in first:
                    raise _duplicate(str(key), first[key], key_node.start_mark)
                first[key] = key_node.start_mark.line + 1
            except TypeError:  # an unhashable key, which PyYAML refuses below
                pass
        return super().construct_mapping(node, deep)


class _Dumper(yaml.SafeDumper):
    """Quotes every string that YAML 1.1 or 1.2 would read as a number ('1e5', '0o17'), so a saved
    config reads back the same with either."""


_INT_RE = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT_RE = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver(_INT, _INT_RE, list("-+0123456789"))
    _cls.add_implicit_resolver(_FLOAT_TAG, _FLOAT_RE, list("-+.0123456789"))
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))  # not yes/on
_Loader.add_constructor(_INT, _construct_int)
_Loader.add_constructor(_FLOAT_TAG, _construct_float)


def _duplicate(key: str, first_line: int, mark) -> _Refusal:
    return _Refusal(f"duplicate key '{key}' on lines {first_line} and {mark.line + 1}; keep one", mark)


def _check_aliases(root: yaml.Node) -> None:
    """Refuse a document whose aliases would expand it by more than MAX_ALIAS_NODES nodes (or
    forever), counting without expanding: each distinct node's expanded size is computed once."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(n: yaml.Node) -> int:
        if id(n) in sizes:
            return sizes[id(n)]
        if id(n) in open_:
            raise _Refusal("an alias (*name) refers to a node that contains it; write the values out", n.start_mark)
        open_.add(id(n))
        children = n.value if isinstance(n, yaml.SequenceNode) else []
        if isinstance(n, yaml.MappingNode):
            children = [c for pair in n.value for c in pair]
        sizes[id(n)] = 1 + sum(size(c) for c in children)
        open_.discard(id(n))
        return sizes[id(n)]

    total = size(root)
    if total > len(sizes) + MAX_ALIAS_NODES:
        raise _Refusal(
            f"aliases (*name) expand this document to {total:,} nodes, more than {MAX_ALIAS_NODES:,} beyond "
            "what it spells out; write the values out instead of nesting aliases",
            root.start_mark,
        )


def _compose(text: str) -> tuple[_Loader, yaml.Node | None]:
    loader = _Loader(text)
    node = loader.get_single_node()
    if node is not None:
        _check_aliases(node)
    return loader, node


def parse_yaml(text: str) -> tuple[Any, yaml.Node | None]:
    """User YAML → (data, node tree for line numbers), read safely (see the module docstring).

    Raises:
        yaml.YAMLError: with `problem_mark` (its line) for a syntax error or a refused document.
        RecursionError: nested too deeply.
    """
    loader, node = _compose(text)
    try:
        return (loader.construct_document(node) if node is not None else None), node
    finally:
        loader.dispose()


def _yaml_problem(exc: yaml.YAMLError) -> str:
    what = " ".join(str(x) for x in (getattr(exc, "context", None), getattr(exc, "problem", None)) if x)
    return (what or str(exc)).replace("\n", " ")


def read_yaml(path: str | Path, what: str = "YAML file") -> tuple[Any, yaml.Node | None]:
    """A user's YAML file read with `parse_yaml`; every problem is a DataError naming the file and line."""
    try:
        return parse_yaml(read_text(path, what))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        fix = "" if isinstance(exc, _Refusal) else ". Fix the syntax (quote values that contain ': ', close brackets)"
        raise DataError(
            f"{what} is not valid YAML: {_yaml_problem(exc)}{fix}", path=str(path), line=mark.line + 1 if mark else None
        ) from None
    except RecursionError:
        raise DataError(f"{what}: YAML nested too deeply to read. Flatten it", path=str(path)) from None


def _load_yaml_with_lines(path: Path) -> tuple[dict, dict[str, int]]:
    """Parse a config file and remember the line of every mapping key, by dotted path."""
    lines: dict[str, int] = {}

    def walk(loader: _Loader, n: yaml.Node, prefix: str):
        if isinstance(n, yaml.MappingNode):
            out = {}
            for k, v in n.value:
                key = str(loader.construct_object(k))
                if key in out:
                    raise _duplicate(prefix + key, lines[prefix + key], k.start_mark)
                lines[prefix + key] = k.start_mark.line + 1
                out[key] = walk(loader, v, prefix + key + ".")
            return out
        if isinstance(n, yaml.SequenceNode):
            return [walk(loader, v, prefix) for v in n.value]
        return loader.construct_object(n, deep=True)

    try:
        loader, node = _compose(read_text(path, "config file"))
        data = walk(loader, node, "") if node is not None else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}, column {mark.column + 1}" if mark else f"{path}, column ?"
        fix = "" if isinstance(exc, _Refusal) else ". Fix the syntax (a quote, bracket or indent)"
        raise ConfigError(f"invalid YAML: {_yaml_problem(exc)} [{where}]{fix}") from None
    except RecursionError:
        raise ConfigError(f"YAML nested too deeply to read [{path}]") from None
    if not isinstance(data, dict):
        raise ConfigError(f"a config file must hold a mapping of keys, got {type(data).__name__}: {path}")
    return data, lines


def _type_ok(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return (
            isinstance(value, (list, tuple)) and all(_type_ok(v, args[0]) for v in value)
            if args
            else isinstance(value, (list, tuple))
        )
    if origin is dict:
        args = typing.get_args(tp)
        return isinstance(value, dict) and (not args or all(_type_ok(v, args[1]) for v in value.values()))
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


_FLOAT = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


def _number(value: Any, tp: Any) -> Any:
    """A float written as YAML 1.1 reads it as a string ('1e-4', '5e3') becomes the number where the
    key takes a float; anything else is returned unchanged."""
    takes_float = tp is float or float in typing.get_args(tp)
    if takes_float and isinstance(value, str) and _FLOAT.match(value.strip()):
        return float(value)
    return value


def _type_name(tp: Any) -> str:
    if typing.get_args(tp):  # list[int], not list
        return str(tp).replace("typing.", "")
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def range_text(meta: typing.Mapping[str, Any]) -> str:
    """The bounds in a field's metadata as text: '> 0', '≥ 1', 'in [0, 1)'; '' when unbounded."""
    lo = ("≥", "[", meta["ge"]) if "ge" in meta else (">", "(", meta["gt"]) if "gt" in meta else None
    hi = ("≤", "]", meta["le"]) if "le" in meta else ("<", ")", meta["lt"]) if "lt" in meta else None
    if lo and hi:
        return f"in {lo[1]}{lo[2]}, {hi[2]}{hi[1]}"
    return f"{lo[0]} {lo[2]}" if lo else f"{hi[0]} {hi[2]}" if hi else ""


def _in_range(x: float, meta: typing.Mapping[str, Any]) -> bool:
    return (
        ("ge" not in meta or x >= meta["ge"])
        and ("gt" not in meta or x > meta["gt"])
        and ("le" not in meta or x <= meta["le"])
        and ("lt" not in meta or x < meta["lt"])
    )


def _number_problem(x: Any, meta: typing.Mapping[str, Any]) -> str:
    """Why the number `x` breaks its field's rules ('' = it does not, or it is no number)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return ""
    if isinstance(x, float) and not math.isfinite(x):
        return f"must be a finite number, got {'NaN' if x != x else x}"
    if not _in_range(x, meta):
        return f"must be {range_text(meta)}, got {x!r}"
    if isinstance(x, int) and not -(2**63) <= x < 2**63:
        return f"must fit in 64 bits (|x| < 2**63), got {x}"
    return ""


def _min_len_text(meta: typing.Mapping[str, Any]) -> str:
    return "at least one item" if meta["min_len"] == 1 else f"at least {meta['min_len']} items"


def value_problem(value: Any, meta: typing.Mapping[str, Any]) -> str:
    """Why a config value breaks its field's metadata rules ('' = it does not): a number (each item of
    a list, each value of a dict) must be finite and in range, a list at least `min_len` long."""
    if isinstance(value, (list, tuple, dict)):
        items = list(value.values()) if isinstance(value, dict) else list(value)
        if len(items) < meta.get("min_len", 0):
            return f"must hold {_min_len_text(meta)}, got {value!r}"
        for x in items:
            if problem := _number_problem(x, meta):
                return f"{problem} (in {value!r})"
        return ""
    return _number_problem(value, meta)


def _build(cls: type[T], data: dict, where: str, lines: dict[str, int], source: str, errors: list[str]) -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]  # T is a dataclass type
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{where}{key}"
        line = lines.get(path, 0)
        loc = f"{source}:{line}" if line > 0 else ("command-line override" if line < 0 else source)
        renamed = getattr(cls, "RENAMED", {})
        if key not in fields and key in renamed:
            errors.append(
                f"config key '{path}' ({loc}) is now '{where}{renamed[key]}' (the same name in every verb); "
                f"write {where}{renamed[key]}={value!r:.60}"
            )
            continue
        if key not in fields:
            section = where.rstrip(".") + (f" (name={data['name']})" if "name" in fields and "name" in data else "")
            errors.append(
                f"unknown config key '{path}' ({loc}).{suggest(key, fields)} "
                f"Valid keys{' under ' + section if where else ''}: {', '.join(fields)}"
            )
            continue
        tp = hints[key]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                hint = (
                    f"; write {path}.name={value!r:.60}" if "name" in {g.name for g in dataclasses.fields(tp)} else ""
                )
                errors.append(f"config key '{path}' ({loc}) must be a section of keys, got {value!r:.100}{hint}")
                continue
            if "variants" in fields[key].metadata:  # a section whose keys depend on its `name`
                picked = _variant(fields[key], value, path, loc, errors)
                if picked is None:
                    continue
                tp = picked
            kwargs[key] = _build(tp, value, path + ".", lines, source, errors)
        elif not _type_ok(value := _number(value, tp), tp):
            errors.append(f"config key '{path}' ({loc}) must be {_type_name(tp)}, got {value!r:.200}")
        elif problem := value_problem(value, fields[key].metadata):
            errors.append(f"config key {path} {problem:.300} ({loc})")
        else:  # a bad value never reaches the class, so its own checks do not report it twice
            kwargs[key] = float(value) if tp is float else value
    try:
        obj = cls(**kwargs)
    except (ValueError, TuneforgeError) as exc:
        errors.append(f"{where.rstrip('.') or cls.__name__} ({source}): {exc}")
        obj = object.__new__(cls)  # a placeholder: the errors are raised before anyone reads it
    return obj


def _variant(f: dataclasses.Field, value: dict, path: str, loc: str, errors: list[str]) -> type | None:
    """The dataclass a variant section reads: the one its `name` picks (the field default's name when
    the section gives none); None after reporting an unknown name."""
    variants: typing.Mapping[str, type] = f.metadata["variants"]
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default  # type: ignore[misc]
    name = value.get("name", getattr(default, "name", ""))
    if isinstance(name, str) and name in variants:
        return variants[name]
    errors.append(
        f"{path}.name '{name}' unknown ({loc}).{suggest(str(name), variants)} Use one of {', '.join(variants)}"
    )
    return None


def _apply_override(data: dict, override: str) -> list[str]:
    """Set a dotted key in `data`; return the key and its parents (for error locations)."""
    if "=" not in override:
        raise ConfigError(f"override '{override}' is not key=value. Write e.g. train.steps=100")
    key, _, raw = override.partition("=")
    try:
        value = parse_yaml(raw)[0] if raw.strip() else ""
    except (yaml.YAMLError, RecursionError):
        value = raw
    node = data
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{override}': '{part}' is not a section")
    node[parts[-1]] = value
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Build `cls` from an optional YAML file and `key=value` overrides.

    Raises:
        ConfigError: listing every unknown key, wrong type or bad value at once.
    """
    data: dict = {}
    lines: dict[str, int] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(
                f"config file not found: {path}. Give a path to a YAML file (bundled ones are in configs/)"
            )
        data, lines = _load_yaml_with_lines(path)
        source = str(path)
    for ov in overrides:
        keys = _apply_override(data, ov)
        for key in keys[:-1]:
            lines.setdefault(key, -1)
        lines[keys[-1]] = -1  # the override, not the file's line, is where this value came from
    errors: list[str] = []
    cfg = _build(cls, data, "", lines, source, errors)
    if errors:
        raise ConfigError("; ".join(errors))
    return cfg


def config_from_dict(cls: type[T], data: dict, source: str = "defaults") -> T:
    """Build `cls` from already-parsed data, with every check `load_config` makes."""
    errors: list[str] = []
    cfg = _build(cls, data, "", {}, source, errors)
    if errors:
        raise ConfigError("; ".join(errors))
    return cfg


def bundled_config(name: str) -> Path:
    """Path of a config shipped with tuneforge (`configs/<name>.yaml` in a checkout)."""
    here = Path(__file__).resolve().parent
    for folder in (here / "_configs", here.parent.parent / "configs"):
        if (folder / f"{name}.yaml").exists():
            return folder / f"{name}.yaml"
    raise ConfigError(f"no bundled config named '{name}'. Give a path to a YAML file instead")


def config_to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config (defaults included) as YAML."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, yaml.dump(config_to_dict(cfg), Dumper=_Dumper, sort_keys=False))
    return path


def config_help(cls: type, prefix: str = "", skip: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    """One line per key: `name (type, default, range): help` — used by the CLI's --help."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        tp = hints[f.name]
        if "variants" in f.metadata:  # one block of keys per name, each block's keys once
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            out.append(f"  {prefix}{f.name}.name (str, default {default.name!r}): {f.metadata.get('help', '')}")
            about = f.metadata.get("variant_help", {})
            for name, variant in f.metadata["variants"].items():
                out.append(f"    {prefix}{f.name}.name={name}" + (f" ({about[name]})" if name in about else ""))
                out += config_help(variant, f"    {prefix}{f.name}.", skip={"name"})
            continue
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            out += config_help(tp, f"{prefix}{f.name}.")
            continue
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else (f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        )
        bounds = range_text(f.metadata)
        if bounds and typing.get_origin(tp) in (list, dict):
            bounds = f"each {bounds}"
        rules = [f"{_type_name(tp)}, default {default!r}", bounds]
        rules += [_min_len_text(f.metadata)] if "min_len" in f.metadata else []
        out.append(f"  {prefix}{f.name} ({', '.join(r for r in rules if r)}): {f.metadata.get('help', '')}")
    return out
