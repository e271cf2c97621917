"""Model specs — `label=spec`, where spec is a model name / directory / .gguf, a `tuneforge train`
or `demo` run directory (its adapter on its base model, merged), a PEFT adapter directory, or a
served model `openai:MODEL@http://HOST:PORT/v1` (vLLM, SGLang, llama.cpp's server, Ollama — any
OpenAI-compatible endpoint) — parsed, checked before anything is written, and answered with, in one
place for every verb that answers with models (eval, safety)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tuneforge.errors import ConfigError
from tuneforge.files import check_finished

_LABEL = re.compile(r"^(?!\.\.?$)[A-Za-z0-9._-]{1,100}$")


def parse_models(specs: list[str]) -> list[tuple[str, str]]:
    out = []
    for s in specs:
        label, sep, spec = s.partition("=")
        label, spec = (label.strip(), spec.strip()) if sep else (Path(s.rstrip("/")).name or s, s)
        if not label or not spec:
            raise ConfigError(f"models entry '{s}': write label=spec, e.g. tuned=runs/demo-1")
        if not _LABEL.match(label):  # a label names files (generations/LABEL.jsonl): it must stay in its folder
            raise ConfigError(
                f"models entry '{s}': the label '{label}' must be letters, digits, '.', '_' or '-' (no '/' or "
                "'..'), as it names the model's files. Write e.g. tuned=runs/demo-1"
            )
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
    from tuneforge.config import read_yaml
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
        base = read_yaml(cfg_path, "run config")[0]["model"]["name"]
    else:
        base = json.loads((adapter / "adapter_config.json").read_text()).get("base_model_name_or_path") or ""
    if not base:
        raise ConfigError(
            f"cannot tell the base model of {adapter}: no run config.yaml and no "
            "base_model_name_or_path in adapter_config.json"
        )
    run_tok = None
    if (adapter / "tokenizer_config.json").exists():  # the run's own tokenizer: the template and EOS it trained on
        from transformers import AutoTokenizer

        from tuneforge.chat_template import check_template_text

        try:
            run_tok = AutoTokenizer.from_pretrained(adapter, trust_remote_code=False)
        except Exception as exc:  # noqa: BLE001 — tokenizers raises bare Exception for a damaged tokenizer.json
            raise ConfigError(
                f"cannot load the run's tokenizer from {adapter} ({type(exc).__name__}: {str(exc)[:200]}). "
                "Train the run again, or evaluate its base model"
            ) from None
        run_tok.pad_token = run_tok.pad_token or run_tok.eos_token
        if run_tok.chat_template:
            check_template_text(run_tok.chat_template, str(adapter), "the run's chat template")
    model, tok = load_model(base, dtype, "sdpa", device)
    tok = run_tok or tok
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
