"""Preference pairs from feedback: sampling the policy, scoring by a judge (pairwise in both
orders, or ratings), a reward or a rule, ties and parse failures counted, every verdict kept; the
`data build` step on the tiny model, and DPO training on what it wrote."""

import json
import re

import pytest

from tuneforge.cli import main
from tuneforge.data.io import read_records, write_records
from tuneforge.data.preferences import PreferenceConfig, build_preferences
from tuneforge.data.rules import brevity, contains_reference, exact_match, load_rule, normalise
from tuneforge.errors import ConfigError
from tuneforge.records import Example, Message, PreferencePair


class FixedPolicy:
    """Returns the same k samples for every prompt; records the sampling it was asked for."""

    name = "fixed-policy"

    def __init__(self, samples):
        self.samples, self.seen = samples, []

    def chat(self, conversations, sampling):
        self.seen.append(sampling)
        return [list(self.samples[: sampling.n]) for _ in conversations]


class LengthJudge:
    """A judge that prefers the longer answer, or (`biased`) always says A, or (`mute_on`) replies
    with no verdict when an answer contains that text; rates 1 + len(words), capped at 10."""

    name = "length-judge"

    def __init__(self, biased=False, mute_on=None):
        self.biased, self.mute_on, self.calls = biased, mute_on, 0

    def chat(self, conversations, sampling):
        out = []
        for conv in conversations:
            self.calls += 1
            text = conv[-1]["content"]
            if self.mute_on and self.mute_on in text:
                out.append(["I cannot decide."])
            elif "<answer_a>" in text:
                a = re.search(r"<answer_a>\n(.*?)\n</answer_a>", text, re.S).group(1)
                b = re.search(r"<answer_b>\n(.*?)\n</answer_b>", text, re.S).group(1)
                out.append(["[[A]]" if self.biased or len(a) > len(b) else "[[B]]" if len(b) > len(a) else "[[C]]"])
            else:
                answer = re.search(r"<response>\n(.*?)\n</response>", text, re.S).group(1)
                out.append([f"Rating: {min(10, 1 + len(answer.split()))}"])
        return out


def _records(n=2):
    return [
        Example(
            messages=[Message("user", f"What is a loan {i}?"), Message("assistant", "money you borrow")],
            id=f"q{i}",
            domain="finance",
        )  # fmt: skip
        for i in range(n)
    ]


SAMPLES = ["Short.", "A loan is money you borrow and repay with interest.", "Money borrowed.", "Short."]


def test_a_pairwise_judge_pairs_the_most_preferred_sample_with_the_least_and_keeps_every_verdict():
    policy, judge = FixedPolicy(SAMPLES), LengthJudge()
    pairs, report = build_preferences(_records(), policy, PreferenceConfig(k=4, seed=3), judge=judge)
    assert [(p.chosen, p.rejected) for p in pairs] == [(SAMPLES[1], "Short.")] * 2
    assert policy.seen[0].n == 4 and policy.seen[0].temperature == 0.8 and policy.seen[0].seed == 3
    meta = pairs[0].meta
    # the duplicate "Short." is one answer: 3 distinct samples, 3 comparisons, each asked in both orders
    assert len(meta["verdicts"]) == 3 and judge.calls == 2 * 3 * 2
    assert all(v["reply_ab"] and v["reply_ba"] and v["verdict"] in ("model1", "model2") for v in meta["verdicts"])
    assert meta["scores"] == [0.0, 1.0, 0.5, None] and meta["margin"] == 1.0
    assert meta["samples"] == SAMPLES and meta["sampling"]["top_p"] == 0.95 and meta["judge"] == "length-judge"
    assert pairs[0].source == "preferences/fixed-policy" and pairs[0].id == "q0-pref" and pairs[0].domain == "finance"
    assert report["unpaired"] == [] and report["pairs"] == 2 and report["verdicts"] == 6
    assert report["distinct_samples"] == 6 and report["ties"] == report["parse_failures"] == 0


def test_a_judge_whose_two_orders_disagree_gives_ties_not_pairs():
    pairs, report = build_preferences(
        _records(), FixedPolicy(SAMPLES), PreferenceConfig(k=4), judge=LengthJudge(biased=True)
    )
    assert pairs == [] and report["ties"] == 2 and report["pairs"] == 0
    assert report["unpaired"][0]["why"].startswith("tie")


def test_unparsed_verdicts_are_left_out_and_counted():
    judge = LengthJudge(mute_on="Money borrowed.")  # every comparison with that sample gets no verdict
    pairs, report = build_preferences(_records(1), FixedPolicy(SAMPLES), PreferenceConfig(k=4), judge=judge)
    assert report["parse_failures"] == 2 and report["verdicts"] == 3
    assert pairs[0].meta["scores"] == [0.0, 1.0, None, None]  # the muted sample is unscored, not guessed
    assert (pairs[0].chosen, pairs[0].rejected) == (SAMPLES[1], "Short.")


def test_ratings_choose_the_best_and_worst_and_equal_ratings_are_a_tie():
    pairs, _ = build_preferences(_records(1), FixedPolicy(SAMPLES), PreferenceConfig(k=4, scorer="judge_rating"),
                                 judge=LengthJudge())  # fmt: skip
    assert (pairs[0].chosen, pairs[0].rejected) == (SAMPLES[1], "Short.")
    assert [v["rating"] for v in pairs[0].meta["verdicts"]] == [2.0, 10.0, 3.0]
    same = ["One two.", "Three four.", "Five six."]
    pairs, report = build_preferences(_records(1), FixedPolicy(same), PreferenceConfig(k=3, scorer="judge_rating"),
                                      judge=LengthJudge())  # fmt: skip
    assert pairs == [] and report["ties"] == 1


def test_a_rule_and_a_reward_score_samples_without_a_judge():
    samples = ["The money you borrow.", "I do not know.", "Bananas."]
    pairs, _ = build_preferences(
        _records(1), FixedPolicy(samples), PreferenceConfig(k=3, scorer="rule"), rule=exact_match
    )
    assert (pairs[0].chosen, pairs[0].meta["margin"], pairs[0].meta["rule"]) == (
        samples[0],
        1.0,
        "tuneforge.data.rules.exact_match",
    )
    pairs, report = build_preferences(_records(1), FixedPolicy(samples), PreferenceConfig(k=3, scorer="rule"),
                                      rule=lambda a, r: 0.0)  # fmt: skip
    assert pairs == [] and report["ties"] == 1  # all equal: no pair
    seen = []

    def reward(prompts, answers):
        seen.append((prompts, answers))
        return [float(len(a)) for a in answers]

    cfg = PreferenceConfig(k=3, scorer="reward", reward_model="run")
    pairs, _ = build_preferences(_records(2), FixedPolicy(samples), cfg, score_fn=reward)
    assert [(p.chosen, p.rejected) for p in pairs] == [(samples[0], samples[2])] * 2
    assert len(seen) == 1 and len(seen[0][1]) == 6  # one batched call for every sample
    assert seen[0][0][0][0].content == "What is a loan 0?"


def test_rules_normalise_and_load_by_dotted_path():
    ref = Example(messages=[Message("user", "q"), Message("assistant", "The Answer is B.")])
    assert normalise("  The ANSWER, is b! ") == "answer is b"
    assert exact_match("answer is b", ref) == 1.0 and exact_match("answer is c", ref) == 0.0
    assert contains_reference("I think the answer is B, yes.", ref) == 1.0
    assert contains_reference("the answer is bb", ref) == 0.0
    assert brevity("one two three", ref) == 0.0 and brevity("a b c d e f g h", ref) == pytest.approx(-1.0)
    assert load_rule("tuneforge.data.rules.exact_match") is exact_match
    for bad, why in (("exact_match", "dotted path"), ("tuneforge.data.rules.nope", "cannot be loaded")):
        with pytest.raises(ConfigError, match=why):
            load_rule(bad)


def test_preference_settings_are_checked():
    with pytest.raises(ConfigError, match="k must be ≥ 2"):
        PreferenceConfig(k=1)
    with pytest.raises(ConfigError, match="judge_rating"):
        PreferenceConfig(scorer="judge_ratings")
    with pytest.raises(ConfigError, match="reward_model"):
        PreferenceConfig(prompts="seed:train", scorer="reward")


def test_the_tiny_model_samples_pairs_that_a_dpo_run_trains_on(tmp_path, tiny_lm, tiny_tok):
    """The acceptance path: sample the tiny model, judge with a fake judge, write TRL pairs, and
    train DPO on the file as it is."""
    from tuneforge.config import load_config
    from tuneforge.data.seed import load_pairs
    from tuneforge.llm.local import LocalLLM
    from tuneforge.train.run import train_model
    from tuneforge.train.run_config import TrainRunConfig

    policy = LocalLLM(tiny_lm, tiny_tok, "tiny")
    records = _records(4)
    cfg = PreferenceConfig(k=4, temperature=1.0, top_p=1.0, max_new_tokens=12, seed=0)
    pairs, report = build_preferences(records, policy, cfg, judge=LengthJudge())
    assert report["samples"] == 16 and report["pairs"] + report["ties"] + report["too_few_scored"] == 4
    assert report["pairs"] >= 2, report
    for p in pairs:
        assert len(p.meta["samples"]) == 4 and p.meta["verdicts"]
        assert p.chosen in p.meta["samples"] and p.rejected in p.meta["samples"] and p.chosen != p.rejected
    write_records(pairs, tmp_path / "prefs.jsonl")
    line = json.loads((tmp_path / "prefs.jsonl").read_text().splitlines()[0])
    assert set(line) >= {"prompt", "chosen", "rejected"} and line["chosen"][0]["role"] == "assistant"
    assert [p.chosen for p in load_pairs(str(tmp_path / "prefs.jsonl"))] == [p.chosen for p in pairs]
    tiny_lm.save_pretrained(tmp_path / "model")
    tiny_tok.save_pretrained(tmp_path / "model")
    run = train_model(load_config(TrainRunConfig, None, [
        f"output_dir={tmp_path / 'dpo'}", f"model.name={tmp_path / 'model'}", "model.dtype=float32",
        "model.device=cpu", "objective.name=dpo", f"data.train={tmp_path / 'prefs.jsonl'}", "data.eval=",
        "adapter.method=lora", "adapter.r=4", "adapter.target_modules=[q_proj,v_proj]", "train.steps=3",
        "train.batch_size=2", "train.precision=fp32"]))  # fmt: skip
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["objective"] == "dpo" and summary["eval"]["tuned"]["pairs"] == len(pairs)


def test_data_build_writes_preferences_with_a_manifest_and_decontaminated_prompts(tmp_path, tiny_lm, tiny_tok):
    from tuneforge.records import EvalItem

    tiny_lm.save_pretrained(tmp_path / "model")
    tiny_tok.save_pretrained(tmp_path / "model")
    leak = "Explain how compound interest differs from simple interest over ten years of monthly saving"
    prompts = [*_records(3), Example(messages=[Message("user", leak), Message("assistant", "x")], id="leak")]
    write_records(prompts, tmp_path / "prompts.jsonl")
    write_records([EvalItem(messages=[Message("user", leak)], references=["..."], id="t1")], tmp_path / "test.jsonl")
    (tmp_path / "build.yaml").write_text(f"""output_dir: {tmp_path / "out"}
filters: {{decontaminate: [{tmp_path / "test.jsonl"}]}}
preferences:
  prompts: {tmp_path / "prompts.jsonl"}
  k: 3
  temperature: 1.0
  max_new_tokens: 8
  scorer: rule
  rule: tuneforge.data.rules.brevity
  policy: {{model: {tmp_path / "model"}, dtype: float32}}
""")
    assert main(["data", "build", str(tmp_path / "build.yaml")]) == 0
    out = tmp_path / "out"
    manifest = json.loads((out / "manifest.json").read_text())
    report = manifest["reports"]["preferences"]
    assert report["prompts"] == 3 and report["decontaminated_prompts"] == 1 and report["samples"] == 9
    assert report["llm_calls"] == 3 and manifest["removed"] == {"preferences:decontaminate": 1}
    pairs = read_records(out / "preferences.jsonl") if (out / "preferences.jsonl").stat().st_size else []
    assert len(pairs) == report["pairs"] and all(isinstance(p, PreferencePair) for p in pairs)
    assert not (out / "train.jsonl").exists()  # no SFT source: only pairs
    assert "preference pairs from 3 prompts" in (out / "datacard.md").read_text()
    assert main(["data", "build", str(tmp_path / "build.yaml")]) == 0  # a rerun asks the model nothing
    again = json.loads((out / "manifest.json").read_text())["reports"]["preferences"]
    assert again["llm_calls"] == 0 and again["cache_hits"] == 3 and again["pairs"] == report["pairs"]
