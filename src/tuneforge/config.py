"""YAML configs mapped onto typed dataclasses, with `key=value` overrides and strict keys.

    cfg = load_config(DemoConfig, "configs/demo.yaml", ["train.steps=50", "adapter.r=8"])

- YAML keys are the dataclass field names, nested sections are nested dataclasses.
- Unknown keys are errors with a suggestion ("did you mean: steps?") and the file:line.
- Values are checked against the field types; every problem is reported at once.
- `save_config` writes the resolved config (every field, defaults included) to a run directory.
Field help lives in `field(metadata={"help": ...})`, shown by `tuneforge <verb> --help`.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tuneforge.errors import ConfigError, read_text, suggest
from tuneforge.files import write_text_atomic

T = TypeVar("T")


def _load_yaml_with_lines(path: Path) -> tuple[dict, dict[str, int]]:
    """Parse YAML and remember the line of every mapping key, by dotted path."""
    try:
        loader = yaml.SafeLoader(read_text(path, "config file"))
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        what = " ".join(str(x) for x in (getattr(exc, "context", None), getattr(exc, "problem", None)) if x) or str(exc)
        raise ConfigError(
            f"invalid YAML: {what} [{where}, column {mark.column + 1 if mark else '?'}]. "
            "Fix the syntax (a quote, bracket or indent)".replace("\n", " ")
        ) from None
    except RecursionError:
        raise ConfigError(f"YAML nested too deeply to read [{path}]") from None
    lines: dict[str, int] = {}

    def walk(n, prefix: str):
        if isinstance(n, yaml.MappingNode):
            out = {}
            for k, v in n.value:
                key = str(loader.construct_object(k))
                lines[prefix + key] = k.start_mark.line + 1
                out[key] = walk(v, prefix + key + ".")
            return out
        if isinstance(n, yaml.SequenceNode):
            return [walk(v, prefix) for v in n.value]
        return loader.construct_object(n, deep=True)

    try:
        data = walk(node, "") if node is not None else {}
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
        return isinstance(value, dict)
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
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _build(cls: type[T], data: dict, where: str, lines: dict[str, int], source: str, errors: list[str]) -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]  # T is a dataclass type
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{where}{key}"
        line = lines.get(path, 0)
        loc = f"{source}:{line}" if line > 0 else ("command-line override" if line < 0 else source)
        if key not in fields:
            errors.append(
                f"unknown config key '{path}' ({loc}).{suggest(key, fields)} "
                f"Valid keys{' under ' + where.rstrip('.') if where else ''}: {', '.join(fields)}"
            )
            continue
        tp = hints[key]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                errors.append(f"config key '{path}' ({loc}) must be a section of keys, got {value!r}")
                continue
            kwargs[key] = _build(tp, value, path + ".", lines, source, errors)
        elif isinstance(value, float) and value != value:
            errors.append(f"config key '{path}' ({loc}) is NaN; give a number")
        elif _type_ok(value := _number(value, tp), tp):
            kwargs[key] = float(value) if tp is float else value
        else:
            errors.append(f"config key '{path}' ({loc}) must be {_type_name(tp)}, got {value!r}")
    try:
        obj = cls(**kwargs)
    except (ValueError, ConfigError) as exc:
        errors.append(f"{where.rstrip('.') or cls.__name__} ({source}): {exc}")
        obj = cls()
    return obj


def _apply_override(data: dict, override: str) -> list[str]:
    """Set a dotted key in `data`; return the key and its parents (for error locations)."""
    if "=" not in override:
        raise ConfigError(f"override '{override}' is not key=value. Write e.g. train.steps=100")
    key, _, raw = override.partition("=")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
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
    write_text_atomic(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    return path


def config_help(cls: type, prefix: str = "") -> list[str]:
    """One line per key: `name (type, default): help` — used by the CLI's --help."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            out += config_help(tp, f"{prefix}{f.name}.")
            continue
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else (f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        )
        out.append(f"  {prefix}{f.name} ({_type_name(tp)}, default {default!r}): {f.metadata.get('help', '')}")
    return out
