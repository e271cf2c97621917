import json
import random
from collections import Counter

import pytest
from chat_server import ChatServer

from tuneforge.cli import main
from tuneforge.data.idea_mcts import IdeaMCTSConfig, Node, NodeReward, Rewards, idea_mcts, search
from tuneforge.data.io import read_records, write_records
from tuneforge.data.self_instruct import RougeNovelty
from tuneforge.errors import ConfigError
from tuneforge.records import Example, Message

# 17 distinct content words: informativeness 1 with informative_words=10
ANSWER = (
    "List monthly income, rent, groceries, transport, insurance and savings; compare spending against "
    "targets, trim subscriptions, automate transfers, review quarterly."
)
VERBS = ["Compare", "Summarise", "Critique", "Estimate", "Rank", "Outline", "Justify", "Forecast"]
TOPICS = ["mortgages", "pensions", "tuition", "inflation", "dividends", "rent", "annuities", "tariffs"]
WHO = ["retirees", "nurses", "students", "farmers", "pilots", "bakers", "miners", "artists"]


def _rewrite(k: int) -> str:
    """The k-th rewrite: few words shared with the others, so its diversity stays high."""
    return f"{VERBS[k % 8]} {TOPICS[(k // 8) % 8]} {WHO[(k // 64) % 8]} {k}"


class FakeTeacher:
    """Rewrites into _rewrite(1), _rewrite(2), ...; answers ANSWER, or a refusal for `refuse`."""

    name = "fake"

    def __init__(self, refuse=()):
        self.calls, self.rewrites, self.refuse = 0, 0, set(refuse)

    def chat(self, conversations, sampling):
        out = []
        for c in conversations:
            self.calls += 1
            text = c[-1]["content"]
            if "#Given Prompt#" in text:
                self.rewrites += 1
                out.append([_rewrite(self.rewrites)])
            else:
                out.append(["Sorry, I cannot help with that." if text in self.refuse else ANSWER])
        return out


def _seed(i: int, text: str) -> Example:
    return Example(messages=[Message("user", text), Message("assistant", "ok")], id=f"s{i}", domain="finance")


def test_uct_picks_the_hand_computed_expansions_not_greedy_nor_breadth_first():
    # Fixed rewards by node text; R.2.1 is the first rewrite of R.2. c=1, max_children=2, max_depth=3;
    # budget 11 calls = 5 expansions of 2 calls (the 11th call cannot buy a sixth).
    #   1. root has 0 < 2 children → expand root: R.1 (0.2).            root N=1 V=0.2
    #   2. root has 1 < 2 children → expand root: R.2 (0.8).            root N=2 V=1.0
    #   3. root full. UCT(R.1) = 0.2 + sqrt(ln 2 / 1) = 1.033, UCT(R.2) = 0.8 + 0.833 = 1.633
    #      → R.2, which can grow → R.2.1 (0.6).                         R.2 N=2 V=1.4, root N=3
    #   4. UCT(R.1) = 0.2 + sqrt(ln 3 / 1) = 1.248, UCT(R.2) = 0.7 + sqrt(ln 3 / 2) = 1.441
    #      → R.2 → R.2.2 (0.1).                                         R.2 N=3 V=1.5, root N=4
    #   5. UCT(R.1) = 0.2 + sqrt(ln 4 / 1) = 1.377, UCT(R.2) = 0.5 + sqrt(ln 4 / 3) = 1.180
    #      → R.1: exploration beats R.2's higher mean (greedy would go R.2 → R.2.1 → R.2.1.1;
    #      breadth-first would have expanded R.1 at step 3) → R.1.1 (0.9).
    table = {"R.1": 0.2, "R.2": 0.8, "R.2.1": 0.6, "R.2.2": 0.1, "R.1.1": 0.9}
    made = Counter()

    def propose(text, operator):
        made[text] += 1
        return f"{text}.{made[text]}"

    cfg = IdeaMCTSConfig(budget=11, c=1.0, max_children=2, max_depth=3, keep_threshold=0.5)
    reward = lambda node: Rewards(executability=1.0, total=table.get(node.text, 0.0))  # noqa: E731
    tree = search("R", propose, lambda t: f"answer to {t}", reward, cfg, random.Random(0))

    assert [n.text for n in tree.nodes] == ["R.1", "R.2", "R.2.1", "R.2.2", "R.1.1"]
    assert tree.calls == 10
    stats = {n.text: (n.visits, round(n.value, 6)) for n in [tree.root, *tree.nodes]}
    assert stats == {
        "R": (5, 2.6),
        "R.1": (2, 1.1),
        "R.2": (3, 1.5),
        "R.2.1": (1, 0.6),
        "R.2.2": (1, 0.1),
        "R.1.1": (1, 0.9),
    }
    assert [n.text for n in tree.nodes if n.rewards.kept(cfg.keep_threshold)] == ["R.2", "R.2.1", "R.1.1"]
    assert [n.depth for n in tree.nodes] == [1, 1, 2, 2, 2]


@pytest.mark.parametrize("budget,judge,expansions", [(7, False, 3), (8, False, 4), (7, True, 2), (9, True, 3)])
def test_the_budget_in_teacher_calls_per_seed_is_never_passed(budget, judge, expansions):
    teacher = FakeTeacher()
    judged = []
    scorer = (lambda i, a: judged.append(i) or 1.0) if judge else None
    cfg = IdeaMCTSConfig(budget=budget, max_children=2, max_depth=3, informative_words=10)
    seeds = [_seed(0, "Plan a weekly grocery budget."), _seed(1, "Explain how credit scores work.")]
    _, report = idea_mcts(teacher, seeds, cfg, judge=scorer)
    assert report["expansions"] == 2 * expansions
    assert teacher.calls == 2 * 2 * expansions and len(judged) == (2 * expansions if judge else 0)
    assert report["teacher_calls"] == teacher.calls + len(judged) <= 2 * budget


def test_a_full_tree_stops_before_the_budget_is_spent():
    teacher = FakeTeacher()
    cfg = IdeaMCTSConfig(budget=40, max_children=2, max_depth=2, informative_words=10)
    _, report = idea_mcts(teacher, [_seed(0, "Plan a weekly grocery budget.")], cfg)
    assert report["expansions"] == 2 + 4 and report["teacher_calls"] == teacher.calls == 12  # 2 + 2·2 nodes


def _node(text: str, parent: str = "Explain budgets.", answer: str = ANSWER) -> Node:
    node = Node(text, "deepen", 1, Node(parent))
    node.answer = answer
    return node


def test_diversity_is_zero_for_a_duplicate_of_a_kept_instruction_and_higher_for_a_new_one():
    cfg = IdeaMCTSConfig(keep_threshold=0.5, informative_words=10)
    reward = NodeReward(cfg, RougeNovelty(["Explain budgets."]), None, None)
    first = reward(_node("Compare fixed and variable mortgage rates for a first-time buyer."))
    assert first.diversity > 0.8 and first.kept(cfg.keep_threshold)  # so it joins the pool
    again = reward(_node("Compare fixed and variable mortgage rates for a first-time buyer.", parent="Other."))
    other = reward(_node("Summarise how pension annuities pay out each year."))
    assert again.diversity == 0.0
    assert other.diversity > 0.5 and other.total > again.total


@pytest.mark.parametrize(
    "answer,why",
    [
        ("Sorry, I cannot help with that.", "2: answer says sorry and is short"),
        ("", "3: answer is only punctuation and stop words"),
        ("the and of , it is .", "3: answer is only punctuation and stop words"),
        ("Compare the pension plans for nurses.", "answer repeats the instruction"),  # an echo, not an answer
    ],
)
def test_a_refusal_or_an_empty_answer_scores_zero_and_is_not_kept(answer, why):
    cfg = IdeaMCTSConfig(keep_threshold=0.0)
    r = NodeReward(cfg, RougeNovelty([]), None, None)(_node("Compare pension plans for nurses.", answer=answer))
    assert (r.total, r.executability, r.why_not) == (0.0, 0.0, why)
    assert not r.kept(0.0)


def test_refused_rewrites_are_dropped_by_reason_and_never_expanded():
    teacher = FakeTeacher(refuse={_rewrite(1)})
    cfg = IdeaMCTSConfig(budget=8, max_children=1, max_depth=3, informative_words=10)
    records, report = idea_mcts(teacher, [_seed(0, "Plan a weekly grocery budget.")], cfg)
    # the only child was refused: as a dead end it gets no child, and the tree stops there
    assert records == [] and report["expansions"] == 1 and teacher.calls == 2
    assert report["dropped"] == {"2: answer says sorry and is short": 1}


def test_every_kept_record_carries_its_path_rewards_and_generator():
    cfg = IdeaMCTSConfig(budget=10, max_children=2, max_depth=3, informative_words=10)
    seed = _seed(7, "Plan a weekly grocery budget.")
    records, report = idea_mcts(FakeTeacher(), [seed], cfg)
    assert len(records) == report["kept"] == 5
    for r in records:
        m = r.meta
        assert r.source == "idea_mcts" and r.domain == "finance" and m["generator"] == "fake"
        assert m["seed_instruction"] == seed.instruction and m["seed_id"] == "s7"
        assert m["path"][0] == {"instruction": seed.instruction, "operator": ""}
        assert m["path"][-1]["instruction"] == r.instruction and len(m["path"]) == m["depth"] + 1
        assert all(p["operator"] in cfg.operators for p in m["path"][1:])
        assert set(m["rewards"]) == {"informativeness", "diversity", "executability", "total"}
        assert m["rewards"]["total"] >= cfg.keep_threshold and m["visits"] >= 1 and 0 <= m["q"] <= 1
        assert m["params"]["budget"] == 10


def test_a_custom_informativeness_scorer_is_used_and_out_of_range_scores_are_an_error():
    cfg = IdeaMCTSConfig(informativeness_weight=1.0, diversity_weight=0.0)
    reward = NodeReward(cfg, RougeNovelty([]), lambda i, a: 0.25, None)
    assert reward(_node("Compare pension plans for nurses.")).total == pytest.approx(0.25)
    with pytest.raises(ConfigError, match="returned 1.5.*in \\[0, 1\\]"):
        NodeReward(cfg, RougeNovelty([]), lambda i, a: 1.5, None)(_node("Compare pension plans."))


def test_unknown_operators_and_all_zero_weights_are_config_errors():
    with pytest.raises(ConfigError, match="Did you mean: deepen"):
        IdeaMCTSConfig(operators=["deepn"])
    with pytest.raises(ConfigError, match="weights are all 0"):
        IdeaMCTSConfig(informativeness_weight=0, diversity_weight=0, executability_weight=0)


def test_data_build_with_idea_mcts_writes_records_with_their_source(tmp_path):
    rewrites = Counter()

    def respond(body):
        last = body["messages"][-1]["content"]
        if "#Given Prompt#" in last:
            rewrites["n"] += 1
            return 200, {"choices": [{"message": {"role": "assistant", "content": _rewrite(rewrites["n"])}}]}, 0
        return 200, {"choices": [{"message": {"role": "assistant", "content": ANSWER}}]}, 0

    server = ChatServer(respond)
    try:
        write_records(
            [_seed(0, "Plan a weekly grocery budget."), _seed(1, "Explain credit scores.")], tmp_path / "s.jsonl"
        )
        cfg = tmp_path / "build.yaml"
        cfg.write_text(f"""output_dir: {tmp_path / "out"}
llm: {{kind: openai, model: teacher, base_url: {server.url}, api_key_env: ''}}
idea_mcts: {{enabled: true, seeds: {tmp_path / "s.jsonl"}, budget: 6, max_children: 2, informative_words: 10}}
filters: {{decontaminate: []}}
""")
        assert main(["data", "build", str(cfg)]) == 0
    finally:
        server.close()
    out = tmp_path / "out"
    records = read_records(out / "train.jsonl")
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(records) == 6 and {r.source for r in records} == {"idea_mcts"}
    assert all(r.meta["path"][0]["instruction"] == r.meta["seed_instruction"] for r in records)
    assert manifest["stages"] == {"idea_mcts": 6} and manifest["final_by_source"] == {"idea_mcts": 6}
    assert manifest["reports"]["idea_mcts"]["teacher_calls"] == manifest["llm"]["calls"] == 12
