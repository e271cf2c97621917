"""The package's import graph runs one way (docs: the README's Layout): a module imports only from
its own layer or below, and there are no cycles. Read statically from the source (every import,
at module level or inside a function), so a lazy import cannot hide an upward edge."""

import ast
from pathlib import Path

import tuneforge

ROOT = Path(tuneforge.__file__).parent

# lowest first; a module's layer is that of the longest prefix that matches its name
LAYERS = [
    [
        "errors",
        "strict_json",
        "ollama_json",
        "tool_use",
        "tool_text",
        "records",
        "config",
        "hardware",
        "files",
        "embedded",
        "paths",
        "fingerprint",
        "redaction",
        "intervals",
        "run_metrics",
    ],
    ["llm", "models", "chat_template", "tokenisation", "generation"],
    ["data"],
    ["train"],
    ["evaluate"],
    ["safety", "multitask", "reflect", "compress", "scaling"],
    # recipes: the entry function of each verb (`<stage>/run.py`), composing the stages below
    [
        "data.run",
        "data.file_steps",
        "train.run",
        "train.export",
        "train.gguf_export",
        "evaluate.run",
        "safety.run",
        "reflect.run",
        "multitask.run",
        "compress.run",
        "compress.table",
        "scaling.run",
        "demo",
    ],
    ["cli", "ui", "__init__"],
]
# a recipe may call another recipe of its own stage, and the demo composes them all
RECIPE_CALLS = {
    ("data.file_steps", "data.run"),
    ("train.gguf_export", "train.export"),
    ("demo", "data.run"),
    ("compress.run", "train.run"),  # recovery is a training run
    ("compress.run", "train.export"),  # merged into the compressed model
    ("compress.table", "evaluate.run"),  # the variants' answers and scores are an eval run
    ("scaling.run", "train.run"),  # every point of the sweep is a training run
}


def _modules() -> dict[str, Path]:
    out = {}
    for f in ROOT.rglob("*.py"):
        parts = f.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts) if parts[-1] != "__init__" or len(parts) == 1 else ".".join(parts[:-1])] = f
    return out


def _layer(name: str) -> int:
    best, layer = -1, None
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (name == p or name.startswith(p + ".")) and len(p) > best:
                best, layer = len(p), i
    assert layer is not None, f"module tuneforge.{name} has no layer: add it to LAYERS"
    return layer


def _edges() -> dict[str, set[str]]:
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [node.module]
                if isinstance(node, ast.ImportFrom) and node.module
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            for n in names:
                if n.startswith("tuneforge."):
                    t = n.removeprefix("tuneforge.")
                    while t not in mods and "." in t:
                        t = t.rsplit(".", 1)[0]
                    if t in mods and t != name:
                        targets.add(t)
        graph[name] = targets
    return graph


def test_no_module_imports_from_a_higher_layer():
    recipes = set(LAYERS[6])
    bad = []
    for a, targets in _edges().items():
        for b in targets:
            up = _layer(b) > _layer(a)
            across = a in recipes and b in recipes and (a, b) not in RECIPE_CALLS
            if up or across:
                bad.append(f"tuneforge.{a} (layer {_layer(a)}) imports tuneforge.{b} (layer {_layer(b)})")
    assert not bad, "\n".join(sorted(bad))


def test_the_import_graph_has_no_cycle():
    graph, state, cycle = _edges(), {}, []

    def visit(v, stack):
        state[v] = 1
        for w in graph[v]:
            if state.get(w) == 1:
                cycle.append(stack[stack.index(w) :] + [w])
            elif w not in state:
                visit(w, stack + [w])
        state[v] = 2

    for v in graph:
        if v not in state:
            visit(v, [v])
    assert not cycle, " → ".join(cycle[0])


def test_no_library_module_imports_a_recipe():
    """A recipe (a verb's entry) composes library modules; nothing below it may lean on one, so a
    library never drags a verb's config, printing and run folder into another verb."""
    recipes = set(LAYERS[6])
    bad = sorted(
        f"tuneforge.{a} imports the recipe tuneforge.{b}"
        for a, targets in _edges().items()
        if a not in recipes and _layer(a) < 6
        for b in targets
        if b in recipes
    )
    assert not bad, "\n".join(bad)
