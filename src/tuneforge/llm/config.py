"""Which LLM a stage talks to (`LLMConfig`, the `llm:` / `judge.llm:` / `teacher:` sections of
every config) and the one function that builds it, wrapped in the request cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tuneforge.config import dtype_field
from tuneforge.embedded import EMBEDDED_MODEL
from tuneforge.errors import ConfigError
from tuneforge.llm.cache import CachedLLM
from tuneforge.llm.client import LLM

LLM_KINDS = ("local", "openai")


@dataclass
class LLMConfig:
    kind: str = field(default="local", metadata={"help": "local (transformers in this process) | openai (HTTP)"})
    model: str = field(default=EMBEDDED_MODEL, metadata={"help": "model name (local: any load_model name)"})
    base_url: str = field(default="https://api.openai.com/v1", metadata={"help": "openai: server URL"})
    api_key_env: str = field(default="OPENAI_API_KEY", metadata={"help": "openai: env variable holding the key"})
    max_concurrency: int = field(default=8, metadata={"help": "openai: requests in flight", "ge": 1})
    request_deadline: float = field(
        default=600.0,
        metadata={"help": "openai: seconds one request may take in all, retries and waits included", "gt": 0},
    )
    batch_size: int = field(default=16, metadata={"help": "prompts per generation batch (and cache commit)", "ge": 1})
    max_new_tokens: int = field(default=200, metadata={"help": "tokens per answer", "ge": 1})
    dtype: str = dtype_field("local: model dtype")

    def __post_init__(self):
        if self.kind not in LLM_KINDS:
            raise ConfigError(f"llm.kind '{self.kind}' unknown; use one of {', '.join(LLM_KINDS)}")
        if not self.base_url.startswith(("http://", "https://")):  # file://, ftp://: requests would try them
            raise ConfigError(
                f"llm.base_url '{self.base_url}' is not an http(s) URL. Write e.g. http://127.0.0.1:8080/v1"
            )


def make_llm(cfg: LLMConfig, cache_path: Path, desc: str = "generate") -> CachedLLM:
    if cfg.kind == "local":
        from tuneforge.llm.local import LocalLLM

        llm: LLM = LocalLLM.load(cfg.model, dtype=cfg.dtype, batch_size=cfg.batch_size)
    else:
        from tuneforge.llm.openai_http import OpenAIChatLLM

        llm = OpenAIChatLLM(
            cfg.model, cfg.base_url, cfg.api_key_env, cfg.max_concurrency, deadline=cfg.request_deadline
        )
    return CachedLLM(llm, cache_path, batch_size=cfg.batch_size, desc=desc)
