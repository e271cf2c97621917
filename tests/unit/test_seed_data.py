from collections import Counter

from tuneforge.data.seed import DOMAINS, data_dir, load_seed


def test_every_domain_has_60_pairs_and_15_test_items():
    train, test = load_seed("train"), load_seed("test")
    per_domain = Counter(e.domain for e in train + test)
    assert set(per_domain) == set(DOMAINS)
    assert min(per_domain.values()) >= 60
    assert min(Counter(e.domain for e in test).values()) >= 15


def test_split_is_disjoint_with_unique_ids_and_both_kinds():
    train, test = load_seed("train"), load_seed("test")
    ids = [e.id for e in train + test]
    assert len(ids) == len(set(ids))
    assert not {e.instruction for e in train} & {e.instruction for e in test}
    for split in (train, test):
        for domain in DOMAINS:
            kinds = Counter(e.meta["kind"] for e in split if e.domain == domain)
            assert set(kinds) == {"fact", "reasoning"}, (domain, kinds)


def test_data_readme_documents_the_data():
    text = (data_dir() / "README.md").read_text()
    assert "limit" in text.lower() and "split" in text.lower()
