"""HeavyRowSketch: a CountSketch whose heaviest rows of each matrix get a bucket alone (issue 15)."""

import numpy as np
import pytest
import scipy.sparse as sp
from helpers import assert_close, messy_csr

import fastlr
from fastlr._matrix import operand
from fastlr.heavy_rows import HeavyRowSketch
from fastlr.sketch import countsketch_hash


def _with_heavy_rows(n=300, d=20, heavy=(7, 123, 250), seed=0):
    """Small noise plus a few rows much heavier than ||A||_F^2 / m."""
    rng = np.random.default_rng(seed)
    A = 0.01 * rng.standard_normal((n, d))
    for t, i in enumerate(heavy):
        A[i] = (3.0 - 0.5 * t) * rng.standard_normal(d)
    return A


def _reference(S, A, threshold=1.5, max_rows=None, seed=0):
    """The rule written out in NumPy for one CountSketch: the dense m x n matrix used for A."""
    m, n = S.shape
    max_rows = m // 2 if max_rows is None else max_rows
    e = (np.asarray(A, dtype=np.float64) ** 2).sum(axis=1)
    order = sorted(range(n), key=lambda i: (-e[i], i))[:max_rows]
    heavy = [i for i in order if e[i] >= threshold * e.sum() / m]
    h = len(heavy)
    D = np.zeros((m, n))
    second = countsketch_hash(seed, m - h, 0, n)[0]
    for i in range(n):
        if i in heavy:
            D[m - h + heavy.index(i), i] = 1.0
        else:
            b = S.rows[i] if S.rows[i] < m - h else second[i]
            D[b, i] = S.values[i]
    return D, heavy


def test_matches_the_numpy_reference():
    A = _with_heavy_rows()
    S = fastlr.CountSketch(10, 300, seed=4)
    D, heavy = _reference(S, A)
    assert sorted(heavy) == [7, 123, 250]
    H = HeavyRowSketch(S)
    np.testing.assert_array_equal(H.adapted(A).to_dense(), D)
    assert_close(H @ A, D @ A, np.float64)


@pytest.mark.parametrize("threshold, max_rows", [(0.5, 2), (2.0, None), (1.0, 0), (3.0, 4)])
def test_threshold_and_max_rows(threshold, max_rows):
    A = _with_heavy_rows(heavy=(3, 40, 41, 200, 299))
    S = fastlr.CountSketch(12, 300, seed=1)
    D, heavy = _reference(S, A, threshold, max_rows)
    H = HeavyRowSketch(S, threshold=threshold, max_rows=max_rows)
    np.testing.assert_array_equal(H.heavy((A ** 2).sum(axis=1)), heavy)
    np.testing.assert_array_equal(H.adapted(A).to_dense(), D)


def test_positions_valid_and_heavy_rows_alone():
    A = _with_heavy_rows()
    for seed in range(5):
        adapted = HeavyRowSketch(fastlr.CountSketch(10, 300, seed=seed)).adapted(A)
        D = adapted.to_dense()
        assert np.all((D != 0).sum(axis=0) == 1)  # one nonzero per column
        assert adapted.rows.min() >= 0 and adapted.rows.max() < 10
        for i in (7, 123, 250):
            assert np.count_nonzero(D[adapted.rows[i]]) == 1


def test_no_heavy_rows_is_the_plain_sketch():
    A = np.random.default_rng(0).standard_normal((400, 25))  # every row ~ ||A||^2 / 400 << ||A||^2 / 20
    S = fastlr.CountSketch(20, 400, seed=3)
    H = HeavyRowSketch(S)
    assert H.adapted(A) is S
    np.testing.assert_array_equal(H @ A, S @ A)
    np.testing.assert_array_equal(fastlr.scw(A, H, 5).U, fastlr.scw(A, S, 5).U)
    assert HeavyRowSketch(S).adapted(np.zeros((400, 25))) is S


def test_deterministic():
    A = _with_heavy_rows()
    one = HeavyRowSketch(fastlr.CountSketch(10, 300, seed=2), seed=5)
    two = HeavyRowSketch(fastlr.CountSketch(10, 300, seed=2), seed=5)
    np.testing.assert_array_equal(one @ A, two @ A)
    np.testing.assert_array_equal(one @ A, one @ A)
    np.testing.assert_array_equal(one.adapted(A).rows, two.adapted(A).rows)
    other = HeavyRowSketch(fastlr.CountSketch(10, 300, seed=2), seed=6)
    assert not np.array_equal(other.adapted(A).rows, one.adapted(A).rows)


def test_sparse_and_dense_give_the_same_sketch():
    rng = np.random.default_rng(1)
    A = messy_csr(300, 20, 0.1, rng)  # duplicates, unsorted indices, empty rows
    A = sp.csr_array(A)
    i = int(np.argmax(np.diff(A.indptr)))
    A.data[A.indptr[i]:A.indptr[i + 1]] *= 40.0  # a heavy row (duplicates included)
    dense = A.toarray()
    H = HeavyRowSketch(fastlr.CountSketch(10, 300, seed=0))
    assert len(H.heavy((dense ** 2).sum(axis=1))) >= 1
    expected = H @ dense
    np.testing.assert_array_equal(H.adapted(A).rows, H.adapted(dense).rows)
    for form in (A, sp.csc_array(A), sp.csr_matrix(A), np.asfortranarray(dense)):
        assert_close(H @ form, expected, np.float64)
    assert_close(H @ dense.astype(np.float32), expected, np.float32)


def test_blocked_input_gives_the_same_sketch(tmp_path):
    A = _with_heavy_rows()
    H = HeavyRowSketch(fastlr.CountSketch(10, 300, seed=0))
    path = tmp_path / "a.npy"
    np.save(path, A)
    mm = np.load(path, mmap_mode="r")
    a = fastlr.scw(mm, H, 3, block_rows=64)
    b = fastlr.scw(A, H, 3)
    assert_close(a.s, b.s, np.float64)


def test_heavy_rows_are_kept_exactly():
    # rank-3 part on 3 heavy rows: S A holds them, so SCW at k = 3 is optimal up to the noise
    A = _with_heavy_rows()
    k = 3
    best = np.linalg.svd(A, compute_uv=False)[k:]
    best = np.sqrt((best ** 2).sum())
    for seed in range(4):
        S = fastlr.CountSketch(10, 300, seed=seed)
        err_heavy = fastlr.scw(A, HeavyRowSketch(S), k).error(A)
        assert err_heavy <= best * 1.01


def test_stacked_sketch_counts_each_heavy_row_once():
    A = _with_heavy_rows(heavy=(7, 123, 250, 251, 252))
    S = fastlr.stack([fastlr.CountSketch(6, 300, seed=0), fastlr.CountSketch(6, 300, seed=1)])
    adapted = HeavyRowSketch(S).adapted(A)
    assert adapted.shape == (12, 300)
    D = adapted.to_dense()
    heavy = HeavyRowSketch(S).heavy((A ** 2).sum(axis=1))
    assert len(heavy) >= 3
    for i in heavy:
        assert np.count_nonzero(D[:, i]) == 1
        assert np.count_nonzero(D[np.flatnonzero(D[:, i])[0]]) == 1
    for leaf in adapted.parts():
        assert np.all((leaf.to_dense() != 0).sum(axis=0) <= 1)


def test_learned_mixed_sketch_as_base():
    train = fastlr.datasets.text(6, n_terms=300, n_docs=20, seed=1)
    S = fastlr.learn_sketch(train, 10, 5, steps=5, seed=0, progress=False, mixed="joint", holdout=0, heavy_rows=False)
    H = HeavyRowSketch(S)
    assert fastlr.sketch_error(H, train[:2], 5) >= 0
    assert fastlr.scw(train[0], H, 5).U.shape == (300, 5)


@pytest.mark.parametrize("kwargs, name", [({"threshold": 0}, "threshold"), ({"threshold": float("nan")}, "threshold"),
                                          ({"threshold": "1"}, "threshold"), ({"max_rows": 10}, "max_rows"),
                                          ({"max_rows": -1}, "max_rows"), ({"max_rows": 2.5}, "max_rows"),
                                          ({"seed": -1}, "seed")])
def test_bad_arguments_name_themselves(kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        HeavyRowSketch(fastlr.CountSketch(10, 300), **kwargs)


def test_bad_base_and_shapes():
    with pytest.raises(TypeError, match="base"):
        HeavyRowSketch(fastlr.GaussianSketch(10, 300))
    with pytest.raises(TypeError, match="base"):
        HeavyRowSketch(np.zeros((10, 300)))
    H = HeavyRowSketch(fastlr.CountSketch(10, 300))
    with pytest.raises(ValueError, match="rows"):
        H @ np.zeros((299, 4))
    with pytest.raises(ValueError, match="energy"):
        H.adapted_to(np.zeros(5))
    with pytest.raises(TypeError, match="adapted"):
        H.to_dense()


def test_dask_input_gives_the_same_sketch():
    da = pytest.importorskip("dask.array")
    A = _with_heavy_rows()
    H = HeavyRowSketch(fastlr.CountSketch(10, 300, seed=0))
    assert_close(np.asarray(H @ da.from_array(A, chunks=(70, 20))), H @ A, np.float64)
    assert_close(fastlr.scw(da.from_array(A, chunks=(70, 20)), H, 3).s, fastlr.scw(A, H, 3).s, np.float64)


def test_save_and_load_keep_the_base_and_the_rule(tmp_path):
    """S.save / load_sketch round trip of a HeavyRowSketch of a CountSketch and of a mixed LearnedSketch: the same
    sketch of every matrix; a plain stack cannot be saved; a file whose rule its base cannot hold is refused."""
    A = _with_heavy_rows()
    base = fastlr.CountSketch(12, A.shape[0], seed=4)
    train = [_with_heavy_rows(seed=s) for s in range(4)]
    learned = fastlr.learn_sketch(train, 12, 4, steps=5, mixed="joint", progress=False, heavy_rows=False)
    for S in (HeavyRowSketch(base, threshold=1.2, max_rows=3, seed=9), HeavyRowSketch(learned)):
        path = tmp_path / "h.npz"
        S.save(path)
        back = fastlr.load_sketch(path)
        assert isinstance(back, HeavyRowSketch) and type(back.base) is type(S.base)
        assert (back.threshold, back.max_rows, back.seed) == (S.threshold, S.max_rows, S.seed)
        assert np.array_equal(back @ A, S @ A)
    assert fastlr.load_sketch(tmp_path / "h.npz").k == 4  # the CLI's eval reads the training rank
    assert HeavyRowSketch(base).k is None
    stacked = HeavyRowSketch(fastlr.stack([base, fastlr.CountSketch(4, A.shape[0], seed=5)]))
    with pytest.raises(TypeError, match="S: only"):
        stacked.save(tmp_path / "s.npz")
    HeavyRowSketch(base, max_rows=11).save(tmp_path / "bad.npz")
    z = dict(np.load(tmp_path / "bad.npz"))
    z["heavy_max_rows"] = np.array(12, dtype=np.int64)  # a 12-row sketch keeps at least one hashed bucket
    np.savez(tmp_path / "bad.npz", **z)
    with pytest.raises(ValueError, match="heavy-row rule"):
        fastlr.load_sketch(tmp_path / "bad.npz")


def test_each_matrix_gets_its_own_sketch_through_the_kept_rows():
    """adapted_to keeps the leaves' rows for the last few numbers of reserved buckets: matrices with the same
    number of heavy rows (other rows), with more numbers than are kept, in any order, and a caller writing
    into an adapted sketch's rows, each still get the reference's sketch."""
    S = fastlr.CountSketch(16, 300, seed=3)
    H = HeavyRowSketch(S)
    heavies = [(7, 123, 250), (3, 40, 200), (9,), (1, 2), (10, 20, 30, 40), (50, 60, 70, 80, 90),
               (11, 12, 13, 14, 15, 16), (3, 40, 200), (9,)]
    matrices = [_with_heavy_rows(heavy=heavy, seed=t) for t, heavy in enumerate(heavies)]
    for A in matrices + matrices[::-1]:
        D, heavy = _reference(S, A)
        adapted = H.adapted(A)
        np.testing.assert_array_equal(adapted.to_dense(), D)
        assert_close(H @ A, D @ A, np.float64)
        adapted.rows[:] = 0  # the caller's to change: not the kept rows
        adapted.values[:] = 5.0
    assert np.array_equal(S.rows, fastlr.CountSketch(16, 300, seed=3).rows)
    assert np.array_equal(S.values, fastlr.CountSketch(16, 300, seed=3).values)


def test_row_norms_of_every_form_match_numpy(backend):
    """The squared row norms HeavyRowSketch reads: dense C / F float32 / float64, CSR / CSC (canonical and with
    duplicates), empty rows, against NumPy, through the operand of each backend."""
    rng = np.random.default_rng(4)
    messy = messy_csr(257, 19, 0.15, rng)
    dense = messy.toarray()
    expected = (dense ** 2).sum(axis=1)
    forms = [dense, np.asfortranarray(dense), dense.astype(np.float32), np.asfortranarray(dense.astype(np.float32)),
             messy, messy.tocsc(), sp.csr_matrix(dense), sp.csc_matrix(dense), sp.csr_matrix(dense.astype(np.float32))]
    for A in forms:
        got = operand(A, backend=backend).row_squared_norms()
        scale = expected if A.dtype == np.float64 else (np.asarray(dense, np.float32).astype(np.float64) ** 2).sum(1)
        np.testing.assert_allclose(got, scale, rtol=1e-13, atol=0)
