"""The compiled core's busy-thread check (csrc/bindings/busy_threads.cpp): a kernel whose result does not depend on
its thread count runs on fewer threads while another thread of this process is running (an OpenBLAS worker still
spinning after the caller's own two-thread BLAS call shared a core with fastlr's second thread: 2-thread calls took
1.01-1.13x one thread's time, bench/README.md seventeenth session). It must see a running thread, not a sleeping one
nor fastlr's own OpenMP workers, and leave every result bit for bit unchanged."""

import itertools
import math
import sys
import threading
import time
from contextlib import contextmanager

import numpy as np
import pytest
import scipy.sparse as sp
from helpers import run_outside_tree, subprocess_env

import fastlr
from fastlr._kernels import _threads_state

core = fastlr.get_backend("cpp") if "cpp" in fastlr.available_backends() else None
pytestmark = [
    pytest.mark.skipif(core is None, reason="compiled core unavailable"),
    pytest.mark.skipif(core is not None and not core.build_info()["busy_check_supported"],
                       reason="the busy-thread check needs Linux and OpenMP"),
]


def _wait_for(predicate, timeout=5.0):
    """Poll ``predicate`` until true (True) or ``timeout`` seconds pass (False): threads start and end
    asynchronously, and a BLAS worker from an earlier test may still be spinning."""
    stop = time.monotonic() + timeout
    while time.monotonic() < stop:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


_tickets = itertools.count(1)


@contextmanager
def spinning_thread():
    """A thread of this process busy-waiting in C (no GIL held) for the whole block."""
    ticket = next(_tickets)
    thread = threading.Thread(target=core._spin_for, args=(60.0, ticket), daemon=True)
    thread.start()
    try:
        assert _wait_for(lambda: core._busy_threads(2) >= 1), "the spinning thread was never seen running"
        yield
    finally:
        core._stop_spins(ticket)
        thread.join()


@contextmanager
def busy_check(on: bool, calls_per_check: float = 200.0, every_listed: bool = False, cold_after_ms: float = math.inf):
    """The check as given; its cold-pool rule off unless ``cold_after_ms`` is given (the pauses between a test's
    calls, thread starts, ``_wait_for``, would otherwise decide how many threads a call gets)."""
    previous = core._set_busy_check(on, calls_per_check, int(every_listed))
    previous_cold = core._set_cold_pool(cold_after_ms)
    try:
        yield
    finally:
        core._set_busy_check(previous, 200.0, 0)
        core._set_cold_pool(previous_cold)


@pytest.fixture
def two_threads():
    with fastlr.thread_limit(2):
        yield


def test_the_check_sees_a_running_thread_and_not_a_sleeping_one():
    assert _wait_for(lambda: core._busy_threads(2) == 0), "a thread of the test process kept running"
    release = threading.Event()
    sleeper = threading.Thread(target=release.wait, daemon=True)
    sleeper.start()
    try:
        assert _wait_for(lambda: core._busy_threads(2) == 0), "a sleeping thread was counted as running"
        with spinning_thread():
            assert core._busy_threads(2) == 1
        assert _wait_for(lambda: core._busy_threads(2) == 0)
    finally:
        release.set()
        sleeper.join()


def test_the_check_sees_openblas_worker_spinning_after_a_two_thread_blas_call():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    G = np.random.default_rng(0).standard_normal((400, 400))
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        blas = threadpoolctl.ThreadpoolController().select(internal_api="openblas").lib_controllers
        if not blas or max(c.num_threads for c in blas) < 2:
            pytest.skip("NumPy's BLAS is not OpenBLAS on two threads here")
        G @ G
        assert core._busy_threads(2) >= 1


_OWN_WORKERS = r"""
import os, numpy as np, fastlr
core = fastlr.get_backend("cpp")
fastlr.set_num_threads(2)
A = np.random.default_rng(0).standard_normal((4000, 500))
core.matmul(A, np.ones((500, 8)))  # leaves libgomp's worker spinning (OMP_WAIT_POLICY=active)
me = str(os.getpid())
running = [t for t in os.listdir("/proc/self/task") if t != me
           and open(f"/proc/self/task/{t}/stat").read().rsplit(")", 1)[1].split()[0] == "R"]
print(len(running), core._busy_threads(2))
"""


def test_the_check_does_not_count_fastlrs_own_openmp_workers():
    """With OMP_WAIT_POLICY=active fastlr's idle worker spins for good after a region: running, yet fastlr's."""
    env = subprocess_env(OMP_WAIT_POLICY="active")
    env.pop("GOMP_SPINCOUNT", None)
    out = run_outside_tree([sys.executable, "-c", _OWN_WORKERS], env=env)
    assert out.returncode == 0, out.stderr
    running, counted = map(int, out.stdout.split())
    assert running >= 1, "the OpenMP worker was not running: the test shows nothing"
    assert counted == 0


def _dense(rng, n, d, dtype):
    return rng.standard_normal((n, d)).astype(dtype)


def _calls(dtype):
    """Calls of each kernel the check may give fewer threads, by name (_busy_checked_kernels(False))."""
    rng = np.random.default_rng(1)
    A = _dense(rng, 3000, 300, dtype)
    F = np.asfortranarray(A)
    S = sp.random(20000, 400, density=0.01, format="csr", random_state=np.random.default_rng(2), dtype=dtype)
    C = S.tocsc()
    n, d = S.shape
    rows = rng.integers(0, 30, A.shape[0]).astype(np.int64)
    signs = rng.choice([-1.0, 1.0], A.shape[0]).astype(dtype)
    srows = rng.integers(0, 30, n).astype(np.int64)
    ssigns = rng.choice([-1.0, 1.0], n).astype(dtype)
    D = _dense(rng, 30, 300, dtype)
    SD = _dense(rng, 30, d, dtype)
    V = _dense(rng, 300, 8, dtype)
    SV = _dense(rng, d, 8, dtype)
    grad = _dense(rng, 50000, 4, dtype)

    def step(kind, n_state):
        def call():
            param, state = _dense(np.random.default_rng(3), 50000, 4, dtype), np.ones((n_state, 50000, 4), dtype)
            core.optimizer_step(param, grad, state, kind, (0.1, 0.9, 0.99, 1e-8, 3.0))
            return param, state
        return call

    return {
        "matmul": [lambda: core.matmul(A, V), lambda: core.matmul(F, V)],
        "matmul_csr": [lambda: core.matmul_csr(S.indptr, S.indices, S.data, SV)],
        "countsketch_dense": [lambda: core.countsketch_dense(A, rows, signs, 30),
                              lambda: core.countsketch_dense(F, rows, signs, 30)],
        "countsketch_seeded_dense": [lambda: core.countsketch_seeded_dense(A, 7, 30, 5)],
        "countsketch_gather_dot": [lambda: core.countsketch_gather_dot(A, rows, D)],
        "countsketch_csr": [lambda: core.countsketch_csr(S.indptr, S.indices, S.data, srows, ssigns, 30, d)],
        "countsketch_csc": [lambda: core.countsketch_csc(C.indptr, C.indices, C.data, srows, ssigns, 30, d)],
        "countsketch_seeded_csr": [lambda: core.countsketch_seeded_csr(S.indptr, S.indices, S.data, 7, 30, n, d)],
        "countsketch_seeded_csc": [lambda: core.countsketch_seeded_csc(C.indptr, C.indices, C.data, 7, 30, n, d)],
        "countsketch_gather_dot_csr": [lambda: core.countsketch_gather_dot_csr(S.indptr, S.indices, S.data, srows, SD)],
        "optimizer_step": [step("sgd", 0), step("momentum", 1), step("nesterov", 1), step("adam", 2)],
    }


def _as_tuple(result):
    return result if isinstance(result, tuple) else (result,)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_listed_kernels_give_the_same_bits_when_the_check_fires(dtype, two_threads):
    """Every kernel the check may apply to, whether applied now or not: the list is one switch away."""
    calls = _calls(dtype)
    checked = core._busy_checked_kernels(False)
    assert set(checked) <= set(calls), f"no case here for {sorted(set(checked) - set(calls))}"
    quiet, busy = {}, {}
    with busy_check(False):
        for name in checked:
            for i, call in enumerate(calls[name]):
                quiet[name, i] = _as_tuple(call())
                assert core._last_call_threads() == 2
    with busy_check(True, calls_per_check=1e-9, every_listed=True), spinning_thread():  # every call checks
        for name in checked:
            for i, call in enumerate(calls[name]):
                busy[name, i] = _as_tuple(call())
                assert core._last_call_threads() == 1, name
    for key, expected in quiet.items():
        assert len(busy[key]) == len(expected)
        for got, want in zip(busy[key], expected):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want), err_msg=str(key))


def test_applied_kernels_drop_to_one_thread_beside_a_running_thread_within_the_length_bounds(two_threads):
    """The check applies to the kernels measured to gain (countsketch_seeded_dense, ...) for calls estimated between
    200x its cost (calls_per_check=1 here, so the pytest process's thread count does not matter) and 4 ms; kernels
    only listed (matmul) and kernels whose sums follow the thread count (rmatmul, power_step) keep their threads."""
    rng = np.random.default_rng(4)
    A = rng.standard_normal((3000, 300)).astype(np.float32)
    W = rng.standard_normal((3000, 8)).astype(np.float32)
    V = rng.standard_normal((300, 8)).astype(np.float32)
    long = np.ones((4096, 4096), np.float32)  # 16.8e6 entries at 0.25 ns: past the 4 ms bound
    small = A[:300, :30]
    assert "countsketch_seeded_dense" in core._busy_checked_kernels()
    assert "matmul" in core._busy_checked_kernels(False) and "matmul" not in core._busy_checked_kernels()
    assert not {"rmatmul", "power_step"} & set(core._busy_checked_kernels(False))
    with busy_check(True, calls_per_check=1), spinning_thread():
        core.countsketch_seeded_dense(A, 1, 20)
        assert core._last_call_threads() == 1
        for call in (lambda: core.matmul(A, V), lambda: core.rmatmul(A, W), lambda: core.power_step(A, V),
                     lambda: core.countsketch_seeded_dense(long, 1, 20)):
            call()
            assert core._last_call_threads() == 2
    with busy_check(True), spinning_thread():  # 200x the check's cost: a 300 x 30 sketch is far too short
        core.countsketch_seeded_dense(np.ascontiguousarray(small), 1, 20)
        assert core._last_call_threads() == 2
    with busy_check(True, calls_per_check=1):
        assert _wait_for(lambda: core._busy_threads(2) == 0)
        core.countsketch_seeded_dense(A, 1, 20)
        assert core._last_call_threads() == 2  # nothing else running: both threads


def test_a_short_applied_call_runs_on_one_thread_after_a_pause_without_calls(two_threads):
    """The cold-pool rule: after cold_after_ms without a kernel call from the calling thread (faked here by moving
    the rule's clock forward), an applied call within the length bounds gets one thread, with the same bits; any
    call restarts the clock, per calling thread; kernels only listed, longer calls, and the check turned off keep
    their threads."""
    rng = np.random.default_rng(5)
    A = rng.standard_normal((3000, 300)).astype(np.float32)
    V = rng.standard_normal((300, 8)).astype(np.float32)
    long = np.ones((4096, 4096), np.float32)  # past the 4 ms bound
    hour = 3.6e6

    def idle():
        core._set_cold_pool(advance_ms=2 * hour)

    with busy_check(True, cold_after_ms=hour):
        core.countsketch_seeded_dense(A, 1, 20)  # starts this thread's clock, whatever it chose
        warm = core.countsketch_seeded_dense(A, 1, 20)
        assert core._last_call_threads() == 2
        idle()
        cold = core.countsketch_seeded_dense(A, 1, 20)
        assert core._last_call_threads() == 1
        np.testing.assert_array_equal(cold, warm)
        core.countsketch_seeded_dense(A, 1, 20)
        assert core._last_call_threads() == 2  # the one-thread call restarted the clock: a loop keeps two threads
        for call in (lambda: core.matmul(A, V), lambda: core.countsketch_seeded_dense(long, 1, 20)):
            idle()
            call()
            assert core._last_call_threads() == 2
        firsts = []

        def first_call():
            with fastlr.thread_limit(2):
                core.countsketch_seeded_dense(A, 1, 20)
                firsts.append(core._last_call_threads())

        idle()
        other = threading.Thread(target=first_call)
        other.start()
        other.join()
        assert firsts == [1]  # a new thread's pool has never run
        core.countsketch_seeded_dense(A, 1, 20)
        assert core._last_call_threads() == 1  # another thread's call does not warm this thread's pool
    with busy_check(False, cold_after_ms=hour):
        idle()
        core.countsketch_seeded_dense(A, 1, 20)
        assert core._last_call_threads() == 2


@pytest.mark.parametrize("value, on", [("", True), ("0", False), ("off", False)])
def test_the_environment_variable_turns_the_check_off_and_fastlr_info_says_so(value, on):
    env = subprocess_env(**{_threads_state.BUSY_CHECK_ENV: value})
    out = run_outside_tree([sys.executable, "-m", "fastlr", "info", "--json"], env=env)
    assert out.returncode == 0, out.stderr
    assert ('"busy_check": "on' in out.stdout) == on
    assert ('"busy_check": "off' in out.stdout) == (not on)
    code = "import fastlr; print(fastlr.get_backend('cpp').build_info()['busy_check'])"
    out = run_outside_tree([sys.executable, "-c", code], env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(on)
