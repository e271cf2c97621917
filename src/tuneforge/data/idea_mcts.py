"""IDEA-MCTS (Li et al., 2024): instruction synthesis as a Monte-Carlo tree search over rewrites.

The tree is rooted at a seed instruction. Each iteration:

1. selection — from the root, descend by UCT = Q/N + c·sqrt(ln N_parent / N) (unvisited children
   first) until a node that may still grow: fewer than `max_children` children and depth below
   `max_depth`;
2. expansion — the teacher rewrites that node's instruction with an Evol-Instruct operator drawn
   by the seeded RNG (one call), then answers the rewrite (one call);
3. evaluation — reward = weighted mean of informativeness (distinct content words of the answer,
   saturating; or a user scorer such as IFD), diversity (1 − max ROUGE-L F1 to the instructions
   kept so far, seeds included) and executability (Evol-Instruct's elimination rules; or a judge),
   gated by executability: a node that fails the rules (or whose answer only restates it: ROUGE-L
   F ≥ 0.7 between the two) scores 0 and is never expanded;
4. backpropagation — visits += 1 and value += reward on the new node and every ancestor.

The budget is counted in teacher calls per seed: an expansion costs 2 (+1 with a judge). Every
non-root node whose reward reaches `keep_threshold` becomes a record whose `meta` holds its path
from the seed, its rewards and its statistics; every other node is counted by reason.
The default rewards are cheap heuristics, not the paper's scoring model.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from tqdm.auto import tqdm

from tuneforge.config import SEED
from tuneforge.data.evol_instruct import DEPTH, elimination_reason, evolve_prompt
from tuneforge.data.record_text import STOP_WORDS, words
from tuneforge.data.self_instruct import RougeNovelty
from tuneforge.errors import ConfigError, check_choices
from tuneforge.llm.client import LLM, Sampling
from tuneforge.records import Example, Message

OPERATORS = [*DEPTH, "breadth"]
Scorer = Callable[[str, str], float]  # (instruction, answer) -> a score in [0, 1]
BELOW = "reward below keep_threshold"
ECHO = 0.7  # ROUGE-L F of answer vs instruction at which the answer only restates it


@dataclass
class IdeaMCTSConfig:
    budget: int = field(
        default=12, metadata={"help": "teacher calls per seed (an expansion costs 2: rewrite + answer)", "ge": 2}
    )
    c: float = field(default=math.sqrt(2), metadata={"help": "UCT exploration constant", "ge": 0})
    max_children: int = field(default=3, metadata={"help": "rewrites of one node at most", "ge": 1})
    max_depth: int = field(default=3, metadata={"help": "rewrites of rewrites at most (seed = depth 0)", "ge": 1})
    keep_threshold: float = field(default=0.5, metadata={"help": "keep nodes whose reward is ≥ this", "ge": 0, "le": 1})
    informativeness_weight: float = field(default=0.5, metadata={"help": "weight of informativeness", "ge": 0})
    diversity_weight: float = field(default=0.5, metadata={"help": "weight of diversity", "ge": 0})
    executability_weight: float = field(
        default=0.0,
        metadata={"help": "weight of executability (a 0/1 gate by rule; graded only with a judge)", "ge": 0},
    )
    informative_words: int = field(
        default=40, metadata={"help": "distinct content words at which informativeness reaches 1", "ge": 1}
    )
    operators: list[str] = field(
        default_factory=lambda: list(OPERATORS),
        metadata={"help": "Evol-Instruct operators drawn uniformly at random", "min_len": 1},
    )
    temperature: float = field(default=0.7, metadata={"help": "sampling temperature of the rewrites", "ge": 0})
    max_new_tokens: int = field(default=256, metadata={"help": "tokens per rewrite / answer", "ge": 1})
    seed: int = field(default=0, metadata={"help": "operator choice and sampling seed", **SEED})

    def __post_init__(self):
        check_choices(self.operators, OPERATORS, "idea_mcts.operators", allow_empty=False)
        if self.informativeness_weight + self.diversity_weight + self.executability_weight <= 0:
            raise ConfigError(
                "idea_mcts reward weights are all 0: the reward would be undefined. Set "
                "idea_mcts.informativeness_weight, diversity_weight or executability_weight above 0"
            )


@dataclass
class Rewards:
    informativeness: float = 0.0
    diversity: float = 0.0
    executability: float = 0.0
    total: float = 0.0
    why_not: str = ""  # why the node is not executable ('' = it is)

    def kept(self, threshold: float) -> bool:
        return not self.why_not and self.total >= threshold


@dataclass(eq=False)
class Node:
    text: str
    operator: str = ""
    depth: int = 0
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)
    answer: str = ""
    rewards: Rewards | None = None  # None for the root (the seed is not scored)
    visits: int = 0
    value: float = 0.0
    order: int = 0  # 1 for the first expansion, 0 for the root
    exhausted: bool = False  # nothing below it can grow: selection never descends here again

    @property
    def q(self) -> float:
        return self.value / self.visits if self.visits else 0.0

    def path(self) -> list[dict]:
        """The instructions from the seed down to this node, with the operator that made each."""
        nodes = []
        node: Node | None = self
        while node is not None:
            nodes.append({"instruction": node.text, "operator": node.operator})
            node = node.parent
        return nodes[::-1]


@dataclass
class Tree:
    root: Node
    nodes: list[Node] = field(default_factory=list)  # in expansion order; the root is not in it
    calls: int = 0  # teacher calls charged to the budget


def uct(child: Node, parent_visits: int, c: float) -> float:
    if child.visits == 0:
        return math.inf
    return child.q + c * math.sqrt(math.log(parent_visits) / child.visits)


def _can_grow(node: Node, cfg: IdeaMCTSConfig) -> bool:
    dead = node.rewards is not None and bool(node.rewards.why_not)  # a failed rewrite is a bad parent
    return not dead and node.depth < cfg.max_depth and len(node.children) < cfg.max_children


def _best_child(node: Node, c: float) -> Node | None:
    live = [ch for ch in node.children if not ch.exhausted]
    return max(live, key=lambda ch: uct(ch, node.visits, c), default=None)  # ties: the older child


def select(root: Node, cfg: IdeaMCTSConfig) -> Node | None:
    """The node to expand, found by UCT from the root; None when no node can grow any more."""
    node = root
    while not root.exhausted:
        if _can_grow(node, cfg):
            return node
        best = _best_child(node, cfg.c)
        if best is None:
            node.exhausted, node = True, root  # a dead end: mark it and start again from the root
        else:
            node = best
    return None


def backpropagate(node: Node | None, reward: float) -> None:
    while node is not None:
        node.visits += 1
        node.value += reward
        node = node.parent


def search(
    root_text: str,
    propose: Callable[[str, str], str],
    answer: Callable[[str], str],
    reward: Callable[[Node], Rewards],
    cfg: IdeaMCTSConfig,
    rng: random.Random,
    cost: int = 2,
) -> Tree:
    """Grow a tree from `root_text` until the next expansion (`cost` teacher calls) would pass
    `cfg.budget`. `propose(instruction, operator)` rewrites, `answer(instruction)` answers,
    `reward(node)` scores a new node (its text, answer and parent are set)."""
    tree = Tree(Node(root_text))
    while tree.calls + cost <= cfg.budget:
        parent = select(tree.root, cfg)
        if parent is None:
            break
        op = rng.choice(cfg.operators)
        child = Node(propose(parent.text, op).strip(), op, parent.depth + 1, parent, order=len(tree.nodes) + 1)
        child.answer = answer(child.text).strip()
        tree.calls += cost
        child.rewards = reward(child)
        parent.children.append(child)
        tree.nodes.append(child)
        backpropagate(child, child.rewards.total)
    return tree


def content_informativeness(answer: str, saturation: int) -> float:
    """Distinct non-stop words of the answer over `saturation`, capped at 1."""
    return min(1.0, len({w for w in words(answer) if w not in STOP_WORDS}) / saturation)


class NodeReward:
    """The reward of a new node; instructions of kept nodes join the diversity pool."""

    def __init__(self, cfg: IdeaMCTSConfig, pool: RougeNovelty, informativeness: Scorer | None, judge: Scorer | None):
        self.cfg, self.pool, self.judge = cfg, pool, judge
        self.informativeness = informativeness or (lambda _, a: content_informativeness(a, cfg.informative_words))
        self.judge_calls = 0

    def __call__(self, node: Node) -> Rewards:
        why, execute = self._executability(node)
        if why:
            return Rewards(executability=execute, why_not=why)
        info = _in_unit(self.informativeness(node.text, node.answer), "informativeness")
        r = Rewards(info, 1.0 - self.pool.nearest(node.text), execute)
        w = (self.cfg.informativeness_weight, self.cfg.diversity_weight, self.cfg.executability_weight)
        r.total = (w[0] * r.informativeness + w[1] * r.diversity + w[2] * r.executability) / sum(w)
        if r.kept(self.cfg.keep_threshold):
            self.pool.add(node.text)
        return r

    def _executability(self, node: Node) -> tuple[str, float]:
        """(why the node fails, '' if it passes; its executability): Evol-Instruct's elimination
        rules first (they are free), then the judge if there is one."""
        parent = node.parent.text if node.parent else ""
        why = "empty rewrite" if not node.text else elimination_reason(parent, node.text, node.answer, False)
        if not why and self.pool.scorer.score(node.text, node.answer)["rougeL"].fmeasure >= ECHO:
            why = "answer repeats the instruction"  # a small teacher echoes what it cannot answer
        if why or self.judge is None:
            return why, 0.0 if why else 1.0
        self.judge_calls += 1
        score = _in_unit(self.judge(node.text, node.answer), "judge")
        return ("judge score < 0.5" if score < 0.5 else ""), score


def _in_unit(score: float, what: str) -> float:
    if not 0.0 <= score <= 1.0:  # NaN fails this too
        raise ConfigError(f"the IDEA-MCTS {what} scorer returned {score!r}. It must return a number in [0, 1]")
    return float(score)


class _Teacher:
    """The two teacher calls of an expansion, counted; each rewrite gets its own sampling seed so a
    second rewrite of the same node is a new request, not the cached first one."""

    def __init__(self, llm: LLM, cfg: IdeaMCTSConfig):
        self.llm, self.cfg, self.calls = llm, cfg, 0

    def propose(self, instruction: str, operator: str) -> str:
        seed = (self.cfg.seed * 1000 + self.calls) % 2**32
        sampling = Sampling(max_new_tokens=self.cfg.max_new_tokens, temperature=self.cfg.temperature, seed=seed)
        return self._ask(evolve_prompt(instruction, operator), sampling)

    def answer(self, instruction: str) -> str:
        return self._ask([{"role": "user", "content": instruction}], Sampling(max_new_tokens=self.cfg.max_new_tokens))

    def _ask(self, conversation: list[dict], sampling: Sampling) -> str:
        self.calls += 1
        return self.llm.chat([conversation], sampling)[0][0]


def idea_mcts(
    llm: LLM,
    seeds: list[Example],
    cfg: IdeaMCTSConfig,
    informativeness: Scorer | None = None,
    judge: Scorer | None = None,
) -> tuple[list[Example], dict]:
    """One tree per seed instruction; returns (kept records, report). `informativeness` and `judge`
    replace the rule-based rewards (e.g. an IFD scorer; an LLM judge, charged one call each)."""
    rng = random.Random(cfg.seed)
    roots = [s for s in seeds if s.instruction]
    pool = RougeNovelty([s.instruction for s in roots])  # a rewrite that repeats a seed adds nothing
    reward, teacher = NodeReward(cfg, pool, informativeness, judge), _Teacher(llm, cfg)
    records: list[Example] = []
    report: dict[str, Any] = {"seeds": len(roots), "expansions": 0, "kept": 0, "dropped": {}, "by_operator": {}}
    for i, seed in enumerate(tqdm(roots, desc="idea-mcts: seeds", unit="seed")):
        tree = search(seed.instruction, teacher.propose, teacher.answer, reward, cfg, rng, 2 + (judge is not None))
        records += [
            _record(n, seed, llm.name, cfg, i) for n in tree.nodes if n.rewards and n.rewards.kept(cfg.keep_threshold)
        ]
        _count(report, tree, cfg.keep_threshold)
    report["teacher_calls"] = teacher.calls + reward.judge_calls
    report["kept"] = len(records)
    return records, report


def _count(report: dict, tree: Tree, threshold: float) -> None:
    for node in tree.nodes:
        report["expansions"] += 1
        report["by_operator"][node.operator] = report["by_operator"].get(node.operator, 0) + 1
        if node.rewards is not None and not node.rewards.kept(threshold):
            why = node.rewards.why_not or BELOW
            report["dropped"][why] = report["dropped"].get(why, 0) + 1


def _record(node: Node, seed: Example, generator: str, cfg: IdeaMCTSConfig, index: int) -> Example:
    assert node.rewards is not None  # tree.nodes holds the scored nodes, never the root
    rewards = {k: round(v, 4) for k, v in asdict(node.rewards).items() if k != "why_not"}
    meta = {
        "generator": generator,
        "seed_instruction": seed.instruction,
        "seed_id": seed.id,
        "path": node.path(),
        "depth": node.depth,
        "visits": node.visits,
        "q": round(node.q, 4),
        "rewards": rewards,
        "params": asdict(cfg),
    }
    return Example(
        messages=[Message("user", node.text), Message("assistant", node.answer)],
        id=f"idea-mcts-{cfg.seed}-{index}-{node.order}",
        domain=seed.domain,
        source="idea_mcts",
        meta=meta,
    )
