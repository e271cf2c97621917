from tuneforge.data.evol_instruct import EvolConfig, elimination_reason, evol_instruct
from tuneforge.data.teacher import distill
from tuneforge.records import EvalItem, Example, Message

LONG_ANSWER = "Here is a careful answer that explains each of the steps involved in detail."


class ScriptedLLM:
    """Evolves instruction i into EVOLVED[i] and answers from ANSWERS; judges EQUAL ones equal."""

    name = "fake"

    def __init__(self, evolved, answers, equal=()):
        self.evolved, self.answers, self.equal = evolved, answers, set(equal)

    def chat(self, conversations, sampling):
        out = []
        for c in conversations:
            text = c[-1]["content"]
            if "#Given Prompt#" in text:
                out.append([self.evolved[text.split("#Given Prompt#:\n")[1]]])
            elif text.startswith("Here are two instructions"):
                second = text.split("Second: ")[1]
                out.append(["Equal" if second in self.equal else "Not Equal"])
            else:
                out.append([self.answers.get(text, LONG_ANSWER)])
        return out


def test_each_of_the_four_elimination_rules_drops_its_case_and_a_good_evolution_survives():
    seeds = [
        Example(messages=[Message("user", f"Task {i} about budgets."), Message("assistant", "ok")], id=f"s{i}")
        for i in range(5)
    ]
    evolved = {
        "Task 0 about budgets.": "Task 0 about budgets, restated.",  # rule 1 (judged equal)
        "Task 1 about budgets.": "Plan a budget for a family of five on 2,000 dollars.",  # rule 2
        "Task 2 about budgets.": "Explain budgets with exactly three rules.",  # rule 3
        "Task 3 about budgets.": "#Rewritten Prompt#: Task 3 about budgets in detail.",  # rule 4
        "Task 4 about budgets.": "Compare zero-based and envelope budgeting for a student.",
    }
    answers = {
        "Plan a budget for a family of five on 2,000 dollars.": "Sorry, I cannot help with that.",
        "Explain budgets with exactly three rules.": "the and of , it is .",
    }
    llm = ScriptedLLM(evolved, answers, equal={"Task 0 about budgets, restated."})
    records, report = evol_instruct(llm, seeds, EvolConfig(rounds=1))
    assert [r.instruction for r in records] == ["Compare zero-based and envelope budgeting for a student."]
    assert records[0].meta["parent"] == "s4" and records[0].response == LONG_ANSWER
    assert report["eliminated"] == {
        "1: no information gain": 1,
        "2: answer says sorry and is short": 1,
        "3: answer is only punctuation and stop words": 1,
        "4: copies words from the evolving prompt": 1,
    }


def test_a_long_apology_is_not_eliminated_by_rule_2():
    long_sorry = "Sorry for the wait. " + " ".join(["Budgeting means planning spending."] * 30)
    assert elimination_reason("a", "b", long_sorry, judged_equal=False) == ""


def test_distill_keeps_provenance_and_reports_empty_answers():
    class Teacher:
        name = "teacher-x"

        def chat(self, conversations, sampling):
            return [[""] if "empty" in c[-1]["content"] else [f"Answer to {c[-1]['content']}"] for c in conversations]

    items = [
        EvalItem(messages=[Message("user", "What is APR?")], references=["..."], id="q1", domain="finance"),
        EvalItem(messages=[Message("user", "empty please")], references=["..."], id="q2"),
    ]
    records, report = distill(Teacher(), items)
    assert [r.id for r in records] == ["distill-q1"] and records[0].response == "Answer to What is APR?"
    assert records[0].meta["generator"] == "teacher-x" and records[0].domain == "finance"
    assert report == {"prompts": 2, "kept": 1, "empty_answers": 1, "empty_ids": ["q2"]}


def test_unreadable_equality_verdicts_are_counted_not_silently_read_as_no():
    class Mumbling(ScriptedLLM):
        def chat(self, conversations, sampling):
            out = super().chat(conversations, sampling)
            return [
                ["Hmm, hard to say"] if c[-1]["content"].startswith("Here are two") else o
                for c, o in zip(conversations, out)
            ]

    seeds = [
        Example(messages=[Message("user", f"Task {i} about loans."), Message("assistant", "ok")], id=f"s{i}")
        for i in range(3)
    ]
    evolved = {
        f"Task {i} about loans.": f"Compare {i} kinds of loan for a student with a part-time job." for i in range(3)
    }
    _, report = evol_instruct(Mumbling(evolved, {}), seeds, EvolConfig(rounds=1))
    assert report["verdicts_unparsed"] == 3
