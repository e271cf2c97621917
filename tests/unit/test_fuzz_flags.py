"""Every numeric command-line flag of every verb (issue 29): NaN, ±inf, 1e400, text and a value
outside its range exit 2 with one line naming the flag — generated from the CLI's own table, so a
new flag is fuzzed as soon as it is declared."""

import pytest
from fuzzing import expect_user_error

from tuneforge.cli import VERBS


def _numeric_flags():
    for verb in VERBS:
        positional = [flags[0] for flags, kw in verb.args if not flags[0].startswith("-") and kw.get("nargs") != "*"]
        for flags, kw in verb.args:
            convert = kw.get("type")
            if flags[0].startswith("--") and getattr(convert, "__qualname__", "").startswith("_number_flag"):
                yield verb.words.split(), ["x"] * len(positional), flags[0], convert


def _bad_values(convert) -> list[str]:
    cells = dict(zip(convert.__code__.co_freevars, convert.__closure__))
    ge, gt, le = (cells[k].cell_contents for k in ("ge", "gt", "le"))
    values = ["nan", "inf", "-inf", "1e400", "abc", ""]
    if ge is not None:
        values.append(str(int(ge) - 1))
    if gt is not None:
        values.append(str(gt))
    if le is not None:
        values.append(str(int(le) + 1))
    return values


CASES = [
    pytest.param(words, pos, flag, value, id=f"{' '.join(words)} {flag}={value}")
    for words, pos, flag, convert in _numeric_flags()
    for value in _bad_values(convert)
]


def test_every_numeric_flag_is_fuzzed():
    assert len({(tuple(c.values[0]), c.values[2]) for c in CASES}) >= 12


@pytest.mark.parametrize("words,positional,flag,value", CASES)
def test_a_bad_numeric_flag_is_one_line(words, positional, flag, value, tmp_path, capsys):
    expect_user_error([*words, *positional, f"{flag}={value}"], [flag], tmp_path, capsys)
