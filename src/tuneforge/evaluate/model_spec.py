"""Model specs — `label=spec`, where spec is a model name / directory / .gguf, a `tuneforge train`
or `demo` run directory (its adapter on its base model, merged), a PEFT adapter directory, or a
served model `openai:MODEL@http://HOST:PORT/v1` (vLLM, SGLang, llama.cpp's server, Ollama — any
OpenAI-compatible endpoint) — parsed, checked before anything is written, and answered with, in one
place for every verb that answers with models (eval, safety)."""

from __future__ import annotations

import json
from pathlib import Path

from tuneforge.errors import ConfigError
from tuneforge.files import check_finished


def parse_models(specs: list[str]) -> list[tuple[str, str]]:
    out = []
    for s in specs:
        label, sep, spec = s.partition("=")
        label, spec = (label.strip(), spec.strip()) if sep else (Path(s.rstrip("/")).name or s, s)
        if not label or not spec:
            raise ConfigError(f"models entry '{s}': write label=spec, e.g. tuned=runs/demo-1")
        out.append((label, spec))
    labels = [lab for lab, _ in out]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"models has repeated labels {labels}; give each a distinct label=spec")
    if not out:
        raise ConfigError("models is empty: give at least one label=spec")
    return out


SERVED = "openai:"


def served_model(spec: str) -> tuple[str, str] | None:
    """(model name, base URL) of a served-model spec `openai:MODEL@URL`; None for any other spec."""
    if not spec.startswith(SERVED):
        return None
    name, sep, url = spec[len(SERVED) :].rpartition("@")
    if not sep or not name or not url.startswith(("http://", "https://")):
        raise ConfigError(f"served model '{spec}': write openai:MODEL@http://HOST:PORT/v1 (the server's base URL)")
    return name, url.rstrip("/")


def _check_server(url: str) -> None:
    """The endpoint answers GET /models (with $OPENAI_API_KEY as bearer token when it is set)."""
    import os

    import requests

    key = os.environ.get("OPENAI_API_KEY")
    try:
        r = requests.get(url + "/models", timeout=10, headers={"Authorization": f"Bearer {key}"} if key else {})
    except requests.RequestException as exc:
        raise ConfigError(
            f"the served model's endpoint {url} did not answer GET /models ({type(exc).__name__}). Start the "
            "server first (e.g. python -m llama_cpp.server --model M.gguf, vllm serve M, ollama serve)"
        ) from None
    if r.status_code in (401, 403):
        raise ConfigError(f"the endpoint {url} refused GET /models ({r.status_code}): set OPENAI_API_KEY to its key")
    if not r.ok:
        raise ConfigError(f"the endpoint {url} answered GET /models with {r.status_code}: is it OpenAI-compatible?")


def check_model_spec(spec: str) -> None:
    """Fail before anything is written when `spec` is no model: a run or adapter directory must hold
    an adapter_config.json; a served model's endpoint must answer; anything else must resolve as a
    model (see models.resolve_model)."""
    from tuneforge.models import check_hub_model

    served = served_model(spec)
    if served:
        _check_server(served[1])
        return

    path = Path(spec)
    if path.is_dir():
        check_finished(path)
    if (path / "adapter" / "adapter_config.json").exists() or (path / "adapter_config.json").exists():
        return
    if path.is_dir() and (path / "config.yaml").exists() and not (path / "config.json").exists():
        raise ConfigError(
            f"{spec} is a run directory without a trained adapter (no adapter/adapter_config.json): "
            "the run did not finish. Train it again, or give another model"
        )
    check_hub_model(spec)


def load_eval_model(spec: str, dtype: str = "auto", device: str = "auto"):
    """(model, tokenizer, description) for a model name, a run directory or an adapter directory."""
    import yaml

    from tuneforge.models import load_model
    from tuneforge.train.adapters import is_prompt_learning

    path = Path(spec)
    adapter = (
        path / "adapter"
        if (path / "adapter" / "adapter_config.json").exists()
        else path
        if (path / "adapter_config.json").exists()
        else None
    )
    if adapter is None:
        model, tok = load_model(spec, dtype, "sdpa", device)
        return model, tok, spec
    from peft import PeftModel

    cfg_path = path / "config.yaml"
    if cfg_path.exists() and adapter != path:
        base = yaml.safe_load(cfg_path.read_text())["model"]["name"]
    else:
        base = json.loads((adapter / "adapter_config.json").read_text()).get("base_model_name_or_path") or ""
    if not base:
        raise ConfigError(
            f"cannot tell the base model of {adapter}: no run config.yaml and no "
            "base_model_name_or_path in adapter_config.json"
        )
    model, tok = load_model(base, dtype, "sdpa", device)
    model = PeftModel.from_pretrained(model, str(adapter))
    if not is_prompt_learning(model):  # prompt learning has nothing to merge; a failed merge is an error
        model = model.merge_and_unload()  # merged weights decode faster
    model.eval()
    return model, tok, f"{base} + adapter {adapter}"


def answer_with_model(
    spec: str, label: str, items, cfg, path, dtype: str = "auto", device: str = "auto", desc: str = ""
):
    """Answer `items` with the model `spec` into the resumable answer file `path`: in process
    (`generate_answers`), or through a served model's OpenAI-compatible endpoint (`answer_with_llm`,
    with the synthesis client's bounded concurrency, retries and a request cache beside the answer
    file). Returns (generations, a description of the model)."""
    from tuneforge.generation import answer_with_llm, generate_answers

    served = served_model(spec)
    if served:
        from tuneforge.llm.cache import CachedLLM
        from tuneforge.llm.openai_http import OpenAIChatLLM

        name, url = served
        llm = CachedLLM(
            OpenAIChatLLM(name, url), path.with_suffix(".cache.sqlite"), batch_size=cfg.batch_size, desc=desc
        )
        return answer_with_llm(llm, items, cfg, label, path, desc=desc or label, identity=f"{name}@{url}"), spec
    model, tok, described = load_eval_model(spec, dtype, device)
    try:
        return generate_answers(model, tok, items, cfg, label, path, desc=desc or label), described
    finally:
        del model
