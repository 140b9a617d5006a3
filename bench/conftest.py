"""Shared benchmark set-up: thread settings for fastlr and BLAS, and run metadata.

Run the anchors (NumPy/SciPy/scikit-learn) at their best by launching with
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset *for the benchmark process only*:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE pytest bench/ --benchmark-only

The BLAS kernel actually in use (threadpoolctl's ``architecture``) is recorded in
the benchmark JSON's machine info and printed at the start of the run.
"""

import os
import subprocess

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import fastlr

THREADS = (1, 2)


def blas_description() -> str:
    parts = []
    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            parts.append(f"{pool['internal_api']} {pool.get('version')} kernel={pool.get('architecture')}")
    env = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}
    return f"{'; '.join(parts) or 'no BLAS found'}; env {env or 'OPENBLAS_* unset'}"


def git_revision() -> str:
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def pytest_report_header(config):
    return [f"fastlr {fastlr.__version__} rev {git_revision()}; BLAS: {blas_description()}"]


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["blas"] = blas_description()
    machine_info["fastlr_revision"] = git_revision()
    machine_info["fastlr_build"] = str(fastlr.get_backend("cpp").build_info())


@pytest.fixture(params=THREADS, ids=lambda t: f"{t}thr")
def threads(request):
    """Run the benchmark with this many threads for fastlr AND for BLAS (no oversubscription)."""
    n = request.param
    previous = fastlr.get_num_threads()
    fastlr.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield n
    finally:
        fastlr.set_num_threads(previous)
