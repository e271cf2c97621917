"""Secrets are masked in text meant for people (tuneforge.redaction)."""

import pytest

from tuneforge.redaction import MASK, redact, register_secret


def test_a_registered_secret_is_masked_wherever_it_occurs():
    register_secret("tf-redaction-test-secret-1")
    text = "key tf-redaction-test-secret-1 in x=tf-redaction-test-secret-1&y"
    assert redact(text) == f"key {MASK} in x={MASK}&y"


def test_empty_and_short_values_are_not_registered():
    register_secret("")
    register_secret(None)
    register_secret("abc1234")  # 7 characters: too likely to be an ordinary word
    assert redact("abc1234 stays") == "abc1234 stays"


def test_a_longer_secret_that_contains_a_shorter_one_is_masked_whole():
    register_secret("tf-redaction-inner")
    register_secret("tf-redaction-inner-and-outer")
    assert redact("[tf-redaction-inner-and-outer]") == f"[{MASK}]"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Authorization: Bearer abc.def-123", "Authorization: Bearer ***"),
        ('{"Authorization": "Bearer abc.def-123", "x": 1}', '{"Authorization": "Bearer ***", "x": 1}'),
        ("{'authorization': 'Basic dXNlcjpwYXNz'}", "{'authorization': 'Basic ***'}"),
        ("GET /v1?api_key=abc123&x=1", "GET /v1?api_key=***&x=1"),
        ('{"api_key": "abc123"}', '{"api_key": "***"}'),
        ("x-api-key: abc123", "x-api-key: ***"),
        ('"headers": {"authorization": ["Bearer abc.def"]}', '"headers": {"authorization": ["Bearer ***"]}'),
    ],
)
def test_credential_shapes_are_masked_without_registration(text, expected):
    assert redact(text) == expected


def test_ordinary_text_is_left_alone():
    text = "HTTP 400: model 'm' not found. Is OPENAI_API_KEY set? Use api_key_env to name it."
    assert redact(text) == text
