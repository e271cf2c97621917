"""`tuneforge scaling` end to end on tiny models: nested fractions trained with one epoch count,
every fit with CIs, the extrapolation check, reuse of finished runs, and two model sizes giving
the joint law and a model choice."""

import json

import pytest

from tuneforge.cli import main
from tuneforge.data.io import read_records


@pytest.fixture
def sweep(tmp_path, tiny_tok):
    from conftest import make_examples
    from tuneforge.data.io import write_records
    from tuneforge.models import tiny_model

    for name, hidden in (("small", 32), ("large", 64)):
        tiny_model(tiny_tok, hidden=hidden, layers=2, seed=0).save_pretrained(tmp_path / name)
        tiny_tok.save_pretrained(tmp_path / name)
    write_records(make_examples(32), tmp_path / "train.jsonl")
    write_records(make_examples(40)[32:], tmp_path / "test.jsonl")

    def args(*more):
        return ["scaling", f"output_dir={tmp_path / 'out'}", f"model.name={tmp_path / 'small'}", "model.dtype=float32",
                "model.device=cpu", f"data.train={tmp_path / 'train.jsonl'}", f"data.eval={tmp_path / 'test.jsonl'}",
                "adapter.method=full", "train.batch_size=2", "train.lr=3e-3", "train.precision=fp32",
                "scaling.fractions=[0.125,0.25,0.5,1.0]", "scaling.bootstrap=20", *more]  # fmt: skip

    return tmp_path, args


def test_scaling_trains_nested_fractions_for_one_epoch_and_fits_every_law(sweep, capsys):
    tmp, args = sweep
    assert main(args("scaling.seeds=[0,1]")) == 0
    out = tmp / "out"
    result = json.loads((out / "scaling.json").read_text())
    runs = result["runs"]
    assert sorted((r["fraction"], r["seed"]) for r in runs) == [(f, s) for f in (0.125, 0.25, 0.5, 1.0) for s in (0, 1)]
    for r in runs:  # one epoch: steps grow with the data (batch 2)
        assert r["examples"] == round(32 * r["fraction"]) and r["steps"] == -(-r["examples"] // 2)
        s = json.loads((out / r["run"] / "train_summary.json").read_text())
        assert (
            r["c_train_6nd"] == s["compute"]["c_train_6nd"] == 6 * s["compute"]["params"]["non_embedding"] * r["tokens"]
        )
    ids = {f: {x.id for x in read_records(out / "data" / f"s0-f{f:g}.jsonl")} for f in (0.125, 0.25, 0.5, 1.0)}
    assert ids[0.125] < ids[0.25] < ids[0.5] < ids[1.0]  # nested: each smaller set inside the larger
    m = result["fits"]["models"][str(tmp / "small")]
    for law in ("data_law", "rectified_law"):
        for k in m[law]["ci"]:
            lo, hi = m[law]["ci"][k]
            assert lo <= hi and k in m[law]["params"]
    x = m["extrapolation"]
    assert x["fit_on"] and x["d_max"] > max(x["fit_on"]) and x["ci"][0] <= x["ci"][1]
    assert x["bends"] == (not x["ci"][0] <= 0 <= x["ci"][1])
    assert set(m["more_data"]) == {"2x", "4x"}
    md = (out / "scaling.md").read_text()
    assert "Extrapolation check" in md and "L(D) = B/D^β + E" in md and "| 0.125 | 1 |" in md
    assert (out / "scaling.png").stat().st_size > 10_000 and "joint_law" not in result["fits"]
    # a rerun with the same config trains nothing: every finished run is reused
    capsys.readouterr()
    (out / "scaling.json").unlink()
    assert main(args("scaling.seeds=[0,1]")) == 0
    printed = capsys.readouterr().out
    assert printed.count("reusing") == 8 and "Trained" not in printed
    assert json.loads((out / "scaling.json").read_text())["runs"] == runs
    # another learning rate is another result: not reused, and not overwritten unless asked
    assert main(args("scaling.seeds=[0]", "train.lr=1e-3")) == 2
    assert "train.lr: 0.003 → 0.001" in capsys.readouterr().err
    assert main(args("scaling.seeds=[0]", "train.lr=1e-3", "train.resume=false")) == 0
    printed = capsys.readouterr().out
    assert "reusing" not in printed and printed.count("Trained") == 4


def test_two_model_sizes_give_the_joint_law_and_a_model_choice_with_its_confidence(sweep):
    tmp, args = sweep
    assert main(args("scaling.seeds=[0]", f"models=[{tmp / 'small'},{tmp / 'large'}]", "scaling.budget=5000")) == 0
    fits = json.loads((tmp / "out" / "scaling.json").read_text())["fits"]
    assert set(fits["joint_law"]["params"]) == {"A", "alpha", "B", "beta", "E", "sse"}
    sel = fits["selection"]
    assert sel["budget"] == 5000 and sel["choice"] in sel["predicted"] and 0 < sel["confidence"] <= 1
    assert len(sel["predicted"]) == 2
    assert "Model choice at a budget of 5,000 tokens" in (tmp / "out" / "scaling.md").read_text()


def test_each_model_keeps_its_own_base_loss_as_its_d_0_point():
    from tuneforge.scaling.run import points_of

    def row(model, frac, base):
        pe = {"units": [2, 3], "base": [base, base], "tuned": [1.0, 1.0]}
        c = {"tokens": 100 * frac, "params": {"non_embedding": 10 + model, "trainable_non_embedding": 1}}
        return {"model": model, "fraction": frac, "seed": 0, "run": f"m{model}-f{frac}",
                "summary": {"eval": {"per_example": pe}, "compute": c}}  # fmt: skip

    rows = [row(m, f, 7.0 + m) for f in (1, 2) for m in (0, 1)]  # model 0's base 7, model 1's base 8
    _, with_base = points_of(rows, "lora")
    base = with_base.d == 0
    assert dict(zip(with_base.model[base].tolist(), (with_base.sums[base].sum(1) / 5).tolist())) == {0: 2.8, 1: 3.2}


def test_too_few_fractions_to_check_the_extrapolation_is_refused_before_anything_is_written(sweep, capsys):
    tmp, args = sweep
    assert main(args("scaling.fractions=[0.5,1.0]")) == 2
    assert "scaling.fractions needs 4 distinct shares" in capsys.readouterr().err
    assert not (tmp / "out").exists()
