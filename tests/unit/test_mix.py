from collections import Counter

import pytest

from tuneforge.data.mix import mix_counts, mix_datasets
from tuneforge.errors import ConfigError
from tuneforge.records import Example, Message


def _rows(name: str, n: int) -> list[Example]:
    return [
        Example(messages=[Message("user", f"{name} {i}"), Message("assistant", "ok")], id=f"{name}-{i}", source=name)
        for i in range(n)
    ]


def test_counts_follow_the_weights_and_sum_to_the_total():
    assert mix_counts([100, 10], [1, 1]) == [55, 55]
    assert sum(mix_counts([7, 5, 3], [0.2, 0.3, 0.5])) == 15
    assert mix_counts([4, 6], None) == [4, 6]


def test_a_small_source_is_repeated_whole_before_sampling_and_provenance_is_kept():
    big, small = _rows("big", 20), _rows("small", 3)
    mixed = mix_datasets([big, small], [1, 1], seed=0)
    sources = Counter(ex.source for ex in mixed)
    assert sources == {"big": 12, "small": 11}  # 23 rows split 50/50 (largest remainder)
    ids = Counter(ex.id for ex in mixed if ex.source == "small")
    assert set(ids) == {"small-0", "small-1", "small-2"} and min(ids.values()) >= 3
    assert len({ex.id for ex in mixed if ex.source == "big"}) == 12  # subsampled without repeats
    assert mix_datasets([big, small], [1, 1], seed=0) == mixed  # seeded


def test_bad_weights_are_config_errors():
    with pytest.raises(ConfigError, match="one weight per source"):
        mix_counts([3, 4], [1.0])
    with pytest.raises(ConfigError, match="positive sum"):
        mix_counts([3, 4], [0, 0])
    with pytest.raises(ConfigError, match="is empty"):
        mix_counts([0, 4], [1, 1])


def test_a_build_mixes_its_sources_with_the_same_counts_as_data_mix_and_training():
    from conftest import make_examples
    from tuneforge.data.mix import mix_by_source, mix_counts, mix_total

    a, b = make_examples(6), make_examples(4)
    for r in a:
        r.source = "manual"
    for r in b:
        r.source = "ds2/healthcare"
    mixed = mix_by_source(a + b, {"manual": 1.0, "ds2": 3.0}, ratio=0.5, seed=1)
    expected = mix_counts([6, 4], [1.0, 3.0], mix_total(0.5, 10))
    by = [sum(r.source.split("/")[0] == s for r in mixed) for s in ("manual", "ds2")]
    assert by == expected and len(mixed) == 5
    assert mix_by_source(a + b, {}, 1.0) == a + b  # no weights, α = 1: as they are
