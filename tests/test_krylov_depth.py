"""The block Krylov finder's depth rule (fastlr/_krylov.py ``krylov_depth``): its values, and that a
rule one block shallower for little oversampling (k = 50, l = 60), which passed the 1/i families,
loses to scikit-learn on a flat spectrum: the k = 50 families of tests/test_worst_case_accuracy.py
include one, so that such a rule fails there."""

import sys

import pytest

import fastlr  # noqa: F401 (loads fastlr._krylov)

pytest.importorskip("sklearn")
from test_worst_case_accuracy import K50, worst_cases  # noqa: E402

krylov = sys.modules["fastlr._krylov"]
randomized = sys.modules["fastlr.randomized"]


def test_depth_values():
    assert [krylov.krylov_depth(n) for n in (0, 1, 2, 3, 4, 5, 7, 10, 15)] == [1, 2, 2, 3, 3, 4, 4, 5, 6]


def test_one_block_less_loses_on_a_flat_spectrum(monkeypatch):
    """k = 50 at the default n_iter (7): the Krylov finder forced at depth 3 (the rule's 4, less one)
    on sigma_i falling 10:1 over 900 is more than 1.5x scikit-learn's worst over 20 seeds, which the
    family's test (test_worst_case_within_sklearn, 1.5x) would catch."""
    name = "k50_flat_10to1_1000x900"
    assert name in K50
    monkeypatch.setattr(krylov, "krylov_depth", lambda *a: 3)
    monkeypatch.setattr(randomized, "krylov_applies", lambda *a: True)
    worst = worst_cases(name, seeds=range(20))
    assert worst["fastlr"] > 1.5 * worst["sklearn"], worst
