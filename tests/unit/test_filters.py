from tuneforge.data.decontam import decontaminate
from tuneforge.data.dedup import deduplicate, jaccard
from tuneforge.data.record_text import shingles
from tuneforge.records import EvalItem, Example, Message

LONG = (
    "Explain how compound interest differs from simple interest when you save a fixed amount "
    "every month for ten years in a bank account that pays a steady annual rate"
)


def ex(i, question, answer="An answer."):
    return Example(messages=[Message("user", question), Message("assistant", answer)], id=f"r{i}")


def test_planted_exact_and_near_duplicates_are_removed_and_reported():
    records = [
        ex(0, LONG),
        ex(1, "What is a Roth IRA?"),
        ex(2, LONG.upper() + "!!"),  # exact after normalising
        ex(3, LONG + " please"),  # near: one word added
        ex(4, "What is a traditional IRA and how is it taxed when I retire?"),
        ex(5, "what is a roth ira"),
    ]
    kept, removed = deduplicate(records, threshold=0.7)
    assert [r.id for r in kept] == ["r0", "r1", "r4"]
    why = {r.id: r for r in removed}
    assert why["r2"].reason == "exact duplicate" and why["r2"].other == "r0"
    assert why["r5"].other == "r1"
    assert why["r3"].reason.startswith("near duplicate") and why["r3"].other == "r0" and why["r3"].score >= 0.7


def test_the_threshold_is_the_exact_jaccard_of_5_gram_shingles():
    a, b = LONG, LONG.replace("ten years", "twelve years")
    sim = jaccard(shingles(a, 5), shingles(b, 5))
    assert 0.6 < sim < 0.8
    assert len(deduplicate([ex(0, a), ex(1, b)], threshold=sim - 0.01)[0]) == 1
    assert len(deduplicate([ex(0, a), ex(1, b)], threshold=sim + 0.01)[0]) == 2


def test_planted_test_set_leaks_are_removed_with_the_shared_words():
    test = [
        EvalItem(
            messages=[Message("user", LONG)], references=["Compound interest earns interest on interest."], id="test-7"
        ),
        EvalItem(messages=[Message("user", "Short one?")], references=["Yes."], id="test-8"),
    ]
    train = [
        ex(0, "Tell me: " + LONG[:120] + " and more words here"),  # 13+ words of the test prompt
        ex(1, "How do savings accounts pay interest?"),
        ex(2, "Summarise", answer="Compound interest earns interest on interest."),  # 6 words only: kept
        ex(3, "Short one?", answer="A new answer."),  # the short test prompt repeated: removed
        ex(4, "Is this a short one?"),
    ]  # merely containing it: kept
    kept, removed = decontaminate(train, test, n=13)
    assert [r.id for r in kept] == ["r1", "r2", "r4"]
    assert [(r.id, r.other) for r in removed] == [("r0", "test-7"), ("r3", "test-8")]
    assert len(removed[0].detail.split()) == 13 and removed[0].detail in " ".join(LONG.lower().split())


def test_every_shipped_test_prompt_planted_with_a_new_answer_is_removed_and_the_train_split_mostly_kept():
    from tuneforge.data.seed import load_seed

    test = [EvalItem.from_example(e) for e in load_seed("test")]
    plants = [
        Example(
            messages=[*t.messages, Message("assistant", "A new answer written only for this plant.")], id=f"plant-{i}"
        )
        for i, t in enumerate(test)
    ]
    kept, removed = decontaminate(plants, test)
    assert len(test) == 79 and kept == [] and {r.other for r in removed} == {t.id for t in test}
    # false positives: the hand-written train split shares no prompt with the test split; the one record
    # removed shares a 13-word safety sentence with a test reference (a real overlap, listed in `detail`)
    train = load_seed("train")
    kept, removed = decontaminate(train, test)
    assert len(removed) / len(train) < 0.01, [(r.id, r.detail) for r in removed]


PARAPHRASES = {
    "healthcare-005": "How do type 1 diabetes and type 2 diabetes differ?",
    "healthcare-021": "Why do people get migraine headaches?",
    "healthcare-037": "Can you explain the idea of herd immunity?",
    "healthcare-053": "Why would a doctor order a colonoscopy?",
    "finance-005": "What is the meaning of APR?",
    "finance-021": "Explain what a dividend is.",
    "finance-037": "What are exchange-traded funds?",
    "finance-053": "What counts as financial fraud, and how do I protect myself from it?",
    "legal-007": "During a storm my neighbour's tree came down on my car. Who has to pay for the repairs?",
    "legal-023": "A business is using pictures from my website on its page without my permission. What are my options?",
    "legal-039": "Is it legal for my landlord to evict me with only a week's notice?",
    "legal-055": "I cancelled a subscription but the company still charged my card. What can I do about it?",
    "travel-007": "When is the best time to go to Japan in spring for the cherry blossoms?",
    "travel-023": "When travelling abroad, is tap water safe to drink?",
    "travel-039": "For two weeks of travel around Europe, is a rail pass worth it?",
    "travel-055": "How can I prevent altitude sickness when I visit a high city such as Cusco?",
    "education-007": "I can't sleep or study because my roommate is so loud. What should I do?",
    "education-023": "Nobody in my family has been to university before me. How should I get ready?",
    "education-039": "How many hours each week should I spend studying with a full-time course load?",
    "education-055": "My GPA is 2.8 but my scholarship needs a 3.0. What can I do?",
}


def test_paraphrased_test_prompts_are_reported_or_removed_and_unrelated_records_kept():
    """Issue 15: each of 20 paraphrases of shipped test prompts (no shared 13-gram) is found by the
    MiniLM near-match check at cosine 0.8 — reported, or removed with near_remove — while none of the
    244 same-domain train-split records is (measured: every plant ≥ 0.80, the closest train record 0.68)."""
    from tuneforge.data.build_config import FilterConfig
    from tuneforge.data.filters import apply_filters
    from tuneforge.data.seed import load_examples

    plants = [
        Example(
            messages=[Message("user", q), Message("assistant", "A new answer written for training.")],
            id=f"plant-{k}",
            domain=k.split("-")[0],
            source="manual",
        )
        for k, q in PARAPHRASES.items()
    ]
    train = load_examples("seed:train")
    cfg = FilterConfig(near_threshold=0.8, dedup=False)
    kept, removed, reports = apply_filters(plants + train, cfg)
    near = reports["near_matches"]
    assert {(m["id"], m["eval_id"]) for m in near["matches"]} == {(f"plant-{k}", k) for k in PARAPHRASES}
    assert near["n"] == 20 and len(kept) == 20 + len(train) - len(removed)  # reported, not removed
    assert not [r for _, r in removed if r.id.startswith("plant-")]  # the n-gram check alone misses them all
    kept, removed, _ = apply_filters(plants + train, FilterConfig(near_threshold=0.8, near_remove=True, dedup=False))
    assert {r.id for f, r in removed if f == "near_match"} == {f"plant-{k}" for k in PARAPHRASES}
    other = [r for f, r in removed if f != "near_match"]  # the n-gram check's one known train false positive
    assert not any(r.id.startswith("plant-") for r in kept) and len(kept) == len(train) - len(other) and len(other) <= 1
