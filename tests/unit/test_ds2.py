import pytest

from tuneforge.data.ds2 import BLOOM, DS2Config, ds2_instruct, majority
from tuneforge.errors import DataError


class FakeDS2:
    """Keywords insulin / blood pressure; expansion adds glucose; each instruction gets 5 samples:
    3 agreeing ones for 'insulin' questions, only 2 for the others."""

    name = "fake"

    def __init__(self, keywords="1. insulin\n2. blood pressure"):
        self.keywords = keywords

    def chat(self, conversations, sampling):
        out = []
        for c in conversations:
            t = c[-1]["content"]
            if t.startswith("List "):
                out.append([self.keywords])
            elif t.startswith("In the healthcare domain, list two prerequisite"):
                out.append(["glucose\ninsulin"] if "insulin" in t else ["blood pressure"])  # repeats are dropped
            elif t.startswith("Write one question"):
                level = t.split("level '")[1].split("'")[0]
                kw = t.split("about ")[1].split(". It must")[0]
                out.append([f"Question about {kw} at level {level}?"])
            else:  # k samples
                agree = 3 if "'insulin'" in t and " and " not in t else 2
                same = "Insulin lowers blood sugar by helping cells absorb glucose."
                others = [
                    "Completely unrelated answer number one here.",
                    "Another different reply about weather.",
                    "A third reply talking of trains and buses.",
                ]
                out.append([same] * agree + others[: sampling.n - agree])
        return out


def test_keeps_a_3_of_5_majority_at_threshold_0_5_and_drops_2_of_5():
    records, report = ds2_instruct(FakeDS2(), DS2Config(domain="healthcare", pairs=1, expansion_rounds=1))
    assert report["keywords"] == ["insulin", "blood pressure", "glucose"]
    assert {r.meta["keywords"][0] for r in records} == {"insulin"}
    assert all(len(r.meta["keywords"]) == 1 for r in records)
    assert sorted(r.meta["bloom"] for r in records) == sorted(BLOOM)  # one per Bloom level
    assert all(r.meta["consistency"] == 0.6 and r.response.startswith("Insulin lowers") for r in records)
    assert report["validated"] == 6 and report["rejected_inconsistent"] == report["instructions"] - 6


def test_majority_groups_agreeing_answers():
    assert majority(["Yes.", "yes", "No", "YES!", "no"], 0.7) == ("Yes.", 3)


def test_a_stage_that_fails_says_so():
    with pytest.raises(DataError, match="stage 1 \\(keywords\\).*'healthcare'"):
        ds2_instruct(FakeDS2(keywords=""), DS2Config())
    with pytest.raises(DataError, match="stage 3 \\(self-consistency\\) kept none"):
        ds2_instruct(FakeDS2(), DS2Config(threshold=0.8))


def test_keyword_and_instruction_parsing_drops_junk():
    from tuneforge.data.ds2 import clean_instruction, parse_keywords

    assert parse_keywords("1. 1.1.1: 1.1.1: 1.1.1") == []
    assert parse_keywords("1. Blood pressure: the force of blood\n2) Insulin\n- 42") == ["Blood pressure", "Insulin"]
    answer = "1) Medical terminology - medical jargon; understanding of terms\n\n2) Patient education (for all)"
    assert parse_keywords(answer) == ["Medical terminology", "Patient education"]  # seen from SmolLM2-135M
    assert clean_instruction('The user asks: "What is insulin used for?"') == "What is insulin used for?"
    assert clean_instruction('A: "What is a medical term?') == "What is a medical term?"  # seen from SmolLM2-135M
    heading = "Advanced Concepts Building On It:\n- Pharmacology\nPrerequisite concepts:\n- Anatomy"
    assert parse_keywords(heading) == ["Pharmacology", "Anatomy"]  # echoed headings are not concepts
