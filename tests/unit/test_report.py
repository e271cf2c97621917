from tuneforge.demo import steal_percent


def test_steal_percent_from_proc_stat_counters():
    before = [100, 0, 10, 800, 0, 0, 0, 50, 0, 0]
    after = [200, 0, 20, 900, 0, 0, 0, 130, 0, 0]  # +100 user, +10 sys, +100 idle, +80 steal
    assert steal_percent(before, after) == round(100 * 80 / 290, 1)
    assert steal_percent(None, after) is None
