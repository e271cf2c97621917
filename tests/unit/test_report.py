from tuneforge.hardware import steal_percent


def test_steal_percent_from_proc_stat_counters():
    before = [100, 0, 10, 800, 0, 0, 0, 50, 0, 0]
    after = [200, 0, 20, 900, 0, 0, 0, 130, 0, 0]  # +100 user, +10 sys, +100 idle, +80 steal
    assert steal_percent(before, after) == round(100 * 80 / 290, 1)
    assert steal_percent(None, after) is None


def _gen(i, text, model):
    from tuneforge.records import Generation, Message

    return Generation(
        id=i,
        prompt=[Message("user", f"question {i}")],
        generation=text,
        references=["a reference answer"],
        model=model,
        domain="finance",
    )


def test_a_paired_comparison_that_cannot_be_computed_is_reported_not_dropped(tmp_path):
    import json

    from tuneforge.evaluate.report import write_report
    from tuneforge.evaluate.scoring import score_generations

    models = {}
    for name, ids in (("base", ["a1", "a2"]), ("tuned", ["b1", "b2"])):  # no item in common
        s = score_generations([_gen(i, "an answer", name) for i in ids], ["rouge_l"], n_boot=10)
        (tmp_path / "scores").mkdir(exist_ok=True)
        (tmp_path / "scores" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in s.pop("per_item")))
        models[name] = s
    (tmp_path / "metrics.json").write_text(
        json.dumps({"run": {"models": {"base": "x", "tuned": "y"}}, "models": models})
    )
    report = write_report(tmp_path).read_text()
    assert "Paired comparison: tuned − base" in report and "share no item ids" in report


def test_the_report_kit_builds_one_self_contained_escaped_page():
    from tuneforge.evaluate import report_kit as kit

    plt = kit.pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    html_page = kit.page(
        "run <x>",
        [*kit.paragraphs(["a `code` & b"]), kit.section("T", ["h<1>"], [["<b>v</b>"]]), kit.figure(fig, "cap & tion")],
    )
    assert html_page.startswith("<!DOCTYPE html>") and html_page.rstrip().endswith("</html>")
    assert "<title>run &lt;x&gt;</title>" in html_page and "<th>h&lt;1&gt;</th>" in html_page
    assert "<td>&lt;b&gt;v&lt;/b&gt;</td>" in html_page and "<p>a code &amp; b</p>" in html_page
    assert "<svg" in html_page and "cap &amp; tion" in html_page
    assert "<script" not in html_page and "http://" not in html_page.split("<svg")[0]
