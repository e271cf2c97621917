"""SuperNI loading (on the real shared task files), phrasing forms, gradient conflict, PCGrad,
the task-similarity term, and seen/unseen generalisation."""

import numpy as np
import pytest
import torch

from tuneforge.errors import DataError, UnknownNameError
from tuneforge.multitask.generalisation import generalisation, phrasing_summary
from tuneforge.multitask.gradients import conflict_stats, pcgrad
from tuneforge.multitask.phrasing import FORMS, rewrite
from tuneforge.multitask.similarity import similarity_matrix, similarity_regulariser
from tuneforge.multitask.superni import encode, load_tasks, task_eval_items, task_examples
from tuneforge.records import Generation, Message


@pytest.fixture(scope="module")
def tasks(shared_data):
    return load_tasks(shared_data / "superni")


def test_loader_reads_the_shared_task_files_with_a_split_by_task(tasks):
    seen = [t for t in tasks if t.split == "seen"]
    unseen = [t for t in tasks if t.split == "unseen"]
    assert len(seen) == 16 and len(unseen) == 12
    assert not {t.name for t in seen} & {t.name for t in unseen}
    assert sum(len(t.instances) for t in seen) == 3182 and sum(len(t.instances) for t in unseen) == 1200
    t = next(t for t in tasks if t.name.startswith("task073"))
    assert t.category == "Question Answering" and t.positive_examples and t.instances[0]["output"] == ["A"]
    ex = task_examples(t, k_examples=2, limit=3)
    assert len(ex) == 3 and ex[0].response == "A" and ex[0].meta["split"] == "seen"
    assert ex[0].instruction.count("Positive Example") == 2 and ex[0].instruction.startswith("Definition: ")
    items = task_eval_items(unseen[0], limit=5)
    assert all(it.meta["split"] == "unseen" and it.references for it in items)


def test_loader_errors(tmp_path):
    with pytest.raises(DataError, match="expected train/ and test/"):
        load_tasks(tmp_path)
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    (tmp_path / "train" / "task001_x.json").write_text('{"Definition": ["d"]}')
    with pytest.raises(DataError, match="needs 'Instances'.*task001_x.json"):
        load_tasks(tmp_path)


def test_every_phrasing_form_is_deterministic_and_distinct(tasks):
    t = tasks[0]
    x = t.instances[0]["input"]
    prompts = {f: rewrite(t, x, f) for f in FORMS}
    assert len(FORMS) >= 10 and len(set(prompts.values())) == len(FORMS)
    assert all(x in p for p in prompts.values()) and prompts == {f: rewrite(t, x, f) for f in FORMS}
    assert prompts["instruction"] == encode(t, x, 0) and "Positive Example 1" in prompts["instruction_example"]
    assert prompts["question"].startswith("Can you") and "step by step" in prompts["chain_of_thought"]
    with pytest.raises(UnknownNameError, match="Did you mean: few_shot"):
        rewrite(t, x, "fewshot")


def test_pcgrad_projects_conflicting_gradients_onto_the_normal_plane():
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])  # cosine < 0
    out = pcgrad([g1, g2])
    p1 = g1 - (g1 @ g2) / (g2 @ g2) * g2  # g1 projected off g2
    p2 = g2 - (g2 @ g1) / (g1 @ g1) * g1
    assert torch.allclose(out, p1 + p2)
    assert abs(float(p1 @ g2)) < 1e-6 and abs(float(p2 @ g1)) < 1e-6  # orthogonal to the conflicting one
    a, b = torch.tensor([1.0, 1.0]), torch.tensor([1.0, 0.0])  # no conflict: plain sum
    assert torch.allclose(pcgrad([a, b]), a + b)


def test_conflict_score_on_known_vectors():
    s = conflict_stats([torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 0.0]), torch.tensor([0.0, 2.0])])
    assert s["pairs"] == 3 and s["mean_cosine"] == pytest.approx(-1 / 3)
    assert s["conflict_fraction"] == pytest.approx(1 / 3)
    assert s["magnitude_similarity"] == pytest.approx((1 + 0.8 + 0.8) / 3)  # 2·1·2/(1+4) = 0.8


def test_similarity_term_on_planted_embeddings():
    emb = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # tasks 0 and 1 alike, task 2 orthogonal
    sim = similarity_matrix(emb)
    assert sim[0, 1] == pytest.approx(1.0) and sim[0, 2] == 0.0
    params = [torch.tensor([0.0, 0.0], requires_grad=True), torch.tensor([3.0, 4.0]), torch.tensor([100.0, 0.0])]
    r = similarity_regulariser(params, sim)
    assert float(r.detach()) == pytest.approx(12.5)  # only the similar pair counts: ‖(0,0) − (3,4)‖²/2 = 12.5
    r.backward()
    assert torch.allclose(params[0].grad, torch.tensor([-3.0, -4.0]))  # pulled towards task 1


def _gen(task, split, cat, pred, ref, i):
    return Generation(
        id=f"{task}-{i}",
        prompt=[Message("user", "q")],
        generation=pred,
        references=[ref],
        model="m",
        task=task,
        domain=cat,
        meta={"split": split},
    )


def test_seen_unseen_gap_and_phrasing_summary():
    gens = (
        [_gen("a", "seen", "QA", "yes", "yes", i) for i in range(4)]
        + [_gen("b", "seen", "QA", "no", "yes", i) for i in range(4)]
        + [_gen("c", "unseen", "Classification", "yes", "yes", i) for i in range(2)]
        + [_gen("c", "unseen", "Classification", "no", "yes", i + 2) for i in range(2)]
    )
    res = generalisation(gens, n_boot=200)
    em = res["metrics"]["exact_match"]
    assert em["seen"] == 50.0 and em["unseen"] == 50.0 and em["gap"] == 0.0
    assert em["unseen_by_category"] == {"Classification": 50.0} and em["n_unseen_tasks"] == 1
    assert em["unseen_ci"][0] <= 50 <= em["unseen_ci"][1] and res["tasks"]["b"]["exact_match"] == 0.0
    forms = {
        "plain": [_gen("c", "unseen", "C", "yes", "yes", i) for i in range(2)],
        "question": [_gen("c", "unseen", "C", p, "yes", i) for i, p in enumerate(["yes", "no"])],
    }
    ph = phrasing_summary(forms, "exact_match")
    assert ph["per_form"] == {"plain": 100.0, "question": 50.0} and ph["worst_case_mean"] == 50.0
    assert ph["spread"] == 50.0


def _task_rows(task, n, word):
    from tuneforge.records import Example

    return [
        Example(
            messages=[Message("user", f"{task} question {i}?"), Message("assistant", f"{word} {i}.")],
            id=f"{task}-{i}",
            task=task,
        )
        for i in range(n)
    ]


def test_multitask_backward_sums_or_projects_per_task_gradients(tiny_lm, tiny_tok):
    from tuneforge.multitask.objective import MultiTaskObjective, multitask_batches, tasks_in

    by_task = {"alpha": _task_rows("alpha", 4, "yes"), "beta": _task_rows("beta", 4, "no")}
    batch = next(multitask_batches(by_task, tiny_tok, batch_size=2))
    assert tasks_in(batch) == ["alpha", "beta"] and int(batch["num_tokens"]) > 0
    mixed = MultiTaskObjective(tiny_lm, "mixed")
    scale = 1.0 / mixed.count(batch)
    tiny_lm.zero_grad()
    (mixed.loss(tiny_lm, batch) * scale).backward()  # the plain joint gradient
    plain = torch.cat([p.grad.reshape(-1).clone() for p in mixed.params])
    tiny_lm.zero_grad()
    value = mixed.backward(tiny_lm, batch, scale)
    summed = torch.cat([p.grad.reshape(-1) for p in mixed.params])
    with torch.no_grad():
        expected = float(mixed.loss(tiny_lm, batch) * scale)
    assert torch.allclose(summed, plain, atol=1e-6) and value == pytest.approx(expected, rel=1e-5)
    stats = mixed.stats()
    assert set(stats) == {"conflict_mean_cosine", "conflict_conflict_fraction", "conflict_magnitude_similarity"}
    # pcgrad: the accumulated gradient is PCGrad of the two task gradients
    pc = MultiTaskObjective(tiny_lm, "pcgrad")
    grads = []
    from tuneforge.multitask.objective import _sub
    from tuneforge.train.sft import sft_loss

    for t in ("alpha", "beta"):
        tiny_lm.zero_grad()
        (sft_loss(tiny_lm, _sub(batch, t)) * scale).backward()
        grads.append(torch.cat([p.grad.reshape(-1).clone() for p in pc.params]))
    tiny_lm.zero_grad()
    pc.backward(tiny_lm, batch, scale)
    got = torch.cat([p.grad.reshape(-1) for p in pc.params])
    assert torch.allclose(got, pcgrad(grads, seed=0), atol=1e-6)


def test_multitask_training_in_the_one_loop_logs_conflict(tiny_lm, tiny_tok, tmp_path):
    import json

    from tuneforge.multitask.objective import MultiTaskObjective, multitask_batches
    from tuneforge.train.loop import TrainConfig, train_loop

    by_task = {t: _task_rows(t, 6, w) for t, w in (("alpha", "yes"), ("beta", "no"), ("gamma", "maybe"))}
    obj = MultiTaskObjective(tiny_lm, "pcgrad")
    cfg = TrainConfig(steps=4, batch_size=2, lr=1e-2, log_every=2, precision="fp32")
    result = train_loop(
        tiny_lm,
        multitask_batches(by_task, tiny_tok, 2, tasks_per_step=2, seed=1),
        obj.objective(),
        cfg,
        tmp_path / "log.jsonl",
    )
    rows = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert result.steps == 4 and all(np.isfinite(result.losses))
    assert all(-1 <= r["conflict_mean_cosine"] <= 1 for r in rows if "conflict_mean_cosine" in r)
    assert any("conflict_conflict_fraction" in r for r in rows)
    with pytest.raises(Exception, match="unknown"):
        MultiTaskObjective(tiny_lm, "gradnorm")


def test_similarity_methods_add_the_regulariser_gradient(tiny_lm, tiny_tok):
    from tuneforge.multitask.objective import MultiTaskObjective, _sub, multitask_batches
    from tuneforge.train.sft import sft_loss

    by_task = {"alpha": _task_rows("alpha", 4, "yes"), "beta": _task_rows("beta", 4, "no")}
    batch = next(multitask_batches(by_task, tiny_tok, batch_size=2))
    sim = {("alpha", "beta"): 0.5, ("beta", "alpha"): 0.5, ("alpha", "alpha"): 1.0, ("beta", "beta"): 1.0}
    obj = MultiTaskObjective(tiny_lm, "similarity_reg", similarity=sim, reg_weight=2.0)
    scale = 1.0 / obj.count(batch)
    tiny_lm.zero_grad()
    obj.backward(tiny_lm, batch, scale)
    got = torch.cat([p.grad.reshape(-1) for p in obj.params])
    # by hand: joint loss gradient + gradient of 2·‖h_alpha − h_beta‖² (one pair, so S cancels)
    tiny_lm.zero_grad()
    outs = [sft_loss(tiny_lm, _sub(batch, t), pool_prompt=True) for t in ("alpha", "beta")]
    total = sum(o[0] for o in outs) * scale + 2.0 * (outs[0][1] - outs[1][1]).pow(2).mean()
    total.backward()
    want = torch.cat([p.grad.reshape(-1) for p in obj.params])
    assert torch.allclose(got, want, atol=1e-5)
    assert obj.stats()["similarity_reg"] > 0
    with pytest.raises(Exception, match="needs the task-similarity"):
        MultiTaskObjective(tiny_lm, "pcgrad_similarity")


def test_per_task_lora_trains_shared_and_own_adapters(tiny_lm, tiny_tok):
    from tuneforge.multitask.objective import MultiTaskObjective, _sub, multitask_batches
    from tuneforge.multitask.task_adapters import TaskAdapters
    from tuneforge.train.adapters import AdapterConfig, apply_adapter
    from tuneforge.train.sft import sft_loss

    model = apply_adapter(tiny_lm, AdapterConfig(method="lora", r=4, alpha=8, dropout=0.0))
    adapters = TaskAdapters(model, ["alpha", "beta"], r=2, alpha=4)
    for ps in adapters.params.values():  # LoRA B starts at zero: give every adapter a non-zero update
        for p in ps:
            torch.nn.init.normal_(p, std=0.05)
    by_task = {"alpha": _task_rows("alpha", 4, "yes"), "beta": _task_rows("beta", 4, "no")}
    batch = next(multitask_batches(by_task, tiny_tok, batch_size=2))
    obj = MultiTaskObjective(model, "per_task_lora", task_adapters=adapters)
    assert len(obj.params) == sum(len(ps) for ps in adapters.params.values())  # all in the optimizer
    scale = 1.0 / obj.count(batch)
    model.zero_grad()
    obj.backward(model, batch, scale)
    got = {n: [p.grad.clone() for p in ps] for n, ps in adapters.params.items()}
    # by hand: each task through shared + its own adapter only
    want = {n: [torch.zeros_like(p) for p in ps] for n, ps in adapters.params.items()}
    for t in ("alpha", "beta"):
        params = adapters.use(t)
        grads = torch.autograd.grad(sft_loss(model, _sub(batch, t)) * scale, params)
        own = adapters.names[t]
        for name, part in (
            ("default", grads[: len(adapters.params["default"])]),
            (own, grads[len(adapters.params["default"]) :]),
        ):
            want[name] = [w + g for w, g in zip(want[name], part)]
    for n in adapters.all_names:
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got[n], want[n])), n
    assert all(g.abs().sum() > 0 for g in got[adapters.names["alpha"]])
    assert set(obj.stats()) >= {"conflict_mean_cosine"}
    # the active adapters change the output: shared only ≠ shared + alpha's own
    ids = _sub(batch, "alpha")["input_ids"]
    with torch.no_grad():
        adapters.use(None)
        shared = model(input_ids=ids).logits
        adapters.use("alpha")
        own = model(input_ids=ids).logits
    assert not torch.allclose(shared, own)
    with pytest.raises(Exception, match="needs the model's TaskAdapters"):
        MultiTaskObjective(model, "per_task_lora")


def test_category_sets_are_distinct_and_seeded(tasks):
    from tuneforge.errors import ConfigError
    from tuneforge.multitask.run import category_sets

    seen = [t for t in tasks if t.split == "seen"]
    sets = category_sets(seen, 2, 6, seed=3)
    assert len(sets) == len(set(sets)) == 6 and all(len(s) == 2 and s[0] < s[1] for s in sets)
    assert sets == category_sets(seen, 2, 6, seed=3) and sets != category_sets(seen, 2, 6, seed=4)
    assert len(category_sets(seen, 12, 100)) == 13  # 13 categories: C(13, 12) = 13 sets, no repeats
    with pytest.raises(ConfigError, match="only 13 categories"):
        category_sets(seen, 14, 1)


def test_the_experiment_runs_end_to_end_at_tiny_scale(tasks, tmp_path, shared_data, capsys):
    import json

    from tuneforge.cli import main
    from tuneforge.models import tiny_model, tiny_tokenizer

    # a tiny BPE trained on the task texts, so SuperNI prompts fit the tiny model's 512 positions
    corpus = [t.definition for t in tasks] + [i["input"] for t in tasks for i in t.instances[:20]]
    tok = tiny_tokenizer(corpus, vocab_size=3000)
    tiny_model(tok).save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    out = tmp_path / "mt"
    assert (
        main(
            [
                "multitask",
                "run",
                f"output_dir={out}",
                f"superni_dir={shared_data / 'superni'}",
                f"model.name={tmp_path / 'model'}",
                "model.dtype=float32",
                "methods=[mixed, per_task_lora, pcgrad_similarity]",
                "seen_tasks=3",
                "unseen_tasks=2",
                "train_per_task=4",
                "eval_per_task=2",
                "train.steps=2",
                "train.precision=fp32",
                "train.log_every=1",
                "train.max_length=512",
                "generation.max_new_tokens=2",
                "phrasing_per_task=1",
                "phrasing_forms=[instruction, template, abstract, question, role]",
                "bootstrap=50",
                "combo_sets=2",
                "combo_size=1",
                "combo_steps=1",
                "combo_eval_per_task=1",
            ]
        )
        == 0
    )
    res = json.loads((out / "results.json").read_text())
    assert list(res["methods"]) == ["base", "mixed", "per_task_lora", "pcgrad_similarity"]
    for method in ("mixed", "per_task_lora", "pcgrad_similarity"):
        g = res["methods"][method]["generalisation"]["metrics"]["rouge_l"]
        assert g["n_seen_tasks"] == 3 and g["n_unseen_tasks"] == 2 and len(g["gap_ci"]) == 2
        assert -1 <= res["methods"][method]["conflict_mean_cosine"] <= 1
    assert len(res["phrasing"]["rouge_l"]["per_form"]) == 5
    assert "| pcgrad_similarity |" in (out / "results.md").read_text()
    assert (out / "methods.png").exists() and (out / "phrasing.png").exists()
    # per_task_lora: seen tasks answered through their own adapters, unseen ones through the shared one
    gens = [json.loads(x) for x in (out / "per_task_lora" / "generations.jsonl").read_text().splitlines()]
    assert len(gens) == 3 * 2 + 2 * 2
    combos = res["combinations"]
    assert len(combos["sets"]) == 2 and all(len(c["categories"]) == 1 and c["tasks"] for c in combos["sets"])
    assert all(len(c["unseen_per_task"]) == 2 for c in combos["sets"])
    assert combos["unseen_mean_min"] <= combos["unseen_mean_median"] <= combos["unseen_mean_max"]
    page = (out / "report.html").read_text()
    assert page.count("<svg") == 4 and "Figure 4" in page and "per_task_lora" in page
    assert (out / "combinations.png").exists() and (out / "categories.png").exists()


def test_the_base_model_loads_on_the_configured_device_whatever_the_dtype(monkeypatch):
    from tuneforge.multitask import run as experiment
    from tuneforge.train.config import ModelChoice

    seen = []
    monkeypatch.setattr(experiment, "load_model", lambda name, dtype, attn, device: seen.append((dtype, device)))
    for dtype, device in (("float32", "cuda"), ("float32", "auto"), ("bfloat16", "cpu")):
        experiment._load_base(experiment.MultiTaskConfig(model=ModelChoice(dtype=dtype, device=device)))
    assert seen == [("float32", "cuda"), ("float32", "auto"), ("bfloat16", "cpu")]  # float32 no longer forces CPU
