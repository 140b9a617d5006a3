"""Memory-mapped .npy files processed in row blocks with bounded memory."""

import tracemalloc

import numpy as np
import pytest

import fastlr
from fastlr import _outofcore
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
    result = _outofcore.apply_in_blocks(S, M, block_rows=block_rows)
    assert type(result) is np.ndarray and result.dtype == dtype
    assert_close(result, S @ A, dtype, scale=np.abs(A).max() * np.sqrt(1000))


def test_memmap_input_takes_the_block_path(tmp_path, monkeypatch):
    A = np.random.default_rng(1).integers(0, 256, (3000, 40), dtype=np.uint8)
    M = _npy(tmp_path, A)
    S = fastlr.CountSketch(9, 3000, seed=1)
    seen = []
    monkeypatch.setattr(_outofcore, "DEFAULT_BLOCK_BYTES", 400 * 40 * 8)  # 400-row blocks
    original = _outofcore.sketch_block
    monkeypatch.setattr(_outofcore, "sketch_block", lambda *a, **k: seen.append(a[3].shape) or original(*a, **k))
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
    peak, blocked = _peak_bytes(lambda: _outofcore.apply_in_blocks(S, M, block_rows=block_rows))
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
        _outofcore.apply_in_blocks(S, _npy(tmp_path, np.zeros((50, 3)), "ok.npy"), block_rows=0)


def test_input_file_is_not_modified(tmp_path):
    A = np.random.default_rng(3).standard_normal((200, 5))
    M = _npy(tmp_path, A)
    fastlr.CountSketch(7, 200) @ M
    np.testing.assert_array_equal(np.load(tmp_path / "A.npy"), A)
