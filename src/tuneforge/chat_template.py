"""Chat templates: the tokenizer's own, a named one, or a Jinja file — and the end-of-turn check.

A model learns to end its answers with whatever token closes an assistant turn in the training
template. If generation stops on a different token, the tuned model never stops (the Llama-3
`<|eot_id|>` vs `<|end_of_text|>` bug). `check_end_of_turn` renders a conversation, finds the
token that closes the assistant turn, and fails loudly unless generation stops on it.
"""

from __future__ import annotations

from pathlib import Path

from tuneforge.errors import ConfigError, DataError, TuneforgeError, read_text, suggest

# The templates use `eos_token` (the tokenizer's) or their own markers; `add_generation_prompt`
# opens an assistant turn, as the Hugging Face templates do.
CHAT_TEMPLATES = {
    "chatml": (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
    "llama3": (
        "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
        "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
        "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
    ),
    "zephyr": (
        "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
    ),
    "alpaca": (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
        "{% elif m['role'] == 'user' %}### Instruction:\n{{ m['content'] }}\n\n"
        "{% else %}### Response:\n{{ m['content'] }}{{ eos_token }}\n\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}### Response:\n{% endif %}"
    ),
}


def check_chat_template(template: str) -> str | None:
    """The template's text when `template` names one (a known name or a .jinja file), after checking
    that Jinja can compile it — before any model is loaded or file written. '' → None."""
    if not template:
        return None
    if template in CHAT_TEMPLATES:
        return CHAT_TEMPLATES[template]
    if not (template.endswith(".jinja") or Path(template).is_file()):
        raise ConfigError(
            f"model.chat_template '{template}' is neither a known template nor a file."
            f"{suggest(template, CHAT_TEMPLATES)} Known: {', '.join(CHAT_TEMPLATES)}"
        )
    path = Path(template)
    if not path.is_file():
        raise ConfigError(f"model.chat_template: no such file {path}")
    text = read_text(path, "chat template")
    # the environment transformers renders chat templates with
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    try:
        ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).parse(text)
    except TemplateSyntaxError as exc:
        raise DataError(
            f"chat template is not valid Jinja: {exc.message}. Fix the template (model.chat_template)",
            path=str(path),
            line=exc.lineno,
        ) from None
    return text


def set_chat_template(tokenizer, template: str = "", eos_token: str = ""):
    """Use `template` ('' = the tokenizer's own, a name from CHAT_TEMPLATES, or a .jinja file)
    and, if given, make `eos_token` the token generation stops on. Returns the tokenizer."""
    if eos_token:
        if tokenizer.convert_tokens_to_ids(eos_token) in (None, tokenizer.unk_token_id):
            raise ConfigError(
                f"model.eos_token '{eos_token}' is not a token of this tokenizer. Use one of its "
                f"special tokens: {', '.join(tokenizer.all_special_tokens[:12])}"
            )
        tokenizer.eos_token = eos_token
    if not template:
        if not tokenizer.chat_template:
            raise ConfigError(
                "this tokenizer has no chat template. Set model.chat_template to one of "
                f"{', '.join(CHAT_TEMPLATES)} or to a .jinja file"
            )
        return tokenizer
    tokenizer.chat_template = check_chat_template(template)
    return tokenizer


def stop_token_ids(tokenizer, model=None) -> list[int]:
    """The ids generation stops on: the tokenizer's EOS and the model's generation_config EOS."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    gen = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids |= set(gen if isinstance(gen, list) else [gen] if gen is not None else [])
    return sorted(ids)


def end_of_turn_token(tokenizer) -> tuple[int, str]:
    """(id, text) of the token that closes an assistant turn in the tokenizer's template."""
    probe = "tuneforge probe answer"
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": probe}], tokenize=False
    )
    end = text.rfind(probe) + len(probe)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    after = [(i, s) for i, (s, _) in zip(enc["input_ids"], enc["offset_mapping"]) if s >= end]
    if not after:
        raise TuneforgeError(
            "the chat template adds nothing after an assistant answer, so a tuned model "
            "cannot learn to stop. Use a template that ends turns with an end token "
            f"(model.chat_template: {', '.join(CHAT_TEMPLATES)})"
        )
    tok_id = after[0][0]
    return tok_id, tokenizer.convert_ids_to_tokens(tok_id)


def check_end_of_turn(tokenizer, model=None) -> int:
    """Fail loudly unless generation stops on the token that ends assistant turns in training."""
    tok_id, tok = end_of_turn_token(tokenizer)
    stops = stop_token_ids(tokenizer, model)
    if tok_id not in stops:
        names = ", ".join(f"'{tokenizer.convert_ids_to_tokens(i)}' (id {i})" for i in stops) or "nothing"
        raise ConfigError(
            f"the chat template ends assistant turns with '{tok}' (id {tok_id}) but generation stops at {names}: "
            f"a model trained on it would not stop answering. Set model.eos_token='{tok}' if it is a special "
            "token, or choose a model.chat_template that ends turns with the tokenizer's EOS"
        )
    return tok_id
