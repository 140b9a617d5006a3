"""One learned-sketch training step: fastlr's hand-derived gradient vs PyTorch autograd.

A step is the forward pass (S A, SVD of S A, B = A V, top-k of B, the loss
||A - SCW(S, A)||_F), the backward pass to the sketch values, and one Adam
update, for one matrix (batch 1), m = 20, k = 10, on ONE thread (fastlr's
kernels, BLAS and PyTorch all limited to 1). The matrices are video frames from
``fastlr.datasets.video`` at 1200 x 400 (400 x 400 frames) and 5760 x 1080
(1920 x 1080 frames, the paper's size).

The PyTorch step is written as the paper's public code does it: a dense S,
``torch.linalg.svd`` twice, the rank-k approximation formed explicitly, the
Frobenius norm of the residual, and autograd (skipped when torch is absent).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE pytest bench/bench_learn.py --benchmark-only \\
        --benchmark-columns=min,median,rounds --benchmark-sort=name

Time to quality (Err on held-out frames against wall-clock seconds) is
``bench/learn_time_to_quality.py``.
"""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import fastlr
from fastlr import datasets
from fastlr._gradients import TrainingMatrix, loss_and_grad

M, K = 20, 10
SIZES = {"1200x400": (400, 400), "5760x1080": (1080, 1920)}  # frame height, width -> (3 width) x height
IMPLS = ["fastlr", "torch"]

_frames = {}


def frame(size: str, dtype) -> np.ndarray:
    key = (size, np.dtype(dtype).name)
    if key not in _frames:
        _frames.clear()
        height, width = SIZES[size]
        _frames[key] = datasets.video(1, height=height, width=width, seed=0, dtype=dtype)[0]
    return _frames[key]


def fastlr_step(A: np.ndarray):
    """One exact-gradient Adam step of learn_sketch on A (the loop body of learn_sketch)."""
    kernels = fastlr.get_backend()
    op = TrainingMatrix(A)
    start = fastlr.CountSketch(M, A.shape[0], seed=0)
    rows, values = start.rows, start.values.copy()
    state = np.zeros((2, values.size))
    step = [0]

    def run():
        step[0] += 1
        _, grad = loss_and_grad(op, None, K, rows, values.astype(A.dtype), M)
        kernels.optimizer_step(values, grad, state, "adam", (0.05, 0.9, 0.999, 1e-12, step[0]))

    return run


def torch_step(A: np.ndarray):
    torch = pytest.importorskip("torch")
    n, d = A.shape
    start = fastlr.CountSketch(M, n, seed=0)
    A_t = torch.from_numpy(A)
    rows = torch.from_numpy(start.rows)
    cols = torch.arange(n)
    values = torch.nn.Parameter(torch.from_numpy(start.values.astype(A.dtype)))
    optimizer = torch.optim.Adam([values], lr=0.05)

    def run():
        optimizer.zero_grad()
        S = torch.zeros(M, n, dtype=A_t.dtype)
        S = S.index_put((rows, cols), values)
        _, _, Vh = torch.linalg.svd(S @ A_t, full_matrices=False)
        U2, s2, V2h = torch.linalg.svd(A_t @ Vh.T, full_matrices=False)
        approx = (U2[:, :K] * s2[:K]) @ V2h[:K] @ Vh
        loss = torch.linalg.norm(A_t - approx)
        loss.backward()
        optimizer.step()

    return run


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("impl", IMPLS)
def test_training_step(benchmark, impl, size, dtype):
    A = frame(size, dtype)
    benchmark.group = f"step {size} {np.dtype(dtype).name}"
    previous = fastlr.get_num_threads()
    torch_threads = None
    if impl == "torch":
        torch = pytest.importorskip("torch")
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)
    fastlr.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            run = fastlr_step(A) if impl == "fastlr" else torch_step(A)
            run()  # warm-up
            benchmark.pedantic(run, rounds=30 if size == "1200x400" else 8, iterations=1, warmup_rounds=1)
    finally:
        fastlr.set_num_threads(previous)
        if torch_threads is not None:
            torch.set_num_threads(torch_threads)
