"""scw's guard: a sketch with a ``reference`` (learned and data-driven sketches) is never worse than it on any matrix.

``fastlr.scw(A, S, k)`` also runs SCW with ``S.reference`` and returns the result with the smaller error, judged
from the top-k energies of ``A V`` and ``A W`` (no pass over A beyond the two products). Checked here against
scw with each sketch alone: the choice, the factors, the worst case over many seeds, every backend and storage,
and that the builders attach ``CountSketch(m, n, seed)`` and files keep it.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import fastlr
from fastlr import datadriven as dd
from fastlr import datasets
from fastlr._matrix import Operand
from helpers import layouts


def one_bucket(m, n):
    """A bad sketch: every row of A in bucket 0 (S A has rank 1)."""
    return fastlr.CountSketch.from_arrays(np.zeros(n, dtype=np.int64), np.ones(n), m)


def guarded(S, seed):
    G = fastlr.CountSketch.from_arrays(S.rows, S.values, S.m)
    G.reference = fastlr.CountSketch(S.m, S.n, seed=seed)
    return G


def decaying(n, d, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, d)) / np.arange(1, d + 1)).astype(dtype)


def err(A, r):
    return r.error(A)


def same_result(a, b, dtype):
    tol = 2e-5 if np.dtype(dtype) == np.float32 else 1e-10
    np.testing.assert_allclose(a.s, b.s, rtol=tol, atol=tol * max(1.0, float(b.s[0])))
    np.testing.assert_allclose(np.asarray(a.U) * a.s @ a.Vt, np.asarray(b.U) * b.s @ b.Vt, rtol=tol,
                               atol=tol * max(1.0, float(b.s[0])))


# ------------------------------------------------------------------ the choice


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_a_worse_sketch_gives_the_references_result(backend, dtype, sparse):
    A = decaying(300, 40, 1, dtype)
    if sparse:
        A = sp.csr_matrix(np.where(np.random.default_rng(2).random(A.shape) < 0.3, A, 0).astype(dtype))
    S = one_bucket(10, 300)
    S.reference = fastlr.CountSketch(10, 300, seed=5)
    got = fastlr.scw(A, S, 5, backend=backend)
    reference = fastlr.scw(A, S.reference, 5, backend=backend)
    alone = fastlr.scw(A, S, 5, backend=backend, guard=False)
    assert err(A, reference) < 0.9 * err(A, alone)  # the case is a real one
    same_result(got, reference, dtype)
    assert got.U.dtype == got.s.dtype == got.Vt.dtype == dtype


def test_a_better_sketch_gives_its_own_result(backend, dtype, layout):
    """S spans A's top singular vectors (a dense data-driven sketch): its result, not the reference's."""
    rng = np.random.default_rng(3)
    A0 = ((rng.standard_normal((200, 6)) * [10, 9, 8, 7, 3, 3]) @ rng.standard_normal((6, 30))).astype(dtype)
    U = np.linalg.svd(A0.astype(np.float64), full_matrices=False)[0]
    S = fastlr.DenseSketch(U[:, :4].T)  # SCW with S is optimal; m = k leaves a random sketch well above it
    S.reference = fastlr.CountSketch(4, 200, seed=1)
    A = layouts(A0)[layout]
    got = fastlr.scw(A, S, 4, backend=backend)
    same_result(got, fastlr.scw(A, S, 4, backend=backend, guard=False), dtype)
    assert err(A0, got) < 0.9 * err(A0, fastlr.scw(A, S.reference, 4, backend=backend))


def test_guard_false_and_no_reference_run_the_sketch_alone():
    A = decaying(120, 20, 4)
    S = fastlr.CountSketch.from_arrays(np.arange(120) % 6, np.linspace(0.5, 2, 120), 6)
    plain = fastlr.scw(A, S, 3)
    assert S.reference is None
    np.testing.assert_array_equal(fastlr.scw(A, S, 3, guard=False).s, plain.s)
    S.reference = fastlr.CountSketch(6, 120, seed=0)
    np.testing.assert_array_equal(fastlr.scw(A, S, 3, guard=False).s, plain.s)
    np.testing.assert_array_equal(fastlr.scw(A, S, 3, guard=False).U, plain.U)


def test_worst_case_over_seeds_is_never_above_either_sketch():
    """Per matrix, 120 seeds of random, tiny, rank-deficient and exactly low-rank inputs with random-valued
    sketches: the guarded error is at most the smaller of the two errors (to rounding)."""
    worst = 0.0
    for seed in range(120):
        rng = np.random.default_rng(seed)
        kind = seed % 4
        if kind == 0:
            A = rng.standard_normal((40, 12))
        elif kind == 1:
            A = rng.standard_normal((8, 5))  # tiny
        elif kind == 2:
            A = rng.standard_normal((30, 3)) @ rng.standard_normal((3, 10))  # rank 3 < k + 1
        else:
            A = (rng.standard_normal((50, 4)) * [10, 3, 1, 0.1]) @ rng.standard_normal((4, 9))  # exactly rank 4
        n, d = A.shape
        m, k = min(6, n), min(3, d)
        S = fastlr.CountSketch.from_arrays(rng.integers(0, m, n), rng.uniform(-2, 2, n), m)
        S.reference = fastlr.CountSketch(m, n, seed=seed)
        g, a, r = (err(A, fastlr.scw(A, T, k, guard=use)) for T, use in ((S, True), (S, False), (S.reference, True)))
        floor = 1e-12 * np.linalg.norm(A)
        worst = max(worst, (g - floor) / (min(a, r) + floor))
        assert g <= min(a, r) * (1 + 1e-9) + floor, (seed, g, a, r)
    assert worst <= 1.0


def test_power_steps_dask_and_batches_take_the_guard():
    import dask.array as da

    A = decaying(300, 40, 6)
    S = one_bucket(10, 300)
    S.reference = fastlr.CountSketch(10, 300, seed=2)
    for n_iter in (1, 2):
        same_result(fastlr.scw(A, S, 5, n_iter=n_iter), fastlr.scw(A, S.reference, 5, n_iter=n_iter), np.float64)
    got = fastlr.scw(da.from_array(A, chunks=(100, 40)), S, 5)
    same_result(fastlr.LowRank(np.asarray(got.U), got.s, got.Vt), fastlr.scw(A, S.reference, 5), np.float64)
    U, s, Vt = fastlr.scw(np.stack([A, 2 * A]), S, 5)
    np.testing.assert_allclose(s[1], 2 * fastlr.scw(A, S.reference, 5).s, rtol=1e-10)


def test_row_blocks_take_the_guard(tmp_path):
    """A memory-mapped A read in row blocks (and an ndarray given block_rows): the reference's result."""
    A = decaying(3000, 40, 9)
    np.save(tmp_path / "a.npy", A)
    S = one_bucket(10, 3000)
    S.reference = fastlr.CountSketch(10, 3000, seed=3)
    want = fastlr.scw(A, S.reference, 5)
    same_result(fastlr.scw(np.load(tmp_path / "a.npy", mmap_mode="r"), S, 5, block_rows=500), want, np.float64)
    same_result(fastlr.scw(A, S, 5, block_rows=700), want, np.float64)


@pytest.mark.parametrize("dtype, scale", [(np.float64, 1e-200), (np.float64, 1e200), (np.float32, 1e-30),
                                          (np.float32, 1e30)])
def test_entries_near_the_limits_of_the_dtype_take_the_guard(dtype, scale):
    """Top-k energies (squares of sigma) of such A over- or underflow unscaled, and float32's were compared in
    float32 (NumPy 2's scalar rules): the choice fell to S, or warned of an overflow."""
    A = decaying(300, 40, 1) * scale
    A = A.astype(dtype)
    S = one_bucket(10, 300)
    S.reference = fastlr.CountSketch(10, 300, seed=5)
    got, alone = err(A, fastlr.scw(A, S, 5)), err(A, fastlr.scw(A, S, 5, guard=False))
    reference = err(A, fastlr.scw(A, S.reference, 5))
    assert reference < 0.9 * alone  # the case is a real one
    assert got <= reference * (1 + 1e-6)


def nearly_low_rank(seed, dtype, noise):
    """Rank 5 plus noise far below sigma_5, and a random-valued sketch with a random reference: both errors lie
    below sqrt(eps) ||A||, where the top-k energies agree to rounding however far apart the errors are."""
    rng = np.random.default_rng(seed)
    A = (rng.standard_normal((200, 5)) @ rng.standard_normal((5, 30)) + noise * rng.standard_normal((200, 30)))
    S = fastlr.CountSketch.from_arrays(rng.integers(0, 8, 200), rng.uniform(-2, 2, 200), 8)
    S.reference = fastlr.CountSketch(8, 200, seed=seed)
    return A.astype(dtype), S


@pytest.mark.parametrize("dtype, noise", [(np.float32, 1e-4), (np.float64, 1e-9)])
def test_nearly_low_rank_a_is_judged_by_its_explicit_errors(dtype, noise):
    """The energies tie within rounding while the errors differed up to 1.67x (the guard kept S's): the errors
    are then formed explicitly, so the guarded error is the smaller one on every seed."""
    for seed in range(12):
        A, S = nearly_low_rank(seed, dtype, noise)
        best = min(err(A, fastlr.scw(A, S, 5, guard=False)), err(A, fastlr.scw(A, S.reference, 5)))
        assert err(A, fastlr.scw(A, S, 5)) <= best * (1 + 1e-6), seed


def test_ties_on_row_blocks_and_dask_are_judged_by_explicit_errors(tmp_path):
    """The explicit errors of a tie read a memory-mapped A a row block at a time (Operand.residual_norm) and a
    dask array chunk by chunk."""
    import dask.array as da

    A, S = nearly_low_rank(8, np.float64, 1e-9)
    best = min(err(A, fastlr.scw(A, S, 5, guard=False)), err(A, fastlr.scw(A, S.reference, 5)))
    assert err(A, fastlr.scw(A, S, 5, guard=False)) > 1.5 * best  # S alone is the worse: the case is a real one
    np.save(tmp_path / "a.npy", A)
    for X, kw in ((np.load(tmp_path / "a.npy", mmap_mode="r"), {"block_rows": 64}),
                  (da.from_array(A, chunks=(50, 30)), {})):
        got = fastlr.scw(X, S, 5, **kw)
        assert err(A, fastlr.LowRank(np.asarray(got.U), got.s, got.Vt)) <= best * (1 + 1e-6)


def test_a_sketch_equal_to_its_reference_runs_once(monkeypatch):
    """A learned sketch that fell back to its random start (S A == R A): S's result at once, no tie judged by
    explicit errors (which cost two more passes over A: 4.3x S alone at 20000 x 200)."""
    A = decaying(300, 40, 1)
    R = fastlr.CountSketch(10, 300, seed=5)
    S = fastlr.LearnedSketch(R.rows, R.values, 10, k=5)
    S.reference = R
    want = fastlr.scw(A, S, 5, guard=False)

    def no_pass(self, approximation):
        raise AssertionError("an explicit error was formed")

    monkeypatch.setattr(Operand, "residual_norm", no_pass)
    got = fastlr.scw(A, S, 5)
    np.testing.assert_array_equal(got.s, want.s)
    np.testing.assert_array_equal(got.U, want.U)


def test_inputs_are_not_modified():
    A = decaying(100, 15, 7)
    A0 = A.copy()
    S = one_bucket(5, 100)
    R = fastlr.CountSketch(5, 100, seed=3)
    S.reference = R
    rows, values = R.rows.copy(), R.values.copy()
    fastlr.scw(A, S, 2)
    np.testing.assert_array_equal(A, A0)
    np.testing.assert_array_equal(R.rows, rows)
    np.testing.assert_array_equal(R.values, values)


def test_bad_guard_and_reference_are_refused():
    A = decaying(50, 10, 8)
    S = fastlr.CountSketch(5, 50, seed=0)
    with pytest.raises(TypeError, match="guard"):
        fastlr.scw(A, S, 2, guard="yes")
    with pytest.raises(TypeError, match="guard"):
        fastlr.sketch_error(S, [A], 2, guard=None)
    with pytest.raises(ValueError, match="reference: has shape"):
        S.reference = fastlr.CountSketch(6, 50, seed=1)
    with pytest.raises(TypeError, match="reference: expected a fastlr sketch"):
        S.reference = np.eye(5, 50)
    S.reference = fastlr.CountSketch(5, 50, seed=1)
    S.reference = None  # removes it
    assert S.reference is None


# ------------------------------------------------------------------ the builders attach it


def _family():
    data = datasets.lowrank(14, shape=(60, 12), rank=3, noise=0.05, seed=3)
    return data[:10], data[10:]


BUILDERS = {
    "learn_sketch": lambda t: fastlr.learn_sketch(t, 6, 2, steps=5, seed=4, progress=False),
    "learn_sketch joint": lambda t: fastlr.learn_sketch(t, 6, 2, steps=5, seed=4, mixed="joint", progress=False),
    "one_shot_sketch": lambda t: dd.one_shot_sketch(t[0], 6, k=2, values="paper", seed=4),
    "few_shot_sketch": lambda t: dd.few_shot_sketch(t[:3], 6, 2, values="paper", steps=3, seed=4),
    "inner_product_sketch": lambda t: dd.inner_product_sketch(t, 6, 2, seed=4),
    "subspace_sketch": lambda t: dd.subspace_sketch(t, 6, k=2, seed=4),
    "hybrid_sketch": lambda t: dd.hybrid_sketch(t[0], 6, 2, seed=4),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_builders_attach_their_random_countsketch(name):
    train, test = _family()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastlr.LearnedSketchWarning)
        S = BUILDERS[name](train)
    random = fastlr.CountSketch(6, 60, seed=4)
    if type(S) is fastlr.CountSketch and S.seed == 4:  # the builder returned the random sketch itself
        assert S.reference is None
        return
    assert isinstance(S.reference, fastlr.CountSketch) and S.reference.seed == 4
    np.testing.assert_array_equal(S.reference.rows, random.rows)
    np.testing.assert_array_equal(S.reference.values, random.values)
    for A in test:
        g = err(A, fastlr.scw(A, S, 2))
        assert g <= min(err(A, fastlr.scw(A, S, 2, guard=False)), err(A, fastlr.scw(A, random, 2))) * (1 + 1e-9)


def test_refiners_keep_the_reference_and_leave_the_given_sketch_alone():
    train, _ = _family()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastlr.LearnedSketchWarning)
        S = dd.inner_product_sketch(train, 6, 2, seed=4, heavy_rows=False)
    assert S.reference is not None
    base = fastlr.CountSketch.from_arrays(S.rows, S.values, S.m)  # the same sketch without a reference
    for refine in (lambda T: dd.refine_values(train, T, 2, steps=2),
                   lambda T: dd.greedy_positions(train, T, 2, max_columns=3)):
        assert refine(S).reference is S.reference
        out = refine(base)
        assert out.reference is None and base.reference is None


def test_heavy_row_wrapping_keeps_the_reference():
    """HeavyRowSketch(S) of a learned sketch (or a new rule for learn_sketch's HeavyRowSketch) dropped S's
    reference: scw silently lost its guard."""
    train, test = _family()
    S = fastlr.learn_sketch(train, 6, 2, steps=5, seed=4, progress=False)
    H = fastlr.HeavyRowSketch(S)
    assert H.reference is S.reference is not None
    assert fastlr.HeavyRowSketch(H, threshold=1.0).reference is S.reference
    assert fastlr.HeavyRowSketch(fastlr.CountSketch(6, 60, seed=4)).reference is None
    bad = fastlr.HeavyRowSketch(guarded(one_bucket(6, 60), 4))
    A = test[0]
    assert err(A, fastlr.scw(A, bad, 2)) <= err(A, fastlr.scw(A, bad.reference, 2)) * (1 + 1e-9)


def test_save_and_load_keep_the_reference(tmp_path):
    train, test = _family()
    S = fastlr.learn_sketch(train, 6, 2, steps=5, seed=4, mixed="joint", progress=False)
    S.save(tmp_path / "s.npz")
    T = fastlr.load_sketch(tmp_path / "s.npz")
    assert T.reference.seed == 4 and T.reference.shape == S.shape
    np.testing.assert_array_equal(T.reference.to_dense(), S.reference.to_dense())
    for A in test:
        np.testing.assert_array_equal(fastlr.scw(A, T, 2).s, fastlr.scw(A, S, 2).s)
    H = fastlr.HeavyRowSketch(fastlr.learn_sketch(train, 6, 2, steps=5, seed=4, progress=False))
    H.reference = fastlr.CountSketch(6, 60, seed=9)
    H.save(tmp_path / "h.npz")
    assert fastlr.load_sketch(tmp_path / "h.npz").reference.seed == 9
    plain = fastlr.CountSketch(6, 60, seed=2)
    plain.save(tmp_path / "c.npz")
    assert fastlr.load_sketch(tmp_path / "c.npz").reference is None
    plain.reference = fastlr.GaussianSketch(6, 60, seed=1)
    with pytest.raises(TypeError, match="reference"):
        plain.save(tmp_path / "g.npz")


@pytest.mark.parametrize("entry", ["reference_rows", "reference_values", "reference_m", "reference_seed"])
def test_a_file_missing_part_of_its_reference_is_refused(tmp_path, entry):
    """A file with three of the reference's four entries loaded without a reference (reference_rows missing):
    the guard was silently lost."""
    S = guarded(fastlr.CountSketch.from_arrays(np.arange(60) % 6, np.linspace(0.5, 2, 60), 6), 4)
    S.save(tmp_path / "s.npz")
    with np.load(tmp_path / "s.npz") as z:
        arrays = {name: z[name] for name in z.files if name != entry}
    np.savez(tmp_path / "t.npz", **arrays)
    with pytest.raises(ValueError, match=f"no '{entry}' entry"):
        fastlr.load_sketch(tmp_path / "t.npz")
