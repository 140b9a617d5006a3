"""The data-driven sketches' ``heavy_rows`` option: learn_sketch's rule (datadriven._common.heavy_rows_rule)."""

import warnings

import numpy as np
import pytest

import fastlr
from fastlr import datadriven as dd
from fastlr import datasets

M, K = 10, 5

#: name -> (train, m, k, seed, **kw) -> sketch, as bench/guard_audit.py calls them
METHODS = {
    "one_shot": lambda t, seed, **kw: dd.one_shot_sketch(t[0], M, k=K, seed=seed, **kw),
    "few_shot": lambda t, seed, **kw: dd.few_shot_sketch(t[:3], M, K, seed=seed, **kw),
    "inner_product": lambda t, seed, **kw: dd.inner_product_sketch(t, M, K, seed=seed, **kw),
    "inner_product one": lambda t, seed, **kw: dd.inner_product_sketch(t[:1], M, K, seed=seed, **kw),
    "inner_product guard": lambda t, seed, **kw: dd.inner_product_sketch(t, M, K, guard="countsketch", seed=seed,
                                                                         **kw),
    "subspace": lambda t, seed, **kw: dd.subspace_sketch(t, M, k=K, seed=seed, **kw),
    "subspace one": lambda t, seed, **kw: dd.subspace_sketch(t[:1], M, k=K, seed=seed, **kw),
    "hybrid": lambda t, seed, **kw: dd.hybrid_sketch(t[0], M, K, seed=seed, **kw),
}


def _build(name, train, seed, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastlr.LearnedSketchWarning)
        return METHODS[name](train, seed, **kw)


@pytest.fixture(scope="module")
def shifted():
    """bench/guard_audit.py's text-topic seed 13 (data seed 14): 18 training matrices of topics 0-9, 6 held out of
    topics 10-19; the held-out Err of CountSketch(M, n, 13)."""
    kw = {"n_terms": 600, "n_docs": 30, "seed": 14}
    train, test = datasets.text(18, topics=range(10), **kw), datasets.text(6, topics=range(10, 20), **kw)
    return train, test, fastlr.sketch_error(fastlr.CountSketch(M, train[0].shape[0], seed=13), test, K)


@pytest.mark.parametrize("name", METHODS)
def test_default_on_topic_shifted_text_is_below_the_random_sketch_the_plain_one_is(shifted, name):
    train, test, random_err = shifted
    plain = _build(name, train, 13, heavy_rows=False)
    random = fastlr.CountSketch(M, train[0].shape[0], seed=13)
    assert type(plain) is fastlr.CountSketch  # counts: the random fallback itself
    np.testing.assert_array_equal(plain.rows, random.rows)
    np.testing.assert_array_equal(plain.values, random.values)
    S = _build(name, train, 13)
    assert isinstance(S, fastlr.HeavyRowSketch) and (S.threshold, S.max_rows) == (0.5, M // 2)
    assert S.reason.startswith("heavy_rows='auto'") and "few rows" in S.reason
    np.testing.assert_array_equal(S.base.rows, random.rows)
    assert fastlr.sketch_error(S, test, K, guard=False) < 0.7 * random_err
    # learn_sketch's rule, from the one place both use
    assert _build(name, train, 13, heavy_rows=True).threshold == 0.5


@pytest.mark.parametrize("family", ["video", "hyperspectral", "lowrank"])
@pytest.mark.parametrize("name", METHODS)
def test_auto_leaves_frames_bands_and_low_rank_unchanged(family, name):
    data = {"video": lambda: datasets.video(12, height=30, width=80, seed=1),
            "hyperspectral": lambda: datasets.hyperspectral(12, height=96, width=32, bands=4, seed=1),
            "lowrank": lambda: datasets.lowrank(12, shape=(200, 30), rank=8, noise=0.05, seed=1)}[family]()
    S, plain = _build(name, data, 0), _build(name, data, 0, heavy_rows=False)
    assert type(S) is type(plain) and not isinstance(S, fastlr.HeavyRowSketch)
    assert [type(leaf) for leaf in S.parts()] == [type(leaf) for leaf in plain.parts()]
    for a, b in zip(S.parts(), plain.parts()):
        np.testing.assert_array_equal(a.to_dense(), b.to_dense())
    forced = _build(name, data, 0, heavy_rows=True)
    if all(isinstance(leaf, fastlr.CountSketch) for leaf in plain.parts()):  # asked for: wrapped, no row heavy
        assert isinstance(forced, fastlr.HeavyRowSketch) and forced.reason == "heavy_rows=True"
        assert forced.threshold == 1.5 and forced.adapted(data[0]) is forced.base
    else:  # a dense leaf: HeavyRowSketch reserves CountSketch buckets, so the sketch is returned as it is
        assert type(forced) is type(plain)


@pytest.mark.parametrize("bad", ["yes", 1, None, "Auto"])
@pytest.mark.parametrize("name", METHODS)
def test_heavy_rows_must_be_auto_true_or_false(name, bad):
    train = datasets.text(3, n_terms=100, n_docs=10, seed=0)
    with pytest.raises(ValueError, match="heavy_rows"):
        METHODS[name](train, 0, heavy_rows=bad)


def test_few_shot_paper_values_are_refined_then_wrapped(shifted):
    # values="paper" takes its steps on counts: on the plain sketch (refine_values needs a CountSketch), then wrapped
    train, _, _ = shifted
    plain = _build("few_shot", train, 13, values="paper", steps=3, heavy_rows=False)
    S = _build("few_shot", train, 13, values="paper", steps=3)
    assert type(plain) is fastlr.CountSketch and isinstance(S, fastlr.HeavyRowSketch)
    np.testing.assert_array_equal(S.base.values, plain.values)


def test_learn_sketch_data_driven_start_stays_plain():
    # init="one_shot" on counts: the start is the plain one-shot sketch (learn_sketch wraps what it trained)
    train = datasets.text(6, n_terms=300, n_docs=20, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastlr.LearnedSketchWarning)
        S = fastlr.learn_sketch(train, 6, 3, steps=3, init="one_shot", shrink=0, progress=False)
        T = fastlr.learn_sketch(train, 6, 3, steps=3, init=dd.one_shot_sketch(train[0], 6, heavy_rows=False),
                                shrink=0, progress=False)
    assert isinstance(S, fastlr.HeavyRowSketch) and type(S.base) is fastlr.LearnedSketch
    np.testing.assert_array_equal(S.base.values, T.base.values)


def test_default_result_save_load_round_trip(shifted, tmp_path):
    train, test, _ = shifted
    S = _build("inner_product", train, 13)
    S.save(tmp_path / "s.npz")
    T = fastlr.load_sketch(tmp_path / "s.npz")
    assert isinstance(T, fastlr.HeavyRowSketch) and type(T.base) is fastlr.CountSketch
    assert (T.threshold, T.max_rows, T.seed) == (S.threshold, S.max_rows, S.seed)
    np.testing.assert_array_equal(T.base.rows, S.base.rows)
    np.testing.assert_array_equal(T.base.values, S.base.values)
    assert fastlr.sketch_error(T, test, K) == fastlr.sketch_error(S, test, K)


def test_refine_values_and_greedy_positions_take_a_wrapped_sketch_and_keep_its_rule(shifted):
    # chaining on counts: the builders return a HeavyRowSketch; the refiners work on its base and wrap the result
    train, _, _ = shifted
    S = _build("inner_product", train[:4], 13)
    assert isinstance(S, fastlr.HeavyRowSketch)
    for refined, plain in [(dd.refine_values(train[:4], S, K, steps=3, seed=1),
                            dd.refine_values(train[:4], S.base, K, steps=3, seed=1)),
                           (dd.greedy_positions(train[:4], S, K, max_time=None, max_columns=20),
                            dd.greedy_positions(train[:4], S.base, K, max_time=None, max_columns=20))]:
        assert isinstance(refined, fastlr.HeavyRowSketch) and type(refined.base) is fastlr.CountSketch
        assert (refined.threshold, refined.max_rows, refined.seed, refined.reason) == (S.threshold, S.max_rows,
                                                                                       S.seed, S.reason)
        np.testing.assert_array_equal(refined.base.rows, plain.rows)
        np.testing.assert_array_equal(refined.base.values, plain.values)
