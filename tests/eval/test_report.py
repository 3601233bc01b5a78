"""Confidence intervals and paired tests used by the report."""

from __future__ import annotations

import random

import pytest

from rag.eval.report import bootstrap_ci, paired_test

pytestmark = pytest.mark.unit


def test_bootstrap_ci_brackets_the_mean_and_narrows_with_more_queries():
    rng = random.Random(0)
    small = [rng.random() for _ in range(20)]
    large = small * 20
    low, high = bootstrap_ci(small)
    assert low < sum(small) / len(small) < high
    low_l, high_l = bootstrap_ci(large)
    assert high_l - low_l < (high - low) / 2
    assert bootstrap_ci([0.5, 0.5, 0.5]) == (0.5, 0.5)


def test_paired_test_detects_a_consistent_improvement():
    rng = random.Random(1)
    base = [rng.random() * 0.5 for _ in range(40)]
    better = [b + 0.1 + rng.random() * 0.05 for b in base]
    result = paired_test(better, base)
    assert result["mean_diff"] == pytest.approx(sum(better) / 40 - sum(base) / 40)
    assert result["wilcoxon_p"] < 0.001 and result["ttest_p"] < 0.001
    noise = paired_test([b + rng.choice([-0.01, 0.01]) for b in base], base)
    assert noise["ttest_p"] > 0.001


def test_paired_test_on_identical_values_and_bad_input():
    assert paired_test([0.1, 0.2], [0.1, 0.2])["wilcoxon_p"] == 1.0
    with pytest.raises(ValueError, match="equal lengths"):
        paired_test([0.1], [0.1, 0.2])
