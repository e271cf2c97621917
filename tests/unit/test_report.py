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


def _run_with_eval_curve(tmp_path):
    import json

    from tuneforge.evaluate.scoring import score_generations

    models = {}
    for name in ("base", "tuned"):
        s = score_generations([_gen(f"q{i}", f"an answer {i} {name}", name) for i in range(4)], ["rouge_l"], n_boot=10)
        (tmp_path / "scores").mkdir(parents=True, exist_ok=True)
        (tmp_path / "scores" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in s.pop("per_item")))
        models[name] = s
    (tmp_path / "metrics.json").write_text(
        json.dumps({"run": {"models": {"base": "x", "tuned": "y"}}, "models": models})
    )
    rows = [{"step": s, "loss": 3.0 / s} for s in range(1, 9)]
    rows += [{"step": s, "eval_loss": 2.0 + s / 8, "eval_loss_lo": 1.9 + s / 8, "eval_loss_hi": 2.2 + s / 8}
             for s in (4, 8)]  # fmt: skip
    (tmp_path / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def test_loss_curves_show_raw_points_faintly_a_smoothed_line_and_held_out_points_with_their_ci(tmp_path):
    from matplotlib.container import ErrorbarContainer

    from tuneforge.evaluate import report_kit as kit
    from tuneforge.evaluate.training_curves import plot_loss, smoothed

    rows = _run_with_eval_curve(tmp_path)
    fig, ax = kit.pyplot().subplots()
    plot_loss(ax, rows, "run")
    raw, line = ax.lines[:2]
    assert raw.get_alpha() == 0.3 and list(raw.get_ydata()) == [r["loss"] for r in rows[:8]]
    assert list(line.get_ydata()) == smoothed([r["loss"] for r in rows[:8]]) and line.get_label() == "run training"
    (bars,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert list(bars.lines[0].get_ydata()) == [2.5, 3.0]  # the held-out points, with their CI as error bars
    assert smoothed([4.0, 4.0, 4.0]) == [4.0, 4.0, 4.0]  # debiased: a flat series stays flat


def test_the_report_and_compare_page_draw_held_out_evaluations_from_the_training_log(tmp_path):
    from tuneforge.evaluate.compare_page import compare_page
    from tuneforge.evaluate.report import write_report

    _run_with_eval_curve(tmp_path / "run")
    write_report(tmp_path / "run")
    assert "held-out" in (tmp_path / "run" / "report.html").read_text()
    page = compare_page([f"{tmp_path / 'run'}:base", f"{tmp_path / 'run'}:tuned"], tmp_path / "cmp", n_boot=10)
    html = (page if page.is_file() else page / "compare.html").read_text()
    assert "held-out evaluations with 95% CIs" in html


def test_chart_legends_sit_beside_the_axes_where_they_cover_no_bar_or_point(tmp_path):
    import json

    from tuneforge.evaluate.report import _domain_chart, _loss_chart

    rows = _run_with_eval_curve(tmp_path)
    models = json.loads((tmp_path / "metrics.json").read_text())["models"]
    for fig in (_domain_chart(models, "rouge_l"), _loss_chart(rows)):
        fig.canvas.draw()
        ax = fig.axes[0]
        legend, area = ax.get_legend().get_window_extent(), ax.get_window_extent()
        assert legend.x0 >= area.x1  # entirely to the right of the plotting area
    bars = [c for c in _domain_chart(models, "rouge_l").axes[0].containers if hasattr(c, "errorbar")]
    assert bars and all(c.errorbar is not None for c in bars)  # every bar with its CI
