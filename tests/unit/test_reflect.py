"""Reflective teacher–student loop (seed 001, Algorithm 1) with a scripted fake teacher and student:
loop order, matrix values, the convergence rule, parse failures recorded; passages, retrieval,
item loading and the run's outputs."""

import json
import re

import numpy as np
import pytest

from tuneforge.errors import ConfigError, DataError
from tuneforge.reflect.agents import StudentAgent, TeacherAgent, parse_verdict
from tuneforge.reflect.alignment import converged, level_convergence
from tuneforge.reflect.passages import Passage, aggregate, load_documents, preprocess, retrieve
from tuneforge.reflect.reflection import LoopConfig, ReflectItem, reflect_items

SIM = 1 / np.sqrt(2)  # cos([1, 0], [1, 1]): every reply against every instruction in FakeEncoder


class FakeLLM:
    """Plays both roles from the prompt text; answers carry a version (v0, v1 …) so the script can
    rate by (level, version). `log` records the kind of every call, in order."""

    name = "fake"

    def __init__(self, ratings: dict):
        self.ratings, self.log = ratings, []

    def chat(self, conversations, sampling):
        out = []
        kinds = []
        for conv in conversations:
            text = conv[-1]["content"]
            if text.startswith("Use the context"):
                kinds.append("generate")
                out.append(["answer v0"])
            elif text.startswith("You are a teacher"):
                kinds.append("question")
                level = re.search(r"at the (\w+) level", text).group(1)
                version = re.search(r"answer v(\d+)", text).group(1)
                out.append([f"Q {level} v{version}?"])
            elif "Your teacher asks:" in text:
                kinds.append("answer")
                asked = re.search(r"Q (\w+ v\d+)", text).group(1)
                out.append([f"reply to {asked}"])
            elif "Rate the reply" in text:
                kinds.append("evaluate")
                level, version = re.search(r"reply to (\w+) v(\d+)", text).groups()
                r = self.ratings[(level, int(version))]
                out.append([r if isinstance(r, str) else f"Rating: {r}\nFeedback: improve the {level} part"])
            elif "Your teacher's feedback:" in text:
                kinds.append("reflect")
                v = int(re.search(r"Your previous answer:\nanswer v(\d+)", text).group(1))
                out.append([f"answer v{v + 1}"])
            else:
                raise AssertionError(f"unexpected prompt: {text[:80]}")
        assert len(set(kinds)) == 1, "one kind of call per batch"
        self.log.append(kinds[0])
        return out


def fake_encoder(texts):
    return np.array([[1.0, 1.0] if t.startswith("reply") else [1.0, 0.0] for t in texts])


DOC = Passage("doc.md", 0, "Doc", "Some context about rehydration.")


def run(ratings, levels=("basic", "expert"), T=4, eps=0.05, trace=None):
    llm = FakeLLM(ratings)
    cfg = LoopConfig(levels=list(levels), max_iterations=T, epsilon=eps)
    rows = []
    res = reflect_items(
        [ReflectItem("i1", "Explain oral rehydration.")],
        lambda it: [DOC],
        TeacherAgent(llm),
        StudentAgent(llm),
        fake_encoder,
        cfg,
        rows.append,
    )
    return res[0], llm.log, rows


def a(r):
    return SIM * (r - 1) / 9


def test_loop_order_matrix_values_and_stop_at_first_converged_iteration():
    ratings = {
        ("basic", 0): 4,
        ("expert", 0): 1,
        ("basic", 1): 7,
        ("expert", 1): 4,
        ("basic", 2): 7,
        ("expert", 2): 4.3,
        ("basic", 3): 1,
        ("expert", 3): 1,
    }
    res, log, rows = run(ratings)
    assert log == [
        "generate",
        "question",
        "answer",
        "evaluate",
        "reflect",
        "question",
        "answer",
        "evaluate",
        "reflect",
        "question",
        "answer",
        "evaluate",
    ]
    want = np.array([[a(4), a(7), a(7), np.nan], [a(1), a(4), a(4.3), np.nan]])
    np.testing.assert_allclose(res.matrix, want, rtol=1e-9)
    # ‖A[:,1] − A[:,0]‖ = SIM·√(2·(3/9)²) ≈ 0.33 ≥ ε; ‖A[:,2] − A[:,1]‖ = SIM·0.3/9 ≈ 0.024 < ε → stop at t = 2
    assert res.converged_at == 2 and res.iterations == 3
    assert res.answers == ["answer v0", "answer v1", "answer v2"] and res.final_answer == "answer v2"
    assert res.level_converged_at == [2, 2] and res.parse_failures == 0
    checks = [r for r in rows if r["step"] == "check"]
    assert [c["converged"] for c in checks] == [False, False, True] and checks[0]["delta_norm"] is None
    assert checks[2]["delta_norm"] == pytest.approx(SIM * 0.3 / 9)
    reflect = [r for r in rows if r["step"] == "reflect"]
    assert reflect[0]["feedback"] == [
        ["basic", "improve the basic part"],
        ["expert", "improve the expert part"],
    ] or reflect[0]["feedback"] == [("basic", "improve the basic part"), ("expert", "improve the expert part")]


def test_stops_at_T_when_never_converged_and_does_not_reflect_after_the_last_round():
    ratings = {(lv, v): 1 + 3 * v for lv in ("basic", "expert") for v in range(4)}
    res, log, _ = run(ratings, T=3)
    assert res.converged_at is None and res.iterations == 3 and log.count("reflect") == 2 and log[-1] == "evaluate"
    assert res.final_answer == "answer v2" and not np.isnan(res.matrix).any()
    assert res.level_converged_at == [None, None]


def test_a_parse_failure_is_recorded_not_scored():
    ratings = {
        ("basic", 0): 5,
        ("expert", 0): 5,
        ("basic", 1): 5,
        ("expert", 1): "Looks good to me.",
        ("basic", 2): 5,
        ("expert", 2): 5,
    }
    res, _, rows = run(ratings, T=3)
    assert np.isnan(res.matrix[1, 1]) and res.matrix[0, 1] == pytest.approx(a(5))
    assert res.parse_failures == 1
    bad = [r for r in rows if r["step"] == "evaluate" and r["parse_failure"]]
    assert len(bad) == 1 and bad[0]["rating"] is None and bad[0]["alignment"] is None
    assert bad[0]["verdict"] == "Looks good to me."
    # t = 1 would have converged (same ratings) but a NaN cannot show convergence; nor can t = 2 against it
    assert res.converged_at is None and res.iterations == 3


def test_convergence_rule_and_verdict_parsing():
    m = np.array([[0.1, 0.5, 0.51], [0.2, 0.2, 0.2]])
    assert not converged(m, 0, 0.05) and not converged(m, 1, 0.05) and converged(m, 2, 0.05)
    assert level_convergence(m, 3, 0.05) == [2, 1]
    v = parse_verdict("Rating: 8\nFeedback: cite the context.")
    assert v.rating == 8 and v.feedback == "cite the context." and v.parsed
    assert not parse_verdict("Rating: 12\nFeedback: x").parsed and not parse_verdict("great").parsed
    with pytest.raises(ConfigError):
        LoopConfig(levels=[])
    with pytest.raises(ConfigError, match="retriever"):
        LoopConfig(retriever="tfidf")


def test_preprocess_retrieve_aggregate():
    text = "# Title\n\nFirst sentence here. Second one is here too. Third.\n\n## Salt\n\nORS replaces salt and water."
    ps = preprocess("d.md", text, max_words=6)
    # sentences are packed while the passage stays ≤ 6 words; a heading starts a new passage
    assert [p.text for p in ps] == [
        "First sentence here.",
        "Second one is here too. Third.",
        "ORS replaces salt and water.",
    ]
    assert ps[0].title == "Title" and ps[-1].title == "Salt" and [p.index for p in ps] == [0, 1, 2]
    top = retrieve(ps, "how does ORS replace salt", k=2)
    assert top[0].text.startswith("ORS") and len(top) == 2
    assert aggregate(top).index("[d.md") == 0 and aggregate(top).endswith("ORS replaces salt and water.")
    emb = retrieve(
        ps,
        "salt",
        k=1,
        method="embedding",
        encoder=lambda ts: np.array([[1.0, 0.0] if "salt" in t.lower() else [0.0, 1.0] for t in ts]),
    )
    assert emb[0].title == "Salt"
    with pytest.raises(DataError, match="documents not found"):
        load_documents("/nonexistent", ["x.md"])


def test_shipped_documents_and_items_load():
    from tuneforge.reflect.run import load_items, shipped

    items = load_items(shipped("items.yaml"))
    assert len(items) == 8 and len({it.domain for it in items}) == 5
    for it in items:
        ps = load_documents(shipped("documents"), it.documents)
        assert ps and all(len(p.text.split()) <= 80 or "." not in p.text[:-1] for p in ps)
    assert len(load_documents(shipped("documents"), [])) > len(load_documents(shipped("documents"), items[0].documents))
    ors = retrieve(load_documents(shipped("documents"), []), items[0].instruction, k=3)
    assert any(p.doc == "healthcare_hydration.md" for p in ors)


def test_export_final_or_best_answer():
    from tuneforge.reflect.run import ReflectRunConfig, chosen_round, export_records

    # round 1 has the highest mean A; round 2 (the final one) got worse
    ratings = {
        ("basic", 0): 4,
        ("expert", 0): 4,
        ("basic", 1): 9,
        ("expert", 1): 8,
        ("basic", 2): 2,
        ("expert", 2): "unparsable",
    }
    res, _, _ = run(ratings, T=3)
    assert chosen_round(res, "final") == 2 and chosen_round(res, "best") == 1
    final, best = export_records([res], "t", "s"), export_records([res], "t", "s", answer="best")
    assert final[0].response == "answer v2" and final[0].meta["exported_round"] == 2
    assert best[0].response == "answer v1" and best[0].meta["exported_round"] == 1
    assert best[0].meta["alignment"] == pytest.approx(np.mean([a(9), a(8)]))
    assert export_records([res], "t", "s", converged_only=True) == []
    with pytest.raises(ConfigError, match="export_answer"):
        ReflectRunConfig(export_answer="last")


def test_item_file_errors_name_file_line_and_key(tmp_path):
    from tuneforge.reflect.run import load_items

    p = tmp_path / "items.yaml"
    p.write_text("- id: a\n  instruction: do x\n- id: b\n  instrucion: do y\n")
    with pytest.raises(DataError, match=r"unknown key 'instrucion'. Did you mean: instruction\?.*items.yaml:3"):
        load_items(p)
    p.write_text("- id: a\n  instruction: do x\n- id: a\n  instruction: do y\n")
    with pytest.raises(DataError, match=r"duplicate item id 'a'.*items.yaml:3"):
        load_items(p)


def test_reflect_run_writes_trace_matrix_heatmap_and_sft_records(tmp_path):
    from tuneforge.data.seed import load_spec
    from tuneforge.reflect.run import ReflectRunConfig, reflect_run

    ratings = {(lv, v): 6 for lv in ("basic", "intermediate", "advanced", "expert") for v in range(3)}
    llm = FakeLLM(ratings)
    cfg = ReflectRunConfig(output_dir=str(tmp_path / "r"), limit=3, loop=LoopConfig(max_iterations=3))
    out = reflect_run(cfg, llm, llm, fake_encoder)
    s = json.loads((out / "alignment.json").read_text())
    assert s["n_items"] == 3 and s["converged"] == 3 and s["parse_failures"] == 0
    first = next(iter(s["items"].values()))
    assert first["iterations"] == 2 and first["converged_at"] == 1 and len(first["matrix"]) == 4
    assert first["matrix"][0][0] == pytest.approx(a(6), abs=1e-4) and first["matrix"][0][2] is None
    trace = [json.loads(x) for x in (out / "trace.jsonl").read_text().splitlines()]
    assert {r["step"] for r in trace} == {"generate", "evaluate", "check", "reflect"}
    assert sum(r["step"] == "evaluate" for r in trace) == 3 * 4 * 2
    records = load_spec(out / "reflected.jsonl")
    assert len(records) == 3 and all(r.source == "self-improve/reflect" for r in records)
    assert records[0].response == "answer v1" and records[0].instruction.startswith("Context:\n[")
    assert records[0].meta["initial_answer"] == "answer v0" and records[0].meta["converged_at"] == 1
    # `data build` mixes them in with their provenance kept
    from tuneforge.data.build_config import BuildConfig, ManualConfig
    from tuneforge.data.synthesis import synthesize

    stages, _ = synthesize(BuildConfig(manual=ManualConfig(files=[str(out / "reflected.jsonl")])), None)
    assert [r.source for r in stages["manual"]] == ["self-improve/reflect"] * 3
    page = (out / "report.html").read_text()
    assert page.count("<svg") == 1 and (out / "alignment.png").stat().st_size > 0


class ProbLLM(FakeLLM):
    """FakeLLM whose teacher writes no rating at all, but has next-token probabilities."""

    def __init__(self, probs):
        super().__init__({(lv, v): "What a lovely reply." for lv in ("basic", "expert") for v in range(4)})
        self.probs = probs

    def choice_probs(self, conversations, prefix, choices):
        assert prefix == "Rating: " and choices == [str(d) for d in range(1, 10)]
        return [self.probs] * len(conversations)


def test_probability_verdicts_score_the_expected_digit():
    probs = [0, 0, 0.2, 0, 0, 0, 0.6, 0, 0]  # P(3) = 0.2, P(7) = 0.6 → mass 0.8, E = (0.6 + 4.2) / 0.8 = 6
    llm = ProbLLM(probs)
    teacher = TeacherAgent(llm, verdict="probability")
    v = teacher.evaluate([("ctx", "basic", "q?", "reply to basic v0")])[0]
    assert v.rating == pytest.approx(6.0) and v.mass == pytest.approx(0.8) and (v.low, v.high) == (1, 9)
    assert v.feedback == "What a lovely reply."
    cfg = LoopConfig(levels=["basic", "expert"], max_iterations=2)
    res = reflect_items(
        [ReflectItem("i1", "Explain.")], lambda it: [DOC], teacher, StudentAgent(llm), fake_encoder, cfg
    )[0]
    np.testing.assert_allclose(res.matrix[:, 0], SIM * (6 - 1) / 8)  # quality on the 1–9 scale
    assert res.converged_at == 1 and res.parse_failures == 0
    low_mass = TeacherAgent(ProbLLM(probs), verdict="probability", min_mass=0.9).evaluate(
        [("c", "basic", "q", "reply to basic v0")]
    )[0]
    assert low_mass.rating is None and not low_mass.parsed
    with pytest.raises(ConfigError, match="verdict 'judge' unknown"):
        TeacherAgent(llm, verdict="judge")


def test_choice_probs_are_cached_and_need_a_capable_client(tmp_path):
    from tuneforge.llm.cache import CachedLLM

    inner = ProbLLM([0.1] * 9)
    calls = []
    original = inner.choice_probs
    inner.choice_probs = lambda c, p, ch: calls.append(len(c)) or original(c, p, ch)
    llm = CachedLLM(inner, tmp_path / "cache.sqlite")
    conv = [[{"role": "user", "content": "rate this"}], [{"role": "user", "content": "rate that"}]]
    first = llm.choice_probs(conv, "Rating: ", [str(d) for d in range(1, 10)])
    again = llm.choice_probs(conv, "Rating: ", [str(d) for d in range(1, 10)])
    assert first == again == [[0.1] * 9] * 2 and calls == [2] and llm.hits == 2
    assert len(llm.cache) == 2
    with pytest.raises(ConfigError, match="no next-token probabilities"):
        CachedLLM(FakeLLM({}), tmp_path / "c2.sqlite").choice_probs(conv, "Rating: ", ["1"])


def test_local_choice_probs_equal_the_next_token_softmax(tiny_lm, tiny_tok):
    import torch

    from tuneforge.llm.local import LocalLLM

    llm = LocalLLM(tiny_lm, tiny_tok, "tiny", batch_size=2)
    convs = [
        [{"role": "user", "content": "Rate it."}],
        [{"role": "user", "content": "A longer request to rate, please."}],
    ]
    got = llm.choice_probs(convs, "Rating: ", ["1", "2", "3"])
    for conv, probs in zip(convs, got):
        text = tiny_tok.apply_chat_template(
            conv + [{"role": "assistant", "content": "Rating: "}], tokenize=False, continue_final_message=True
        )
        ids = tiny_tok(text, return_tensors="pt", add_special_tokens=False).input_ids
        with torch.no_grad():
            p = tiny_lm(input_ids=ids).logits[0, -1].float().softmax(-1)
        want = [float(p[tiny_tok(c, add_special_tokens=False).input_ids[0]]) for c in ("1", "2", "3")]
        np.testing.assert_allclose(probs, want, rtol=1e-3, atol=1e-6)  # padding in the batch changes nothing
    with pytest.raises(ConfigError, match="not single tokens"):
        llm.choice_probs(convs, "Rating: ", ["1", "a long word here"])
