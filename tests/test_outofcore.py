"""Memory-mapped .npy files processed in row blocks with bounded memory."""

import tracemalloc

import numpy as np
import pytest

import fastlr
from fastlr import _matrix
from helpers import assert_close


def _npy(tmp_path, A, name="A.npy"):
    path = tmp_path / name
    np.save(path, A)
    return np.load(path, mmap_mode="r")


def _peak_bytes(fn):
    """Peak memory traced (NumPy buffers included) while fn runs, and fn's result."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = fn()
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("block_rows", [1, 37, 1000, 5000])
def test_blocks_equal_in_memory(tmp_path, dtype, order, block_rows):
    A = np.random.default_rng(0).standard_normal((1000, 23)).astype(dtype, order=order)
    M = _npy(tmp_path, A)
    S = fastlr.CountSketch(11, 1000, seed=3)
    result = S.apply(_matrix.RowBlocks(M, block_rows))
    assert type(result) is np.ndarray and result.dtype == dtype
    assert_close(result, S @ A, dtype, scale=np.abs(A).max() * np.sqrt(1000))


def test_memmap_input_takes_the_block_path(tmp_path, monkeypatch):
    A = np.random.default_rng(1).integers(0, 256, (3000, 40), dtype=np.uint8)
    M = _npy(tmp_path, A)
    S = fastlr.CountSketch(9, 3000, seed=1)
    seen = []
    monkeypatch.setattr(_matrix.blocks, "DEFAULT_BLOCK_BYTES", 400 * 40 * 8)  # 400-row blocks
    original = _matrix.InMemory.countsketch_seeded

    def spy(block, *args):
        seen.append(block.shape)
        return original(block, *args)

    monkeypatch.setattr(_matrix.InMemory, "countsketch_seeded", spy)
    result = S @ M
    assert seen == [(400, 40)] * 7 + [(200, 40)]
    np.testing.assert_array_equal(result, S @ A.astype(np.float64))


def test_sketching_a_memmap_needs_one_block_of_memory(tmp_path):
    n, d, block_rows = 40_000, 100, 1000
    A = np.random.default_rng(2).integers(0, 256, (n, d), dtype=np.uint8)  # e.g. video frames
    path = tmp_path / "frames.npy"
    np.save(path, A)
    del A
    S = fastlr.CountSketch(10, n, seed=0)
    M = np.load(path, mmap_mode="r")
    peak, blocked = _peak_bytes(lambda: S.apply(_matrix.RowBlocks(M, block_rows)))
    block_bytes = block_rows * d * 8  # one block converted to float64
    assert peak < 2 * block_bytes, peak
    # The same measurement sees the whole float64 copy when the file is loaded into memory.
    peak_in_memory, in_memory = _peak_bytes(lambda: S @ np.load(path))
    assert peak_in_memory > n * d * 8
    np.testing.assert_array_equal(blocked, in_memory)


def test_bad_memmaps_raise_clear_errors(tmp_path):
    S = fastlr.CountSketch(4, 50)
    with pytest.raises(ValueError, match=r"A: has 49 rows"):
        S @ _npy(tmp_path, np.zeros((49, 3)))
    with pytest.raises(ValueError, match=r"A: expected a 2-D array"):
        S @ _npy(tmp_path, np.zeros((50, 3, 2)), "cube.npy")
    with pytest.raises(TypeError, match=r"complex"):
        S @ _npy(tmp_path, np.zeros((50, 3), dtype=np.complex64), "complex.npy")
    with pytest.raises(ValueError, match=r"NaN"):
        S @ _npy(tmp_path, np.full((50, 3), np.inf), "inf.npy")
    with pytest.raises(ValueError, match=r"block_rows: must be >= 1"):
        S.apply(_matrix.RowBlocks(_npy(tmp_path, np.zeros((50, 3)), "ok.npy"), block_rows=0))


def test_input_file_is_not_modified(tmp_path):
    A = np.random.default_rng(3).standard_normal((200, 5))
    M = _npy(tmp_path, A)
    fastlr.CountSketch(7, 200) @ M
    np.testing.assert_array_equal(np.load(tmp_path / "A.npy"), A)


def _frames(n, d, seed=0):
    """uint8 'video' rows: a low-rank scene plus noise, as stored on disk."""
    rng = np.random.default_rng(seed)
    scene = (rng.random((n, 4)) @ rng.random((4, d))) * 60
    return np.clip(scene + rng.normal(0, 2, (n, d)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("block_rows", [1, 250, 5000])
def test_scw_and_randomized_svd_of_a_memmap_equal_in_memory(tmp_path, block_rows):
    A = _frames(1000, 30)
    M = _npy(tmp_path, A)
    A64 = A.astype(np.float64)
    S = fastlr.CountSketch(15, 1000, seed=2)
    lr = fastlr.scw(M, S, 4, n_iter=1, block_rows=block_rows)
    assert isinstance(lr, fastlr.LowRank)
    for got, expected in zip(lr, fastlr.scw(A64, S, 4, n_iter=1)):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10 * np.abs(expected).max())
    got = fastlr.randomized_svd(M, 4, random_state=1, block_rows=block_rows)
    for got, expected in zip(got, fastlr.randomized_svd(A64, 4, random_state=1)):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10 * np.abs(expected).max())


def test_float32_memmap_stays_float32(tmp_path):
    A = np.random.default_rng(4).standard_normal((500, 12)).astype(np.float32)
    U, s, Vt = fastlr.randomized_svd(_npy(tmp_path, A), 3, random_state=0, block_rows=64)
    assert U.dtype == s.dtype == Vt.dtype == np.float32
    np.testing.assert_allclose(s, fastlr.randomized_svd(A, 3, random_state=0)[1], rtol=1e-4)


def test_approximating_a_memmap_needs_bounded_memory(tmp_path):
    n, d, block_rows, k, p = 40_000, 100, 1000, 4, 6  # k = the scene's rank: a spectral gap after k
    path = tmp_path / "frames.npy"
    np.save(path, _frames(n, d, seed=1))
    M = np.load(path, mmap_mode="r")
    run = dict(n_oversamples=p, n_iter=2, random_state=0)
    peak, blocked = _peak_bytes(lambda: fastlr.randomized_svd(M, k, block_rows=block_rows, **run))
    # B = A V (n x (k + p)) and its orthonormalization, plus one float64 block: not the n x d matrix.
    assert peak < 4 * n * (k + p) * 8 + 2 * block_rows * d * 8, peak
    assert peak < 0.5 * n * d * 8
    peak_in_memory, in_memory = _peak_bytes(lambda: fastlr.randomized_svd(np.load(path), k, **run))
    assert peak_in_memory > n * d * 8
    for got, expected in zip(blocked, in_memory):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9 * np.abs(expected).max())


def test_row_blocked_scw_argument_errors(tmp_path):
    M = _npy(tmp_path, np.ones((50, 4)))
    with pytest.raises(ValueError, match=r"block_rows: must be >= 1"):
        fastlr.scw(M, fastlr.CountSketch(4, 50), 2, block_rows=0)
    with pytest.raises(ValueError, match=r"S: has m=1 rows, fewer than k=2"):
        fastlr.scw(M, fastlr.CountSketch(1, 50), 2)
    with pytest.raises(TypeError, match=r"S: expected a fastlr sketch"):
        fastlr.scw(M, np.ones((4, 50)), 2)
    with pytest.raises(ValueError, match=r"A: expected a non-empty matrix"):
        fastlr.scw(np.ones((50, 0)), fastlr.CountSketch(4, 50), 2)
