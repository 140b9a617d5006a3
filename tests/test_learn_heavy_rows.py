"""learn_sketch(heavy_rows="auto"): text-like training data get the apply-time heavy-row rule by default (issue 15)."""

import json
import sys
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from helpers import run_outside_tree

import fastlr
from fastlr import datasets
from fastlr.datadriven.fewshot import few_rows, rows_used_unlike

M, K, STEPS = 10, 5, 40


def _topic_shift(seed):
    """bench/guard_audit.py's text-topic family: 18 training matrices of topics 0-9, 6 held out of topics 10-19."""
    kw = {"n_terms": 600, "n_docs": 30, "seed": seed}
    return datasets.text(18, topics=range(10), **kw), datasets.text(6, topics=range(10, 20), **kw)


def fastlr_cli(*args):
    return run_outside_tree([sys.executable, "-m", "fastlr", *map(str, args)])


def _learn(train, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastlr.LearnedSketchWarning)
        return fastlr.learn_sketch(train, M, K, steps=STEPS, progress=False, **kw)


@pytest.fixture(scope="module")
def shifted():
    """guard_audit's text-topic seed 13 (data seed 14): the plain learned sketch loses to CountSketch(m, n, 13)."""
    train, test = _topic_shift(14)
    return train, test, fastlr.sketch_error(fastlr.CountSketch(M, train[0].shape[0], seed=13), test, K)


def test_default_on_topic_shifted_text_is_not_worse_than_random_where_plain_learned_is(shifted):
    train, test, random_err = shifted
    plain = _learn(train, seed=13, heavy_rows=False)
    assert type(plain) is fastlr.LearnedSketch
    assert fastlr.sketch_error(plain, test, K, guard=False) > 1.03 * random_err  # the loss heavy_rows="auto" removes
    S = _learn(train, seed=13)
    assert isinstance(S, fastlr.HeavyRowSketch)
    assert fastlr.sketch_error(S, test, K, guard=False) < 0.7 * random_err
    # the same training: the wrapper's base is the plain sketch
    np.testing.assert_array_equal(S.base.values, plain.values)
    np.testing.assert_array_equal(S.base.rows, plain.rows)
    assert "few rows" in S.reason and S.reason.startswith("heavy_rows='auto'")


def test_counts_get_the_lower_threshold_small_sketches_need():
    # text-topic seed 23 at m = 4, k = 2: no row of the new topics reaches 1.5 ||A||_F^2 / m (the class default
    # leaves the plain sketch, 1.17x random's held-out Err); the counts threshold 0.5 isolates their frequent words
    train, test = _topic_shift(24)
    random_err = fastlr.sketch_error(fastlr.CountSketch(4, train[0].shape[0], seed=23), test, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastlr.LearnedSketchWarning)
        S = fastlr.learn_sketch(train, 4, 2, steps=STEPS, seed=23, progress=False)
    assert isinstance(S, fastlr.HeavyRowSketch) and S.threshold == 0.5 and S.max_rows == 2
    assert fastlr.sketch_error(fastlr.HeavyRowSketch(S.base), test, 2) > 1.1 * random_err
    assert fastlr.sketch_error(S, test, 2, guard=False) < 0.5 * random_err


def test_wrapper_reads_the_learned_sketch_through(shifted):
    train, test, _ = shifted
    S = _learn(train, seed=13, mixed="joint")
    assert isinstance(S, fastlr.HeavyRowSketch) and isinstance(S.base, fastlr.LearnedSketch)
    assert S.k == K and S.mixed == "joint" and S.shape == (M, train[0].shape[0])
    assert S.history is S.base.history and len(S.history) > 1
    assert S.validation is S.base.validation and S.fallback == S.base.fallback
    with pytest.raises(TypeError, match="adapted"):
        S.to_dense()
    A = test[0].toarray()
    np.testing.assert_allclose(S.adapted(A).to_dense() @ A, S @ A, rtol=1e-12, atol=1e-12)


def test_random_fallback_is_wrapped_too():
    # text-topic seed 6: mixed="joint" does not beat its start on validation; the start went out plain at 1.16x
    # random's held-out Err, wrapped it is below random
    train, test = _topic_shift(7)
    random_err = fastlr.sketch_error(fastlr.CountSketch(M, train[0].shape[0], seed=6), test, K)
    S = _learn(train, seed=6, mixed="joint")
    assert isinstance(S, fastlr.HeavyRowSketch) and S.fallback
    assert fastlr.sketch_error(S.base, test, K) > random_err
    assert fastlr.sketch_error(S, test, K, guard=False) < random_err


@pytest.mark.parametrize("family", ["video", "hyperspectral", "lowrank"])
def test_auto_returns_the_plain_learned_sketch_on_frames_bands_and_low_rank(family):
    data = {"video": lambda: datasets.video(12, height=30, width=80, seed=1),
            "hyperspectral": lambda: datasets.hyperspectral(12, height=96, width=32, bands=4, seed=1),
            "lowrank": lambda: datasets.lowrank(12, shape=(200, 30), rank=8, noise=0.05, seed=1)}[family]()
    S = _learn(data, seed=0)
    assert type(S) is fastlr.LearnedSketch
    np.testing.assert_array_equal(S.values, _learn(data, seed=0, heavy_rows=False).values)
    forced = _learn(data, seed=0, heavy_rows=True)  # asked for: wrapped, and no row is heavy there
    assert isinstance(forced, fastlr.HeavyRowSketch) and forced.reason == "heavy_rows=True"
    assert forced.adapted(data[0]) is forced.base


def test_auto_leaves_rows_merely_used_unlike_each_other_plain():
    # independent random low-rank matrices use their rows unlike each other (few_shot_sketch's second reason), but
    # have no counts' heavy rows: wrapping would only cost the row-norm pass, to_dense and dask's laziness
    rng = np.random.default_rng(0)
    train = [rng.standard_normal((60, 2)) @ rng.standard_normal((2, 12)) for _ in range(4)]
    assert rows_used_unlike(train) is not None and few_rows(train) is None
    assert type(_learn(train, seed=0)) is fastlr.LearnedSketch


def test_mixed_m2_on_text_keeps_a_hashed_bucket_per_half():
    train = datasets.text(6, n_terms=300, n_docs=20, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastlr.LearnedSketchWarning)
        S = fastlr.learn_sketch(train, 2, 1, steps=5, mixed="joint", progress=False)
    assert isinstance(S, fastlr.HeavyRowSketch) and S.max_rows == 0


def test_dask_input_decides_on_the_held_out_matrices():
    db = pytest.importorskip("dask.bag")
    train = datasets.text(10, n_terms=300, n_docs=20, seed=3)
    S = _learn(db.from_sequence(train, npartitions=2), seed=0)
    assert isinstance(S, fastlr.HeavyRowSketch)
    np.testing.assert_array_equal(S.base.values, _learn(train, seed=0).base.values)
    assert type(_learn(db.from_sequence(train, npartitions=2), seed=0, holdout=0)) is fastlr.LearnedSketch


@pytest.mark.parametrize("bad", ["yes", 1, None, "Auto"])
def test_heavy_rows_must_be_auto_true_or_false(bad):
    with pytest.raises(ValueError, match="heavy_rows"):
        fastlr.learn_sketch(datasets.text(3, n_terms=100, n_docs=10, seed=0), 4, 2, steps=1, heavy_rows=bad)


def test_default_result_save_load_round_trip(shifted, tmp_path):
    train, test, _ = shifted
    S = _learn(train, seed=13)
    S.save(tmp_path / "s.npz")
    T = fastlr.load_sketch(tmp_path / "s.npz")
    assert isinstance(T, fastlr.HeavyRowSketch) and isinstance(T.base, fastlr.LearnedSketch)
    assert (T.threshold, T.max_rows, T.seed, T.k) == (S.threshold, S.max_rows, S.seed, S.k)
    np.testing.assert_array_equal(T.base.values, S.base.values)
    for field in S.history.dtype.names:  # field by field: NaN (no loss at step 0, no evaluation) equals NaN
        np.testing.assert_array_equal(T.history[field], S.history[field])
    assert fastlr.sketch_error(T, test, K) == fastlr.sketch_error(S, test, K)


def test_cli_train_and_eval_on_text(tmp_path, shifted):
    train, test, _ = shifted
    for name, part in (("train", train), ("test", test)):
        (tmp_path / name).mkdir()
        for i, A in enumerate(part):
            sp.save_npz(tmp_path / name / f"{i:02d}.npz", A)
    auto, off = tmp_path / "auto.npz", tmp_path / "off.npz"
    out = fastlr_cli("train", tmp_path / "train", "-m", M, "-k", K, "-o", auto, "--steps", STEPS, "--seed", 13,
                     "--json", "--quiet")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["heavy_rows"].startswith("heavy_rows='auto'")
    out = fastlr_cli("train", tmp_path / "train", "-m", M, "-k", K, "-o", off, "--steps", STEPS, "--seed", 13,
                     "--heavy-rows", "off", "--json", "--quiet")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["heavy_rows"] is None
    S, P = fastlr.load_sketch(auto), fastlr.load_sketch(off)
    assert isinstance(S, fastlr.HeavyRowSketch) and type(P) is fastlr.LearnedSketch
    out = fastlr_cli("eval", auto, tmp_path / "test", "--seed", 13, "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["sketch"]: r["err"] for r in json.loads(out.stdout)["rows"]}
    np.testing.assert_allclose(rows["sketch (auto.npz)"], fastlr.sketch_error(S, test, K), rtol=1e-6)
    assert rows["sketch (auto.npz)"] < rows["random CountSketch"]


def test_a_wrapped_result_can_be_wrapped_again_and_trained_on(shifted):
    # README's pattern before learn_sketch wrapped its result: HeavyRowSketch(learn_sketch(...)) and init=S
    train, test, _ = shifted
    S = _learn(train, seed=13)
    assert isinstance(S, fastlr.HeavyRowSketch)
    H = fastlr.HeavyRowSketch(S, threshold=2.0, max_rows=3, seed=5)  # this rule replaces the wrapped one
    assert H.base is S.base and (H.threshold, H.max_rows, H.seed) == (2.0, 3, 5)
    A = test[0]
    np.testing.assert_array_equal(H @ A, fastlr.HeavyRowSketch(S.base, threshold=2.0, max_rows=3, seed=5) @ A)
    again = _learn(train, seed=13, init=S, heavy_rows=False)  # training restarts from the base's values
    plain_again = _learn(train, seed=13, init=S.base, heavy_rows=False)
    np.testing.assert_array_equal(again.values, plain_again.values)
    np.testing.assert_array_equal(again.rows, S.base.rows)
