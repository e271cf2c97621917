import pytest

from tuneforge.chat_template import (
    CHAT_TEMPLATES,
    check_end_of_turn,
    end_of_turn_token,
    set_chat_template,
)
from tuneforge.errors import ConfigError
from tuneforge.models import tiny_tokenizer
from tuneforge.records import Example, Message
from tuneforge.tokenisation import IGNORE, encode_example


def test_the_tokenizers_own_template_ends_turns_with_its_eos():
    tok = tiny_tokenizer()
    assert end_of_turn_token(tok)[1] == "<|im_end|>"
    assert check_end_of_turn(tok) == tok.convert_tokens_to_ids("<|im_end|>")


def test_an_eos_that_differs_from_the_end_of_turn_is_a_loud_error_with_the_fix():
    tok = tiny_tokenizer()
    tok.eos_token = "<|endoftext|>"  # the Llama-3 class of bug: turns end with one token, generation stops at another
    with pytest.raises(ConfigError, match=r"ends assistant turns with '<\|im_end\|>'.*model.eos_token='<\|im_end\|>'"):
        check_end_of_turn(tok)
    set_chat_template(tok, eos_token="<|im_end|>")
    assert check_end_of_turn(tok) == tok.eos_token_id


@pytest.mark.parametrize("name", sorted(set(CHAT_TEMPLATES) - {"llama3"}))
def test_named_templates_render_and_mask_the_answer(name):
    tok = set_chat_template(tiny_tokenizer(), name)
    if name in ("zephyr", "alpaca"):  # they close turns with the tokenizer's EOS
        assert end_of_turn_token(tok)[1] == tok.eos_token
        check_end_of_turn(tok)
    ex = Example(messages=[Message("user", "Is it safe?"), Message("assistant", "Ask your doctor.")])
    enc = encode_example(ex, tok, mask="assistant")
    target_text = tok.decode([t for t in enc.labels if t != IGNORE])
    assert target_text.startswith("Ask your doctor.") and "Is it safe" not in target_text
    prompt = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert prompt.rstrip().endswith(("assistant", "<|assistant|>", "### Response:"))


def test_llama3_template_on_a_tokenizer_without_its_tokens_fails_the_check():
    tok = set_chat_template(tiny_tokenizer(), "llama3")
    with pytest.raises(ConfigError, match="would not stop answering"):
        check_end_of_turn(tok)


def test_unknown_template_names_and_eos_tokens_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="Did you mean: chatml"):
        set_chat_template(tiny_tokenizer(), "chatm")
    with pytest.raises(ConfigError, match="not a token of this tokenizer"):
        set_chat_template(tiny_tokenizer(), eos_token="<|eot_id|>")
    jinja = tmp_path / "t.jinja"
    jinja.write_text(CHAT_TEMPLATES["zephyr"])
    assert set_chat_template(tiny_tokenizer(), str(jinja)).chat_template == CHAT_TEMPLATES["zephyr"]
