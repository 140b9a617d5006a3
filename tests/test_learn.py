"""learn_sketch, LearnedSketch, sketch_error, save/load."""

import io
import threading
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from threadpoolctl import threadpool_info

import fastlr
import fastlr._training as training_module
from fastlr import datasets


def scw_error_reference(S_dense, A, k):
    """||A - SCW(S, A)||_F with NumPy only: project on the row space of SA, truncate to rank k."""
    A = A.toarray() if sp.issparse(A) else np.asarray(A, dtype=np.float64)
    _, s, Vt = np.linalg.svd(S_dense @ A, full_matrices=False)
    V = Vt[: np.count_nonzero(s > max(S_dense.shape[0], A.shape[1]) * 1e-15 * s[0])].T
    Ub, sb, Zt = np.linalg.svd(A @ V, full_matrices=False)
    approx = (Ub[:, :k] * sb[:k]) @ Zt[:k] @ V.T
    return np.linalg.norm(A - approx)


def err_reference(S_dense, matrices, k):
    scw, best = [], []
    for A in matrices:
        dense = A.toarray() if sp.issparse(A) else np.asarray(A, dtype=np.float64)
        s = np.linalg.svd(dense, compute_uv=False)
        scw.append(scw_error_reference(S_dense, dense, k) / s[0])
        best.append(np.sqrt(np.sum(s[k:] ** 2)) / s[0])
    return np.mean(scw) - np.mean(best)


@pytest.fixture(scope="module")
def lowrank_data():
    return datasets.lowrank(16, shape=(200, 30), rank=8, seed=3)


# --------------------------------------------------------------------------- sketch_error


def test_sketch_error_matches_numpy(backend, lowrank_data):
    k = 4
    for S in (fastlr.CountSketch(10, 200, seed=1), fastlr.GaussianSketch(10, 200, seed=1)):
        got = fastlr.sketch_error(S, lowrank_data[:5], k, backend=backend)
        assert got == pytest.approx(err_reference(S.to_dense(), lowrank_data[:5], k), rel=1e-9, abs=1e-12)
        assert got > 0


def test_sketch_error_sparse_and_float32():
    text = datasets.text(3, n_terms=300, n_docs=30, seed=1)
    S = fastlr.CountSketch(12, 300, seed=2)
    expected = err_reference(S.to_dense(), text, 5)
    assert fastlr.sketch_error(S, text, 5) == pytest.approx(expected, rel=1e-9)
    as32 = [A.astype(np.float32) for A in text]
    assert fastlr.sketch_error(S, as32, 5) == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("scale", [1e-300, 1e-200, 1e200, 1e300])
def test_sketch_error_does_not_depend_on_the_scale(lowrank_data, scale):
    """Each matrix is scaled to sigma_1 = 1: Err is the same at any scale. Near 1e-200 the optimal error's squares
    underflowed to 0 (Err 11x too large on a 100 x 20 matrix); near 1e200 ||A||_F^2 overflowed (a RuntimeWarning)."""
    S = fastlr.CountSketch(10, 200, seed=1)
    S.reference = fastlr.CountSketch(10, 200, seed=2)
    for guard in (True, False):
        want = fastlr.sketch_error(S, lowrank_data[:3], 4, guard=guard)
        got = fastlr.sketch_error(S, [A * scale for A in lowrank_data[:3]], 4, guard=guard)
        assert got == pytest.approx(want, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("scale, dtype, sparse", [(2.0**700, np.float64, False), (2.0**-700, np.float64, False),
                                                  (2.0**40, np.float32, False), (2.0**-40, np.float32, False),
                                                  (2.0**700, np.float64, True)])
def test_learn_sketch_does_not_depend_on_the_scale(lowrank_data, scale, dtype, sparse):
    """Training counts each matrix at sigma_1 = 1, so matrices scaled by a power of two train the same values. Near
    1e+-200 (float64) and 1e+-19 (float32) their squares over- or underflowed: learn_sketch raised OverflowError."""
    as_input = sp.csr_matrix if sparse else (lambda A: A)
    data = [A.astype(dtype) for A in lowrank_data[:4]]
    want = fastlr.learn_sketch([as_input(A) for A in data], 10, 3, steps=20, progress=False)
    scaled = [as_input((A.astype(np.float64) * scale).astype(dtype)) for A in data]
    copies = [A.copy() for A in scaled]
    got = fastlr.learn_sketch(scaled, 10, 3, steps=20, progress=False)
    np.testing.assert_array_equal(got.values, want.values)
    for A, B in zip(scaled, copies):  # the matrices given are left as they were
        assert (A != B).nnz == 0 if sparse else np.array_equal(A, B)


def test_sketch_error_bad_input(lowrank_data):
    S = fastlr.CountSketch(10, 200)
    with pytest.raises(ValueError, match="matrices"):
        fastlr.sketch_error(fastlr.CountSketch(10, 199), lowrank_data[:2], 3)
    with pytest.raises(ValueError, match=r"matrices\[1\]"):
        fastlr.sketch_error(S, [lowrank_data[0], lowrank_data[1][:, :20]], 3)
    with pytest.raises(ValueError, match="k"):
        fastlr.sketch_error(S, lowrank_data[:2], 0)
    with pytest.raises(TypeError, match="S"):
        fastlr.sketch_error("sketch", lowrank_data[:2], 3)
    with pytest.raises(ValueError, match="matrices"):
        fastlr.sketch_error(S, [], 3)


# --------------------------------------------------------------------------- training


FAMILIES = {
    "video": lambda: datasets.video(16, height=24, width=64, seed=1),
    "hyperspectral": lambda: datasets.hyperspectral(24, height=96, width=32, bands=4, seed=1),
    "text": lambda: datasets.text(14, n_terms=400, n_docs=40, seed=1),
    "lowrank": lambda: datasets.lowrank(14, shape=(200, 30), seed=1),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_training_lowers_validation_error(family):
    data = FAMILIES[family]()
    cut = 3 * len(data) // 4
    # heavy_rows=False: the sketch the history and validation record (text would be wrapped)
    S = fastlr.learn_sketch(data[:cut], 10, 5, steps=120, val=data[cut:], progress=False, heavy_rows=False)
    random_err = fastlr.sketch_error(fastlr.CountSketch(10, data[0].shape[0], seed=0), data[cut:], 5)
    assert S.history["val_err"][0] == pytest.approx(random_err, rel=1e-9)  # step 0 is the random start
    final = fastlr.sketch_error(S, data[cut:], 5, guard=False)
    best = S.validation.best_step  # the best checkpoint is returned
    assert S.history["val_err"][best] == pytest.approx(final, rel=1e-9) == S.validation.best_err
    assert np.nanmin(S.history["val_err"]) == S.validation.best_err
    assert final < 0.75 * random_err and not S.fallback


@pytest.mark.parametrize("optimizer", ["sgd", "momentum"])
def test_other_optimizers_also_learn(optimizer, lowrank_data):
    S = fastlr.learn_sketch(lowrank_data[:12], 10, 4, steps=60, optimizer=optimizer, val=lowrank_data[12:],
                            progress=False)
    assert S.history["val_err"][-1] < 0.8 * S.history["val_err"][0]


def test_power_gradient_training(lowrank_data):
    S = fastlr.learn_sketch(lowrank_data[:12], 10, 4, steps=60, gradient="power", power_iters=8,
                            val=lowrank_data[12:], progress=False)
    assert S.history["val_err"][-1] < 0.8 * S.history["val_err"][0]


def test_history_records(lowrank_data):
    records = []
    S = fastlr.learn_sketch(lowrank_data[:8], 6, 3, steps=10, eval_every=4, val=lowrank_data[8:10],
                            progress=False, callback=records.append)
    h = S.history
    assert h.dtype.names == ("step", "train_loss", "val_err", "seconds")
    assert list(h["step"]) == list(range(11))
    assert np.isnan(h["train_loss"][0]) and np.isfinite(h["train_loss"][1:]).all()
    assert np.flatnonzero(np.isfinite(h["val_err"])).tolist() == [0, 4, 8, 10]
    assert np.all(np.diff(h["seconds"]) >= 0) and h["seconds"][-1] > 0
    assert [r["step"] for r in records] == list(range(1, 11))
    assert len(S.history) == 11 and S.k == 3


def test_callback_can_stop(lowrank_data):
    S = fastlr.learn_sketch(lowrank_data[:4], 6, 3, steps=10**12, eval_every=5, val=lowrank_data[4:6],
                            progress=False, callback=lambda r: r["step"] == 7)
    assert S.history["step"][-1] == 7
    assert np.flatnonzero(np.isfinite(S.history["val_err"])).tolist() == [0, 5, 7]  # the last step is evaluated


def test_divergence_is_reported(lowrank_data):
    # the loss is invariant to the values' scale, so only overflow can break training
    as32 = [A.astype(np.float32) for A in lowrank_data[:4]]
    with pytest.raises(FloatingPointError, match="smaller lr"):
        fastlr.learn_sketch(as32, 6, 3, steps=5, optimizer="sgd", lr=1e60, progress=False)


def test_train_loss_is_mean_scaled_scw_error(lowrank_data):
    # batch_size = the whole set: the first step's loss is the mean over all matrices of
    # ||A - SCW(S0, A)|| / sigma_1(A) at the random start S0.
    train = lowrank_data[:4]
    S = fastlr.learn_sketch(train, 6, 3, steps=1, batch_size=4, holdout=0, progress=False)
    assert S.validation is None and not S.fallback  # nothing held out: nothing validated
    S0 = fastlr.CountSketch(6, 200, seed=0).to_dense()
    expected = np.mean([scw_error_reference(S0, A, 3) / np.linalg.norm(A, 2) for A in train])
    assert S.history["train_loss"][1] == pytest.approx(expected, rel=1e-9)


def test_deterministic_and_scale_free(lowrank_data):
    train = lowrank_data[:6]
    a = fastlr.learn_sketch(train, 8, 3, steps=15, batch_size=2, progress=False)
    b = fastlr.learn_sketch(train, 8, 3, steps=15, batch_size=2, progress=False)
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(a.values, fastlr.CountSketch(8, 200).values)
    scaled = fastlr.learn_sketch([1e6 * A for A in train], 8, 3, steps=15, batch_size=2, progress=False)
    np.testing.assert_allclose(scaled.values, a.values, rtol=1e-6)
    np.testing.assert_array_equal(a.rows, fastlr.CountSketch(8, 200, seed=0).rows)


def test_batch_runs_in_parallel_with_one_thread_each(monkeypatch, lowrank_data):
    seen = []
    original = training_module.loss_and_grad

    def spy(*args, **kwargs):
        blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
        seen.append((threading.get_ident(), fastlr.get_num_threads(), blas))
        return original(*args, **kwargs)

    monkeypatch.setattr(training_module, "loss_and_grad", spy)
    previous = fastlr.get_num_threads()
    fastlr.set_num_threads(2)
    try:
        parallel = fastlr.learn_sketch(lowrank_data[:8], 8, 3, steps=6, batch_size=4, holdout=0, progress=False)
    finally:
        fastlr.set_num_threads(previous)
    assert len(seen) == 24
    assert len({ident for ident, _, _ in seen}) == 2 and threading.get_ident() not in {s[0] for s in seen}
    assert all(threads == 1 and all(b == 1 for b in blas) for _, threads, blas in seen)
    monkeypatch.setattr(training_module, "loss_and_grad", original)
    with fastlr.thread_limit(1):
        serial = fastlr.learn_sketch(lowrank_data[:8], 8, 3, steps=6, batch_size=4, holdout=0, progress=False)
    np.testing.assert_allclose(parallel.values, serial.values, rtol=1e-9)


def test_float32_and_sparse_training():
    text = datasets.text(8, n_terms=300, n_docs=30, seed=2, dtype=np.float32)
    S = fastlr.learn_sketch(text[:6], 8, 4, steps=40, val=text[6:], progress=False)
    assert S.history["val_err"][-1] < S.history["val_err"][0]
    frames = datasets.video(8, height=16, width=40, dtype=np.float32)
    S32 = fastlr.learn_sketch(frames[:6], 8, 4, steps=20, progress=False)
    S64 = fastlr.learn_sketch([f.astype(np.float64) for f in frames[:6]], 8, 4, steps=20, progress=False)
    np.testing.assert_allclose(S32.values, S64.values, rtol=1e-3, atol=1e-3)


def test_exactly_recovered_matrices_train_without_nan():
    rng = np.random.default_rng(0)
    exact = [rng.standard_normal((60, 2)) @ rng.standard_normal((2, 12)) for _ in range(3)]  # rank 2 < k
    with pytest.warns(fastlr.LearnedSketchWarning, match="did not beat its random start"):  # it is optimal
        S = fastlr.learn_sketch(exact + [np.zeros((60, 12))], 6, 3, steps=8, batch_size=2, val=exact,
                                progress=False)
    assert S.fallback
    assert np.isfinite(S.values).all()
    assert np.nanmax(np.abs(S.history["val_err"])) < 1e-6
    np.testing.assert_array_equal(S.values, fastlr.CountSketch(6, 60).values)  # zero loss: nothing to learn


def test_inputs_are_not_modified(lowrank_data):
    train = [A.copy() for A in lowrank_data[:4]]
    with warnings.catch_warnings():  # 3 steps may not beat random (then it warns): not what is tested here
        warnings.simplefilter("ignore", fastlr.LearnedSketchWarning)
        fastlr.learn_sketch(train, 6, 3, steps=3, val=train[:2], mixed="joint", progress=False)
    for A, B in zip(train, lowrank_data[:4]):
        np.testing.assert_array_equal(A, B)


def test_lr_decay(lowrank_data):
    kw = dict(steps=6, optimizer="sgd", lr=1.0, progress=False)
    plain = fastlr.learn_sketch(lowrank_data[:4], 6, 3, **kw)
    frozen = fastlr.learn_sketch(lowrank_data[:4], 6, 3, lr_decay=(1e-12, 1), **kw)  # after step 1: no moves
    one_step = fastlr.learn_sketch(lowrank_data[:4], 6, 3, **{**kw, "steps": 1})
    np.testing.assert_allclose(frozen.values, one_step.values, rtol=0, atol=1e-9)
    assert not np.allclose(plain.values, one_step.values)
    same = fastlr.learn_sketch(lowrank_data[:4], 6, 3, lr_decay=lambda step: 1.0, **kw)
    np.testing.assert_array_equal(same.values, plain.values)


# --------------------------------------------------------------------------- mixed sketches


@pytest.mark.parametrize("mixed", ["joint", "separate"])
def test_mixed_sketch_structure(mixed, lowrank_data):
    S = fastlr.learn_sketch(lowrank_data[:8], 10, 4, steps=20, mixed=mixed, val=lowrank_data[8:], progress=False)
    assert S.shape == (10, 200) and S.m_learned == 5 and S.mixed == mixed
    fixed = fastlr.CountSketch(5, 200, seed=1)
    np.testing.assert_array_equal(S.fixed.values, fixed.values)
    A = lowrank_data[9]
    dense = S.to_dense()
    np.testing.assert_allclose(dense, np.vstack([S.learned_part().to_dense(), fixed.to_dense()]))
    np.testing.assert_allclose(S @ A, dense @ A, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(S.to_scipy().toarray(), dense)
    Y = np.random.default_rng(0).standard_normal((10, 3))
    np.testing.assert_allclose(S.T @ Y, dense.T @ Y, rtol=1e-12, atol=1e-12)
    err = fastlr.sketch_error(S, lowrank_data[8:], 4)  # SCW uses all m rows, the fixed ones too
    assert err == pytest.approx(err_reference(dense, lowrank_data[8:], 4), rel=1e-9)
    assert err == pytest.approx(S.history["val_err"][S.validation.best_step], rel=1e-9)


def test_mixed_keeps_the_random_half_guarantee(lowrank_data):
    # The mixed sketch's row space contains the random half's, so its SCW error is never
    # worse than the random half alone, matrix by matrix.
    S = fastlr.learn_sketch(lowrank_data[:8], 8, 4, steps=20, mixed="joint", progress=False)
    for A in lowrank_data[8:]:
        mixed_err = scw_error_reference(S.to_dense(), A, 4)
        assert mixed_err <= scw_error_reference(S.fixed.to_dense(), A, 4) * (1 + 1e-12)


def test_separate_trains_the_learned_half_alone(lowrank_data):
    separate = fastlr.learn_sketch(lowrank_data[:8], 8, 3, steps=15, mixed="separate", progress=False)
    alone = fastlr.learn_sketch(lowrank_data[:8], 4, 3, steps=15, progress=False)
    np.testing.assert_array_equal(separate.values, alone.values)
    joint = fastlr.learn_sketch(lowrank_data[:8], 8, 3, steps=15, mixed="joint", progress=False)
    assert not np.allclose(joint.values, alone.values)
    np.testing.assert_array_equal(joint.rows, alone.rows)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(m=0), "m"),
        (dict(k=0), "k"),
        (dict(k=11), "k"),
        (dict(steps=0), "steps"),
        (dict(batch_size=0), "batch_size"),
        (dict(optimizer="adagrad"), "optimizer"),
        (dict(gradient="autograd"), "gradient"),
        (dict(mixed="half"), "mixed"),
        (dict(mixed="joint", m=1, k=1), "m"),
        (dict(lr=-1.0), "lr"),
        (dict(lr=float("nan")), "lr"),
        (dict(lr_decay=(0.5,)), "lr_decay"),
        (dict(lr_decay=(0.5, 0)), "lr_decay"),
        (dict(power_iters=-1, gradient="power"), "power_iters"),
    ],
)
def test_bad_arguments(kwargs, match, lowrank_data):
    args = dict(m=10, k=4, steps=2, progress=False)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        fastlr.learn_sketch(lowrank_data[:3], **args)


def test_bad_training_data(lowrank_data):
    kw = dict(steps=1, progress=False)
    with pytest.raises(ValueError, match="train: is empty"):
        fastlr.learn_sketch([], 6, 3, **kw)
    with pytest.raises(ValueError, match=r"train\[2\]: has shape \(200, 29\)"):
        fastlr.learn_sketch([lowrank_data[0], lowrank_data[1], lowrank_data[2][:, :29]], 6, 3, **kw)
    bad = lowrank_data[1].copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match=r"train\[1\]: contains NaN"):
        fastlr.learn_sketch([lowrank_data[0], bad], 6, 3, **kw)
    with pytest.raises(ValueError, match=r"val\[0\]: has shape"):
        fastlr.learn_sketch(lowrank_data[:2], 6, 3, val=[lowrank_data[0][:100]], **kw)
    with pytest.raises(ValueError, match=r"val\[1\]: contains NaN"):
        fastlr.learn_sketch(lowrank_data[:2], 6, 3, val=[lowrank_data[0], bad], **kw)
    with pytest.raises(TypeError, match="train"):
        fastlr.learn_sketch(lowrank_data[0], 6, 3, **kw)
    with pytest.raises(TypeError, match=r"train\[0\]"):
        fastlr.learn_sketch(["not a matrix"], 6, 3, **kw)
    with pytest.raises(ValueError, match="k: must be <= min"):
        fastlr.learn_sketch([A[:, :3] for A in lowrank_data[:2]], 6, 4, **kw)
    with pytest.raises(TypeError, match="callback"):
        fastlr.learn_sketch(lowrank_data[:2], 6, 3, callback=3, **kw)


# --------------------------------------------------------------------------- files


def test_save_load_round_trip(tmp_path, lowrank_data):
    plain = fastlr.CountSketch(7, 200, seed=4)
    plain.save(tmp_path / "plain.npz")
    back = fastlr.load_sketch(tmp_path / "plain.npz")
    assert type(back) is fastlr.CountSketch and back.seed == 4 and back.shape == (7, 200)
    np.testing.assert_array_equal(back.values, plain.values)
    np.testing.assert_array_equal(back.rows, plain.rows)

    for mixed in (None, "joint"):
        S = fastlr.learn_sketch(lowrank_data[:4], 8, 3, steps=5, mixed=mixed, val=lowrank_data[4:6], progress=False)
        path = tmp_path / f"learned-{mixed}.npz"
        S.save(path)
        with np.load(path, allow_pickle=False) as z:  # readable without pickle
            assert "values" in z.files
        T = fastlr.load_sketch(str(path))
        assert isinstance(T, fastlr.LearnedSketch) and T.mixed == mixed and T.k == 3 and T.shape == S.shape
        np.testing.assert_array_equal(T.values, S.values)
        for field in S.history.dtype.names:
            np.testing.assert_array_equal(T.history[field], S.history[field])
        np.testing.assert_array_equal(T @ lowrank_data[7], S @ lowrank_data[7])


def test_load_reads_the_file_objects_save_writes(tmp_path):
    """S.save takes a binary file object; load_sketch failed on one with "expected str, bytes or os.PathLike"."""
    S = fastlr.CountSketch.from_arrays(np.arange(40) % 5, np.linspace(-2, 2, 40), 5)
    S.reference = fastlr.CountSketch(5, 40, seed=3)
    buffer = io.BytesIO()
    S.save(buffer)
    buffer.seek(0)
    T = fastlr.load_sketch(buffer)
    np.testing.assert_array_equal(T.to_dense(), S.to_dense())
    assert T.reference.seed == 3
    S.save(tmp_path / "s.npz")
    with open(tmp_path / "s.npz", "rb") as f:
        np.testing.assert_array_equal(fastlr.load_sketch(f).values, S.values)
    with open(tmp_path / "s.npz", encoding="latin-1") as f, pytest.raises(TypeError, match="path: .*binary"):
        fastlr.load_sketch(f)
    with pytest.raises(ValueError, match="path: .*truncated"):
        fastlr.load_sketch(io.BytesIO(buffer.getvalue()[:-40]))


def write_npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_load_rejects_bad_files(tmp_path):
    good = tmp_path / "good.npz"
    fastlr.CountSketch(5, 50, seed=1).save(good)
    data = good.read_bytes()

    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    corrupted = bytearray(data)
    corrupted[len(data) // 3 : len(data) // 3 + 64] = b"\x00" * 64
    (tmp_path / "corrupted.npz").write_bytes(bytes(corrupted))
    (tmp_path / "noise.npz").write_bytes(np.random.default_rng(0).bytes(500))
    for name in ("truncated", "corrupted", "noise"):
        with pytest.raises(ValueError, match="path"):
            fastlr.load_sketch(tmp_path / f"{name}.npz")

    with np.load(good) as z:
        entries = {k: z[k] for k in z.files}
    cases = {
        "other": ({"x": np.ones(3)}, "not a fastlr sketch"),
        "version": ({**entries, "version": np.array(99)}, "version 99"),
        "lengths": ({**entries, "values": np.ones(49)}, "49 values"),
        "rows": ({**entries, "rows": entries["rows"] + 5}, "outside"),
        "nan": ({**entries, "values": np.full(50, np.nan)}, "non-finite"),
        "kind": ({**entries, "kind": np.array("gaussian")}, "kind"),
        "dtype": ({**entries, "rows": entries["rows"].astype(np.float64)}, "malformed 'rows'"),
        "missing": ({k: v for k, v in entries.items() if k != "m"}, "no 'm'"),
        "object": ({**entries, "values": np.array([None] * 50, dtype=object)}, "path"),
    }
    for name, (arrays, match) in cases.items():
        path = tmp_path / f"{name}.npz"
        write_npz(path, **arrays)
        with pytest.raises(ValueError, match=match):
            fastlr.load_sketch(path)
    with pytest.raises(FileNotFoundError):
        fastlr.load_sketch(tmp_path / "absent.npz")


def test_load_names_files_that_are_not_sketches(tmp_path):
    # A .npy array, a text file, an empty file and an .npz with an object (pickled) entry: each a
    # ValueError naming the file and saying it is not a sketch, never NumPy's advice to unpickle.
    np.save(tmp_path / "array.npy", np.ones(3))
    (tmp_path / "notes.npz").write_text("not a sketch at all\n")
    (tmp_path / "empty.npz").write_bytes(b"")
    write_npz(tmp_path / "objects.npz", values=np.array([None] * 3, dtype=object))
    cases = {"array.npy": "NumPy .npy array", "notes.npz": "not an .npz archive", "empty.npz": "empty",
             "objects.npz": "object array"}
    for name, what in cases.items():
        with pytest.raises(ValueError) as info:
            fastlr.load_sketch(tmp_path / name)
        message = str(info.value)
        assert message.startswith(f"path: {tmp_path / name} is not a fastlr sketch file"), message
        assert what in message and "pickle" not in message, message


# --------------------------------------------------------------------------- init=


def test_init_inner_product_starts_ahead_and_learns_on_top():
    """Learned positions (inner_product) + learned values beat values-only learning on held-out frames."""
    data = fastlr.datasets.video(24, height=30, width=20, seed=1)
    train, test = data[:18], data[18:]
    n = train[0].shape[0]
    kw = dict(steps=60, progress=False, holdout=0)
    values_only = fastlr.sketch_error(fastlr.learn_sketch(train, 12, 4, **kw), test, 4, guard=False)
    positions = fastlr.learn_sketch(train, 12, 4, init="inner_product", **kw)
    assert positions.shape == (12, n) and positions.rows.min() >= 0 and positions.rows.max() < 12
    assert fastlr.sketch_error(positions, test, 4, guard=False) < values_only


def test_init_inner_product_clusters_whitened_rows_from_several_matrices():
    """init="inner_product" from several matrices: the subspace=min(2k, m) positions of inner_product_sketch (8 trials),
    not the full-row ones; from one matrix: the full-row ones."""
    data = fastlr.datasets.video(10, height=30, width=20, seed=2)
    kw = dict(steps=3, progress=False, holdout=0, seed=3)
    for m, k in ((12, 4), (10, 6)):  # subspace 8, and 12 capped at m = 10
        S = fastlr.learn_sketch(data, m, k, init="inner_product", **kw)
        whitened = fastlr.datadriven.inner_product_sketch(data, m, k, trials=8, subspace=min(2 * k, m), seed=3)
        full = fastlr.datadriven.inner_product_sketch(data, m, k, trials=8, seed=3)
        np.testing.assert_array_equal(S.rows, whitened.rows)
        assert not np.array_equal(whitened.rows, full.rows)  # the two clusterings differ here: the check has teeth
        assert np.array_equal(np.unique(S.rows), np.arange(m))  # every bucket used
    # One matrix: full rows. Here those fail the one-matrix held-out-columns check (random CountSketch) where the
    # whitened ones pass it, so the two starts differ.
    frame = fastlr.datasets.video(1, height=60, width=40, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastlr.LearnedSketchWarning)
        one = fastlr.learn_sketch(frame, 12, 4, init="inner_product", **kw)
        full = fastlr.datadriven.inner_product_sketch(frame, 12, 4, trials=8, seed=3)
        whitened = fastlr.datadriven.inner_product_sketch(frame, 12, 4, trials=8, subspace=8, seed=3)
    assert not np.array_equal(full.rows, whitened.rows)
    np.testing.assert_array_equal(one.rows, full.rows)


def test_init_countsketch_is_the_start_and_the_fallback():
    rng = np.random.default_rng(0)
    train = [rng.standard_normal((40, 6)) for _ in range(3)]
    start = fastlr.CountSketch.from_arrays(np.arange(40) % 5, np.linspace(0.5, 1.5, 40), 5)
    # shrink=0: the shift guard would pull these few-column Gaussian rows' values toward their buckets' RMS
    S = fastlr.learn_sketch(train, 5, 2, steps=1, lr=1e-12, init=start, holdout=0, shrink=0, progress=False)
    np.testing.assert_array_equal(S.rows, start.rows)
    np.testing.assert_allclose(S.values, start.values, rtol=1e-9)


def test_bad_init_raises_clear_errors():
    train = [np.random.default_rng(i).standard_normal((30, 5)) for i in range(2)]
    kw = dict(steps=1, progress=False)
    with pytest.raises(ValueError, match="init: must be one of"):
        fastlr.learn_sketch(train, 4, 2, init="best", **kw)
    with pytest.raises(ValueError, match=r"init: expected a 4 x 30 CountSketch"):
        fastlr.learn_sketch(train, 4, 2, init=fastlr.CountSketch(3, 30), **kw)
    with pytest.raises(ValueError, match=r"init: expected a 2 x 30 CountSketch"):  # mixed: half the rows learned
        fastlr.learn_sketch(train, 4, 2, init=fastlr.CountSketch(4, 30), mixed="joint", **kw)
    with pytest.raises(TypeError, match="init: expected None"):
        fastlr.learn_sketch(train, 4, 2, init=np.ones((4, 30)), **kw)


def test_a_given_start_worse_than_random_falls_back_to_random():
    """init= is guarded against random too: a start that loses to CountSketch(m, n, seed) on validation
    (here every column in one bucket, so S A has rank 1) gives that random sketch back, with a warning."""
    data = fastlr.datasets.video(10, height=30, width=20, seed=2)
    n = data[0].shape[0]
    bad = fastlr.CountSketch.from_arrays(np.zeros(n, dtype=np.int64), np.ones(n), 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        S = fastlr.learn_sketch(data, 8, 3, steps=2, lr=1e-9, init=bad, seed=5, progress=False)
    # lr=1e-9 moves the start's Err by rounding only: a tie, so first the start itself, then random
    assert [str(w.message).split(" (")[0] for w in caught] == [
        "learn_sketch: the learned sketch did not beat its start", "learn_sketch: the sketch learned from its start"]
    assert "did not beat a random CountSketch" in str(caught[-1].message)
    random = fastlr.CountSketch(8, n, seed=5)
    assert S.fallback and S.validation.best_step == 0
    np.testing.assert_array_equal(S.rows, random.rows)
    np.testing.assert_array_equal(S.values, random.values)
