from __future__ import annotations

import pytest

from benchmarks.stats import mean_ci, paired_test


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
