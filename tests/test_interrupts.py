"""Ctrl-C stops randomized_svd promptly: the Gram matrix is built in bounded SYRK calls."""

import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
from helpers import SUBPROCESS_TIMEOUT, subprocess_env

import fastlr

memory_module = sys.modules["fastlr._matrix.memory"]


@pytest.mark.parametrize("threads", [1, 2])
def test_gram_in_blocks_equals_one_product(threads, monkeypatch):
    monkeypatch.setattr(memory_module, "_GRAM_BLOCK_FLOPS", 1.0)  # every block at the minimum row count
    A = np.random.default_rng(0).standard_normal((3000, 40))
    with fastlr.thread_limit(threads):
        G = memory_module._gram(A)
    np.testing.assert_allclose(G, A.T @ A, rtol=1e-12, atol=1e-12 * np.abs(A.T @ A).max())


@pytest.mark.parametrize("threads", [1, 2])
def test_interrupt_in_gram_stops_every_range(threads, monkeypatch):
    """A KeyboardInterrupt during one SYRK call ends _gram; no range starts another block after it."""
    monkeypatch.setattr(memory_module, "_GRAM_BLOCK_FLOPS", 1.0)
    calls = []
    syrk = memory_module._syrk

    def interrupted_syrk(X):
        calls.append(time.perf_counter())
        if len(calls) == 3:
            raise KeyboardInterrupt
        time.sleep(0.01)
        return syrk(X)

    monkeypatch.setattr(memory_module, "_syrk", interrupted_syrk)
    A = np.random.default_rng(0).standard_normal((256 * 40, 8))  # 40 blocks of 256 rows
    with fastlr.thread_limit(threads), pytest.raises(KeyboardInterrupt):
        memory_module._gram(A)
    assert len(calls) <= 3 + threads  # each other range finishes at most the block it was in


def test_sigint_stops_randomized_svd_on_the_gram_path():
    """End to end: SIGINT during a long randomized_svd (Gram path, k=50, n_iter=50) ends it quickly.

    The uninterrupted call takes many seconds here; the bound is a hang guard, generous
    against slow machines, while the old single SYRK call took 14-55 s to notice.
    """
    code = (
        "import numpy as np, sys, fastlr\n"
        "A = np.random.default_rng(0).standard_normal((24000, 3000), dtype=np.float32)\n"
        "print('ready', flush=True)\n"
        "for _ in range(20): fastlr.randomized_svd(A, 50, n_iter=50, random_state=0)\n"
        "print('finished', flush=True)\n"
    )
    with tempfile.TemporaryDirectory() as cwd:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=cwd, env=subprocess_env())
        try:
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(1.0)  # inside the first call's Gram matrix
            sent = time.perf_counter()
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=SUBPROCESS_TIMEOUT)
            waited = time.perf_counter() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert "finished" not in out
    assert "KeyboardInterrupt" in err
    assert waited < 10.0, waited
