"""fastlr.datasets: generators, normalize, spectral_norm, load_folder."""

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

from fastlr import datasets


def spectral(A):
    return np.linalg.norm(A.toarray() if sp.issparse(A) else A, 2)


# --------------------------------------------------------------------------- generators


def test_video_frames():
    frames = datasets.video(6, height=20, width=30, seed=3)
    assert len(frames) == 6
    for F in frames:
        assert F.shape == (90, 20) and F.dtype == np.float64
        assert F.min() >= 0.0 and F.max() <= 1.0
    again = datasets.video(6, height=20, width=30, seed=3)
    for F, G in zip(frames, again):
        np.testing.assert_array_equal(F, G)
    assert not np.array_equal(frames[0], datasets.video(1, height=20, width=30, seed=4)[0])
    # a static background: consecutive frames differ far less than frames of another scene
    other = datasets.video(1, height=20, width=30, seed=4)[0]
    assert np.linalg.norm(frames[1] - frames[0]) < 0.5 * np.linalg.norm(other - frames[0])
    # ... but things move
    assert not np.allclose(datasets.video(2, height=20, width=30, noise=0.0)[0],
                           datasets.video(2, height=20, width=30, noise=0.0)[1], atol=0.05)
    assert datasets.video(1, height=20, width=30, dtype=np.float32)[0].dtype == np.float32


def test_frame_to_matrix_layout():
    frame = np.arange(2 * 3 * 3).reshape(2, 3, 3)  # H=2, W=3, RGB
    M = datasets.frame_to_matrix(frame)
    assert M.shape == (9, 2)
    np.testing.assert_array_equal(M, np.vstack([frame[..., 0].T, frame[..., 1].T, frame[..., 2].T]))
    np.testing.assert_array_equal(datasets.frame_to_matrix(frame[..., 0]), frame[..., 0].T)
    with pytest.raises(ValueError, match="frame"):
        datasets.frame_to_matrix(np.zeros(4))


def test_hyperspectral_bands():
    mats = datasets.hyperspectral(10, height=40, width=24, bands=4, seed=1)
    assert len(mats) == 10 and all(M.shape == (40, 24) for M in mats)
    # every band of a scene mixes the same abundance maps (one per material): with two materials
    # and no noise, the bands of one scene span two dimensions; bands of two scenes do not
    two = datasets.hyperspectral(8, height=40, width=24, bands=4, n_materials=2, noise=0.0, seed=1)

    def singular_values(group):
        return np.linalg.svd(np.stack([M.ravel() for M in group]), compute_uv=False)

    assert singular_values(two[:4])[2] < 1e-12 * singular_values(two[:4])[0]
    assert singular_values(two[2:6])[2] > 1e-3 * singular_values(two[2:6])[0]
    for M, N in zip(mats, datasets.hyperspectral(10, height=40, width=24, bands=4, seed=1)):
        np.testing.assert_array_equal(M, N)


def test_text_is_sparse_zipfian():
    mats = datasets.text(4, n_terms=500, n_docs=60, seed=2)
    for M in mats:
        assert sp.issparse(M) and M.format == "csr" and M.shape == (500, 60)
        assert np.array_equal(M.data, np.round(M.data)) and M.data.min() > 0  # counts
        assert M.nnz < 0.5 * 500 * 60
    totals = sum(np.asarray(M.sum(axis=1)).ravel() for M in mats)
    assert totals[:10].sum() > 0.2 * totals.sum()  # Zipf: the first 2% of the words take > 20% of the counts
    assert totals[0] == totals.max() and np.median(totals) < 0.01 * totals[0]
    for M, N in zip(mats, datasets.text(4, n_terms=500, n_docs=60, seed=2)):
        assert (M != N).nnz == 0
    with pytest.raises(ValueError, match="topics_per_matrix"):
        datasets.text(1, n_topics=2, topics_per_matrix=3)


def test_text_topic_shift():
    kw = dict(n_terms=600, n_docs=40, n_topics=10, seed=3)
    train = datasets.text(6, topics=range(5), **kw)
    test = datasets.text(6, topics=[9, 8, 7, 6, 5], **kw)  # any order: the pool is a set

    def profile(mats):  # relative word frequencies
        totals = sum(np.asarray(M.sum(axis=1)).ravel() for M in mats)
        return totals / totals.sum()

    a, b = profile(train[:3]), profile(train[3:])
    c, d = profile(test[:3]), profile(test[3:])
    within = np.abs(a - b).sum() + np.abs(c - d).sum()
    across = np.abs(a - c).sum() + np.abs(b - d).sum()
    assert across > 1.3 * within  # disjoint topics: a shifted vocabulary
    for M, N in zip(test, datasets.text(6, topics=range(5, 10), **kw)):
        assert (M != N).nnz == 0  # deterministic, and the pool's order does not matter
    for M, N in zip(datasets.text(3, **kw), datasets.text(3, topics=range(10), **kw)):
        assert M.shape == N.shape  # topics=None: the original stream (all topics)
    with pytest.raises(ValueError, match="topics: has repeated"):
        datasets.text(1, topics=[1, 1], **kw)
    with pytest.raises(ValueError, match="topics: needs at least topics_per_matrix=2"):
        datasets.text(1, topics=[1], **kw)
    with pytest.raises(ValueError, match="topics"):
        datasets.text(1, topics=[10, 1], **kw)
    with pytest.raises(TypeError, match="topics"):
        datasets.text(1, topics="ab", **kw)


def test_lowrank_spectrum_and_shared_subspace():
    spectrum = np.array([5.0, 3.0, 1.0])
    mats = datasets.lowrank(3, shape=(40, 12), rank=3, spectrum=spectrum, noise=0.0, drift=0.0, seed=0)
    for A in mats:
        np.testing.assert_allclose(np.linalg.svd(A, compute_uv=False)[:4], [5, 3, 1, 0], atol=1e-12)
    Q0 = np.linalg.svd(mats[0], full_matrices=False)[0][:, :3]
    Q1 = np.linalg.svd(mats[1], full_matrices=False)[0][:, :3]
    np.testing.assert_allclose(np.linalg.svd(Q0.T @ Q1, compute_uv=False), 1.0, atol=1e-10)  # one column space
    noisy = datasets.lowrank(2, shape=(40, 12), rank=3, seed=0)
    assert np.linalg.svd(noisy[0], compute_uv=False)[3] > 0
    with pytest.raises(ValueError, match="spectrum"):
        datasets.lowrank(1, shape=(40, 12), rank=3, spectrum=[1.0, 2.0])
    with pytest.raises(ValueError, match="rank"):
        datasets.lowrank(1, shape=(10, 5), rank=6)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: datasets.video(0), "n_frames"),
        (lambda: datasets.video(2, noise=-1), "noise"),
        (lambda: datasets.video(2, dtype=np.int32), "dtype"),
        (lambda: datasets.hyperspectral(0), "n"),
        (lambda: datasets.text(2, n_terms=1), "n_terms"),
        (lambda: datasets.lowrank(2, shape=(0, 4)), "shape"),
        (lambda: datasets.lowrank(2, drift=float("inf")), "drift"),
    ],
)
def test_generator_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --------------------------------------------------------------------------- normalize


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normalize_dense_and_sparse(dtype):
    rng = np.random.default_rng(0)
    big = (rng.standard_normal((400, 150)) * 3).astype(dtype)  # Lanczos path
    small = (rng.standard_normal((20, 10)) * 0.01).astype(dtype)  # dense SVD path
    sparse = sp.random(300, 200, density=0.05, random_state=1, format="csr", dtype=dtype) * 7
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for A in (big, small, sparse):
        original = A.copy()
        N = datasets.normalize(A)
        assert N.dtype == dtype and sp.issparse(N) == sp.issparse(A)
        assert spectral(N) == pytest.approx(1.0, rel=tol)
        assert datasets.spectral_norm(A) == pytest.approx(spectral(A), rel=tol)
        if sp.issparse(A):
            assert (A != original).nnz == 0
        else:
            np.testing.assert_array_equal(A, original)


def test_normalize_rejects_zero_and_nan():
    with pytest.raises(ValueError, match="all zeros"):
        datasets.normalize(np.zeros((50, 300)))
    with pytest.raises(ValueError, match="all zeros"):
        datasets.normalize(sp.csr_array((300, 300)))
    bad = np.ones((5, 5))
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        datasets.normalize(bad)


# --------------------------------------------------------------------------- loading


def test_load_folder_matrices(tmp_path):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((6, 4))
    S = sp.random(6, 4, density=0.5, random_state=1, format="csr")
    np.save(tmp_path / "a.npy", A)
    np.savez(tmp_path / "b.npz", A.astype(np.float32))
    sp.save_npz(tmp_path / "c.npz", S)
    scipy.io.mmwrite(tmp_path / "d.mtx", S)
    (tmp_path / "notes.txt").write_text("ignored")
    mats = datasets.load_folder(tmp_path)
    assert len(mats) == 4
    np.testing.assert_array_equal(mats[0], A)
    assert mats[1].dtype == np.float32
    assert sp.issparse(mats[2]) and (mats[2] != S).nnz == 0
    assert sp.issparse(mats[3]) and np.allclose(mats[3].toarray(), S.toarray())
    as32 = datasets.load_folder(str(tmp_path), dtype=np.float32)
    assert all(M.dtype == np.float32 for M in as32)


def test_load_folder_frames(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (5, 7, 3), dtype=np.uint8) for _ in range(3)]
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / f"frame{i:02d}.png")
    mats = datasets.load_folder(tmp_path)
    assert len(mats) == 3
    for M, frame in zip(mats, frames):
        np.testing.assert_allclose(M, datasets.frame_to_matrix(frame / 255.0))
        assert M.shape == (21, 5)


def test_load_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        datasets.load_folder(tmp_path / "absent")
    with pytest.raises(ValueError, match="no .npy"):
        datasets.load_folder(tmp_path)
    np.save(tmp_path / "a.npy", np.ones((4, 3)))
    np.save(tmp_path / "b.npy", np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"b\.npy has shape \(4, 2\)"):
        datasets.load_folder(tmp_path)
    (tmp_path / "b.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match=r"b\.npy"):
        datasets.load_folder(tmp_path)
    (tmp_path / "b.npy").unlink()
    np.savez(tmp_path / "c.npz", x=np.ones((4, 3)), y=np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"c\.npz"):
        datasets.load_folder(tmp_path)
    (tmp_path / "c.npz").unlink()
    np.save(tmp_path / "d.npy", np.ones((4, 3, 2)))
    with pytest.raises(ValueError, match=r"d\.npy"):
        datasets.load_folder(tmp_path)
    (tmp_path / "d.npy").unlink()
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(ValueError, match="both"):
        datasets.load_folder(tmp_path)


def test_load_matrix_formats(tmp_path):
    rng = np.random.default_rng(2)
    A = rng.standard_normal((7, 5))
    S = sp.random(7, 5, density=0.4, random_state=3, format="csc")
    np.save(tmp_path / "a.npy", A)
    with open(tmp_path / "ints.NPY", "wb") as f:  # np.save would append ".npy"
        np.save(f, np.arange(6, dtype=np.uint8).reshape(3, 2))
    np.savez(tmp_path / "one.npz", A.astype(np.float32))
    np.savez(tmp_path / "named.npz", A=A, labels=np.arange(7))
    sp.save_npz(tmp_path / "sparse.npz", S)
    scipy.io.mmwrite(tmp_path / "sparse.mtx", S)
    scipy.io.mmwrite(tmp_path / "dense.mtx", A)

    loaded = datasets.load_matrix(tmp_path / "a.npy")
    assert type(loaded) is np.ndarray
    np.testing.assert_array_equal(loaded, A)
    mapped = datasets.load_matrix(str(tmp_path / "a.npy"), mmap=True)
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    np.testing.assert_array_equal(mapped, A)
    ints = datasets.load_matrix(tmp_path / "ints.NPY")
    assert ints.dtype == np.uint8 and ints.shape == (3, 2)  # the file's dtype, whatever the suffix case
    one = datasets.load_matrix(tmp_path / "one.npz", mmap=True)  # mmap: .npy only, ignored here
    assert type(one) is np.ndarray and one.dtype == np.float32
    np.testing.assert_array_equal(datasets.load_matrix(tmp_path / "named.npz"), A)
    for name in ("sparse.npz", "sparse.mtx"):
        M = datasets.load_matrix(tmp_path / name)
        assert isinstance(M, sp.csr_array), name
        np.testing.assert_allclose(M.toarray(), S.toarray(), rtol=1e-15)
    dense = datasets.load_matrix(tmp_path / "dense.mtx")
    assert type(dense) is np.ndarray
    np.testing.assert_allclose(dense, A, rtol=1e-15)


def test_load_matrix_errors_name_the_file(tmp_path):
    np.save(tmp_path / "vector.npy", np.ones(4))
    np.save(tmp_path / "complex.npy", np.ones((3, 2), dtype=np.complex64))
    np.save(tmp_path / "empty.npy", np.ones((0, 3)))
    np.save(tmp_path / "objects.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "objects.npz", np.array([[1, "a"]], dtype=object))
    np.savez(tmp_path / "two.npz", X=np.ones((3, 3)), Y=np.ones((3, 3)))
    with open(tmp_path / "npy-named.npz", "wb") as f:  # a .npy under a .npz name
        np.save(f, np.ones((3, 3)))
    (tmp_path / "garbage.npy").write_bytes(b"\x00" * 64)
    (tmp_path / "garbage.mtx").write_text("1 2\n3 4\n")
    (tmp_path / "A.txt").write_text("1 2\n")
    (tmp_path / "folder.npy").mkdir()
    good = tmp_path / "good.npy"
    np.save(good, np.ones((50, 40)))
    (tmp_path / "truncated.npy").write_bytes(good.read_bytes()[:1000])
    cases = {
        "vector.npy": "expected a 2-D matrix, got shape (4,)",
        "complex.npy": "expected real numbers, got dtype complex64",
        "empty.npy": "the matrix is empty",
        "objects.npy": "cannot read this .npy file: it holds Python objects",
        "objects.npz": "cannot read this .npz file: it holds Python objects",
        "two.npz": "holds arrays X, Y; expected one array, one named 'A'",
        "npy-named.npz": "not a .npz file",
        "garbage.npy": "not a .npy file",
        "truncated.npy": "cannot read this .npy file (truncated?)",
        "garbage.mtx": "cannot read this .mtx file",
        "A.txt": "unknown matrix format '.txt'",
    }
    for name, problem in cases.items():
        with pytest.raises(ValueError) as info:
            datasets.load_matrix(tmp_path / name)
        assert str(info.value).startswith(f"path: {tmp_path / name}: {problem}"), str(info.value)
        assert "pickle" not in str(info.value)
    with pytest.raises(ValueError, match=r"truncated\.npy: cannot read this \.npy file \(truncated\?\)"):
        datasets.load_matrix(tmp_path / "truncated.npy", mmap=True)
    with pytest.raises(FileNotFoundError, match=r"absent\.npy: no such file"):
        datasets.load_matrix(tmp_path / "absent.npy")
    with pytest.raises(IsADirectoryError, match=r"folder\.npy: is a folder"):
        datasets.load_matrix(tmp_path / "folder.npy")
    with pytest.raises(TypeError, match="path"):
        datasets.load_matrix(3)


def test_load_folder_reads_each_file_with_load_matrix(tmp_path):
    # A dense .mtx stays dense and an .npz's array named "A" is taken, as load_matrix does.
    A = np.random.default_rng(4).standard_normal((6, 3))
    scipy.io.mmwrite(tmp_path / "a.mtx", A)
    np.savez(tmp_path / "b.npz", A=A, note=np.zeros(2))
    mats = datasets.load_folder(tmp_path)
    assert [type(M) for M in mats] == [np.ndarray, np.ndarray]
    np.testing.assert_allclose(mats[0], A, rtol=1e-15)
    np.testing.assert_array_equal(mats[1], A)
