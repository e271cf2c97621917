import re

import pytest

from tuneforge.data.self_instruct import (
    SelfInstructConfig,
    instruction_problem,
    parse_instance,
    parse_instructions,
    self_instruct,
)
from tuneforge.records import Example, Message

SEED_WORDS = [f"w{i}" for i in range(100)]
BIG_SEED = " ".join(SEED_WORDS)
AT_071 = " ".join(SEED_WORDS[:71] + [f"x{i}" for i in range(29)])  # ROUGE-L F = 71/100 against BIG_SEED
AT_069 = " ".join(SEED_WORDS[:69] + [f"y{i}" for i in range(31)])  # 69/100


def seeds():
    others = [
        "Suggest a healthy breakfast without eggs.",
        "Translate the sentence into French.",
        "Classify the sentiment of the review.",
        "Summarise the news article in two lines.",
        "Explain what a mortgage is to a child.",
    ]
    return [
        Example(messages=[Message("user", t), Message("assistant", "ok")], id=f"s{i}")
        for i, t in enumerate([BIG_SEED] + others)
    ]


class FakeLLM:
    name = "fake"

    def __init__(self, batches):
        self.batches, self.prompts = list(batches), []

    def chat(self, conversations, sampling):
        out = []
        for c in conversations:
            text = c[-1]["content"]
            self.prompts.append(text)
            if text.startswith("Come up with a series"):
                out.append([self.batches.pop(0) if self.batches else ""])
            elif text.startswith("Can the following task"):
                out.append(["Yes" if "classify" in text.lower().split("task:")[-1] else "No"])
            elif "first state one class label" in text:
                out.append(["Output: positive\nInput: I love this phone."])
            else:
                out.append(["Input: \nOutput: Done as asked."])
        return out


def test_rouge_l_0_71_is_rejected_and_0_69_kept_with_every_rejection_counted():
    answer = "\n".join(
        [
            f"Task 7: {AT_071}",
            f"Task 8: {AT_069}",
            "Task 9: Draw a picture of a cat.",
            "Task 10: Hi there",
            "Task 11: ¿Qué hora es ahora mismo?",
        ]
    )
    llm = FakeLLM([answer])
    records, report = self_instruct(llm, seeds(), SelfInstructConfig(num_instructions=1, requests_per_round=1))
    assert [r.instruction for r in records] == [AT_069]
    assert records[0].meta["rouge_l_nearest"] == pytest.approx(0.69)
    assert records[0].source == "self_instruct" and records[0].meta["generator"] == "fake"
    assert report["rejected"] == {
        "ROUGE-L > 0.7 to the pool": 1,
        "needs a modality a text model lacks (keyword)": 1,
        "too short": 1,
        "starts with punctuation or a non-ASCII character": 1,
    }
    assert (
        report["candidates"] == 5 == report["instructions"] + sum(report["rejected"].values()) and report["kept"] == 1
    )


def test_prompts_mix_6_seed_and_2_generated_instructions_and_instances_follow_the_task_type():
    batches = [
        "Task 7: Classify the email as spam or not spam.\nTask 8: Write a haiku about autumn leaves.",
        "Task 9: Name three rivers in Africa and their lengths.",
        "Task 9: List four habits that improve sleep quality.",
    ]
    llm = FakeLLM(batches)
    records, _ = self_instruct(llm, seeds(), SelfInstructConfig(num_instructions=4, requests_per_round=1))
    generation = [p for p in llm.prompts if p.startswith("Come up with a series")]
    assert len(re.findall(r"^Task \d+:", generation[0], re.M)) == 6  # only seeds until 2 are generated
    later = re.findall(r"^Task \d+: (.*)$", generation[1], re.M)
    first_two = {r.instruction.split("\n\n")[0] for r in records[:2]}
    assert len(later) == 8 and len(set(later) & first_two) == 2
    spam = next(r for r in records if "spam" in r.instruction)
    assert spam.meta["is_classification"] and spam.response == "positive"
    assert spam.messages[0].content.endswith("I love this phone.")  # output-first: the input came with its label
    haiku = next(r for r in records if "haiku" in r.instruction)
    assert not haiku.meta["is_classification"] and haiku.response == "Done as asked."


def test_heuristics_and_parsers():
    cfg = SelfInstructConfig()
    assert instruction_problem("Write a program that sorts numbers.", cfg)
    assert instruction_problem("Plot the sales figures by month.", cfg)
    assert instruction_problem("Give three tips for saving money on groceries.", cfg) == ""
    assert parse_instructions("Task 9: First one.\n10. Second one\n- Third one\n\n") == [
        "First one.",
        "Second one",
        "Third one",
    ]
    assert parse_instance("Input: 2+2\nOutput: 4") == ("2+2", "4")
    assert parse_instance("Output: positive\nInput: great film") == ("great film", "positive")
    assert parse_instance("Input: \nOutput: done") == ("", "done")
    assert parse_instance("no structure here") is None


def test_classification_verdicts_that_are_neither_yes_nor_no_are_counted():
    class Unsure(FakeLLM):
        def chat(self, conversations, sampling):
            out = super().chat(conversations, sampling)
            return [
                ["Maybe, it depends"]
                if c[-1]["content"].startswith("Can the following task") and "haiku" in c[-1]["content"]
                else o
                for c, o in zip(conversations, out)
            ]

    llm = Unsure(["Task 7: Classify the email as spam or not spam.\nTask 8: Write a haiku about autumn leaves."])
    records, report = self_instruct(llm, seeds(), SelfInstructConfig(num_instructions=2, requests_per_round=1))
    assert report["classification_unparsed"] == 1  # the haiku's "Maybe": counted, taken as input-first
    assert not next(r for r in records if "haiku" in r.instruction).meta["is_classification"]
