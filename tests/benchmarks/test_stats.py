from __future__ import annotations

import math

import pytest

from benchmarks.stats import compare_methods, gap_share, mean_ci, metric_ci, paired_test, t95, wilson_ci


def test_paired_test_exact_small_case_and_null():
    res = paired_test([1, 2, 3, 4, 5, 6], [0, 1, 2, 3, 4, 5])
    assert res["mean_diff"] == 1.0
    assert res["p"] == pytest.approx(2 / 64, abs=0.01)  # all six signs agree: exact p = 2/2^6
    null = paired_test([1, 2, 3, 4], [1.1, 1.9, 3.1, 3.9])
    assert null["p"] > 0.5
    with pytest.raises(ValueError, match="at least 2 pairs"):
        paired_test([1], [2])


def test_mean_ci():
    m, ci = mean_ci([1.0, 2.0, 3.0])
    assert m == 2.0 and ci == pytest.approx(4.303 * 1.0 / 3 ** 0.5, rel=1e-3)


def test_t95_matches_published_quantiles():
    # Student t 0.975 quantiles from the standard tables (and 1.960 in the limit)
    for df, t in ((2, 4.303), (12, 2.179), (29, 2.045), (35, 2.030), (45, 2.014), (90, 1.987), (200, 1.972),
                  (1000, 1.962), (10 ** 6, 1.960)):
        assert t95(df) == pytest.approx(t, abs=1.5e-3), df
    assert math.isnan(t95(0))


def test_wilson_ci_published_values_and_ends():
    lo, hi = wilson_ci(3, 10)  # 3 of 10: the Wilson interval is [0.1078, 0.6032]
    assert (lo, hi) == pytest.approx((0.1078, 0.6032), abs=1e-4)
    assert wilson_ci(0, 10)[0] == 0.0 and wilson_ci(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    assert wilson_ci(10, 10) == (pytest.approx(0.7225, abs=1e-4), 1.0)
    assert all(math.isnan(v) for v in wilson_ci(0, 0))


def test_metric_ci_suits_the_metric():
    m, lo, hi = metric_ci([1.0, 0.0], binary=True)
    assert m == 0.5 and 0 < lo < 0.5 < hi < 1  # not 0.5 ± 6.35
    m, lo, hi = metric_ci([9.0, 10.0], low=0, high=10)  # t: 9.5 ± 6.35, clipped at 10 above only
    assert (m, hi) == (9.5, 10) and lo == pytest.approx(9.5 - 12.706 * 0.5)
    m, lo, hi = metric_ci([0.5, 1.0], binary=True, low=0, high=1)  # not 0/1: the clipped t interval
    assert (lo, hi) == (0, 1)
    assert all(math.isnan(v) for v in metric_ci([3.0], low=0, high=10)[1:])
    assert math.isnan(metric_ci([])[0])


def _rows(values: dict[str, dict[str, float]], metric: str = "user_effort") -> list[dict]:
    return [{"method": m, "user_id": u, "session": 0, "status": "ok", metric: v}
            for m, per_user in values.items() for u, v in per_user.items()]


def test_gap_share_by_hand():
    # every user: vanilla 6, oracle 2, method 3 -> (6 - 3) / (6 - 2) = 75 %, and so is every resample
    rows = _rows({"vanilla": {"a": 6, "b": 6, "c": 6}, "oracle": {"a": 2, "b": 2, "c": 2},
                  "m": {"a": 3, "b": 3, "c": 3}})
    res = gap_share(rows, "m")
    assert (res["share"], res["ci_low"], res["ci_high"], res["n"]) == (0.75, 0.75, 0.75, 3)
    assert (res["gap"], res["gap_ci_low"], res["gap_ci_high"]) == (4.0, 4.0, 4.0)
    # higher is better (success): vanilla 0.2, oracle 0.6, method 0.5 -> (0.2 - 0.5) / (0.2 - 0.6) = 75 %
    rows = _rows({"vanilla": {"a": 0.2, "b": 0.2}, "oracle": {"a": 0.6, "b": 0.6}, "m": {"a": 0.5, "b": 0.5},
                  "lonely": {"z": 1.0}}, "task_success")
    assert gap_share(rows, "m", "task_success")["share"] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="no user ran vanilla, oracle and lonely"):
        gap_share(rows, "lonely", "task_success")
    with pytest.raises(ValueError, match="unknown method 'orcle'; did you mean 'oracle'"):
        gap_share(rows, "m", "task_success", target="orcle")


def test_compare_methods_names_an_unknown_method():
    rows = _rows({"vanilla": {"a": 1, "b": 2}, "oracle": {"a": 0, "b": 0}})
    assert compare_methods(rows, "vanilla", "oracle")["mean_diff"] == 1.5
    with pytest.raises(ValueError, match="unknown method 'vanila'; did you mean 'vanilla'.*vanilla, oracle"):
        compare_methods(rows, "vanila", "oracle")
