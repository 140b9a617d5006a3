"""InMemory's kernel-or-BLAS choice for dense products (fastlr/_matrix/choice.py)."""

import numpy as np
import pytest
import scipy.sparse as sp

import fastlr
from fastlr._matrix import InMemory, calibration, choice


@pytest.fixture(autouse=True)
def _auto(monkeypatch):
    monkeypatch.delenv("FASTLR_PRODUCT_CHOICE", raising=False)


@pytest.mark.parametrize("level", choice.LEVELS)
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("kind", ["pass", "gram"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_threshold_is_a_column_count(level, order, kind, dtype):
    limit = min(choice.BLAS_MIN_COLUMNS, choice.KERNEL_COLUMNS[level, order, kind, dtype])
    for columns in (1, 10, 20, 60, 63, 64, 127, 128, 500):
        assert choice.use_kernel(kind, columns, np.dtype(dtype), order, level) == (
            choice.KERNEL_MIN_COLUMNS <= columns < limit)


@pytest.mark.parametrize("level", choice.LEVELS)
def test_one_column_runs_blas(monkeypatch, level):
    """One column: BLAS's matrix-vector product for every kind, order and dtype (the kernels ran a one-column
    factor at 0.4-0.7x NumPy's GEMV on a Zen 2, eighteenth session); two columns keep the kernel where the rule
    gives it; FASTLR_PRODUCT_CHOICE=kernel still forces the kernel."""
    assert choice.KERNEL_MIN_COLUMNS == 2
    for kind in ("pass", "matmul", "rmatmul", "gram", "gd"):
        for dtype in (np.float32, np.float64):
            for order in ("C", "F"):
                assert not choice.use_kernel(kind, 1, dtype, order, level)
    assert choice.use_kernel("gram", 2, np.float64, "C", "x86-64-v3")
    assert choice.use_kernel("gd", 2, np.float32, "C", "x86-64-v4")
    monkeypatch.setattr(choice, "_level", level)
    rng = np.random.default_rng(5)
    A = rng.standard_normal((50, 20))
    op = InMemory(A)
    v, w = rng.standard_normal((20, 1)), rng.standard_normal((50, 1))
    for kind in ("matmul", "rmatmul", "gram", "gd"):
        assert not op._kernel_for(kind, 1)
    np.testing.assert_allclose(op.times(v), A @ v, rtol=1e-12)
    np.testing.assert_allclose(op.rtimes(w), A.T @ w, rtol=1e-12)
    np.testing.assert_allclose(op.gram_product(v), A.T @ (A @ v), rtol=1e-12)
    np.testing.assert_allclose(op.gd_products(w, v)[1], A.T @ w, rtol=1e-12)
    monkeypatch.setenv("FASTLR_PRODUCT_CHOICE", "kernel")
    assert op._kernel_for("gram", 1) and op._kernel_for("matmul", 1)


def test_rmatmul_threshold(monkeypatch):
    """``A.T @ W`` alone at x86-64-v3, float32, C order runs the kernel below RMATMUL_COLUMNS (33) only
    (it lost to BLAS at 33, 34 and 36 columns on a Zen 2, bench/README.md, sixteenth session, HB);
    ``A @ V`` and both together ("pass") keep their threshold (40), float64, F order and x86-64-v4 too."""
    assert choice.RMATMUL_COLUMNS["x86-64-v3", "C", "float32"] == 33
    for columns in (8, 32, 33, 36, 39, 40):
        assert choice.use_kernel("rmatmul", columns, np.float32, "C", "x86-64-v3") == (columns < 33)
        assert choice.use_kernel("pass", columns, np.float32, "C", "x86-64-v3") == (columns < 40)
        assert choice.use_kernel("rmatmul", columns, np.float64, "C", "x86-64-v3") == (columns < 40 and columns != 33)
        assert choice.use_kernel("rmatmul", columns, np.float32, "C", "x86-64-v4")
        assert not choice.use_kernel("rmatmul", columns, np.float32, "F", "x86-64-v3")
    monkeypatch.setattr(choice, "_level", "x86-64-v3")
    assert "its A^T W < 33 columns but 28 (float32)" in choice.describe()
    rng = np.random.default_rng(3)
    A = rng.standard_normal((50, 20)).astype(np.float32)
    W = rng.standard_normal((50, 36)).astype(np.float32)
    op = InMemory(A)
    assert op._kernel_for("matmul", 36) and not op._kernel_for("rmatmul", 36) and op._kernel_for("rmatmul", 32)
    np.testing.assert_allclose(op.rtimes(W), A.astype(np.float64).T @ W, rtol=0, atol=1e-4 * 50)
    monkeypatch.setenv("FASTLR_PRODUCT_CHOICE", "kernel")
    assert op._kernel_for("rmatmul", 36)
    monkeypatch.setattr(choice, "_level", "x86-64-v4")
    monkeypatch.delenv("FASTLR_PRODUCT_CHOICE")
    assert "A^T W" not in choice.describe()


def test_rmatmul_blas_widths(monkeypatch):
    """``A.T @ W`` alone at x86-64-v3, C order: float32 28 columns run BLAS (OpenBLAS's Haswell sgemm has no tail
    there and the kernel pads to 32: 0.96-1.01x on a Zen 2, seventeenth session), float64 25, 33 and 41 (0.91-0.96x);
    the widths around them keep the kernel, and so do A @ V, the pair, A^T (A V) and gd, x86-64-v4 and
    FASTLR_PRODUCT_CHOICE=kernel."""
    assert choice.RMATMUL_BLAS_WIDTHS["x86-64-v3", "C", "float32"] == {28}
    assert choice.RMATMUL_BLAS_WIDTHS["x86-64-v3", "C", "float64"] == {25, 33, 41}
    for columns in range(8, 40):
        assert choice.use_kernel("rmatmul", columns, np.float32, "C", "x86-64-v3") == (columns < 33 and columns != 28)
        assert choice.use_kernel("rmatmul", columns, np.float64, "C", "x86-64-v3") == (columns not in (25, 33))
        for kind in ("pass", "gram", "gd"):
            assert choice.use_kernel(kind, columns, np.float32, "C", "x86-64-v3")
            assert choice.use_kernel(kind, columns, np.float64, "C", "x86-64-v3")
        assert choice.use_kernel("rmatmul", columns, np.float32, "C", "x86-64-v4")
        assert choice.use_kernel("rmatmul", columns, np.float64, "C", "x86-64-v4")
    monkeypatch.setattr(choice, "_level", "x86-64-v3")
    assert "its A^T W < 40 columns but 25, 33 (float64)" in choice.describe()
    monkeypatch.setattr(choice, "_calibrated", lambda *a, **k: None)  # the table's rule, whatever this machine measured
    rng = np.random.default_rng(4)
    A = rng.standard_normal((60, 30)).astype(np.float32)
    W = rng.standard_normal((60, 28)).astype(np.float32)
    op = InMemory(A)
    assert not op._kernel_for("rmatmul", 28) and op._kernel_for("rmatmul", 27) and op._kernel_for("matmul", 28)
    np.testing.assert_allclose(op.rtimes(W), A.astype(np.float64).T @ W, rtol=0, atol=1e-4 * 60)
    monkeypatch.setenv("FASTLR_PRODUCT_CHOICE", "kernel")
    assert op._kernel_for("rmatmul", 28)


def test_measured_rule():
    # bench/README.md, "Fifth session: kernel vs BLAS choice" (the sixth session re-measured
    # x86-64-v3 with 6-row AVX2 tiles: the same thresholds)
    assert choice.use_kernel("pass", 60, np.float32, "C", "x86-64-v4")
    assert not choice.use_kernel("pass", 128, np.float64, "C", "x86-64-v4")
    assert choice.use_kernel("gram", 20, np.float64, "C", "x86-64-v3")
    assert not choice.use_kernel("gram", 60, np.float64, "C", "x86-64-v3")
    assert not choice.use_kernel("pass", 60, np.float32, "C", "x86-64-v3")
    assert not choice.use_kernel("gram", 64, np.float64, "C", "x86-64-v3")
    assert not choice.use_kernel("pass", 10, np.float32, "C", "baseline")
    assert not choice.use_kernel("pass", 10, np.float64, "F", "x86-64-v4")
    assert choice.use_kernel("gram", 20, np.float64, "F", "x86-64-v4")
    assert not choice.use_kernel("gram", 20, np.float32, "F", "x86-64-v4")


@pytest.fixture
def caches(monkeypatch):
    """Zen 4's caches (1 MiB L2, 32 MiB L3), whatever this machine has."""
    monkeypatch.setattr(choice, "_cache_sizes", (1 << 20, 32 << 20))


def test_factor_past_the_cache_runs_blas(caches):
    # bench/README.md, "Twelfth session: wide matrices": wide C-order A, kernel / BLAS by the factor's bytes
    v4, v3 = "x86-64-v4", "x86-64-v3"
    assert choice.factor_fits(1080, 128, np.float64, v4)  # 1.1 MB: past L2, within L3 / 8
    assert choice.factor_fits(5760, 60, np.float64, v4)  # 2.8 MB (won 1.4-1.6x)
    assert choice.factor_fits(100000, 16, np.float64, v4)  # 12.8 MB, 128-byte rows (won 1.8-3.1x)
    assert choice.factor_fits(100000, 32, np.float32, v4)  # 12.8 MB, 128-byte rows (won 1.5-1.8x)
    assert not choice.factor_fits(100000, 40, np.float32, v4)  # 16 MB (0.7-1.1x)
    assert not choice.factor_fits(20000, 50, np.float64, v4)  # 8 MB, 400-byte rows (gd_products 0.48x)
    assert not choice.factor_fits(100000, 60, np.float64, v4)  # 48 MB (0.2-0.3x)
    assert choice.factor_fits(1080, 60, np.float64, v3)  # 0.5 MB: within L2 at any width
    assert choice.factor_fits(20000, 20, np.float32, v3)  # 1.6 MB, 20 columns (won 1.4-1.5x)
    assert choice.factor_fits(100000, 10, np.float32, v3)  # 4 MB, 10 columns (won 1.4-1.5x)
    assert not choice.factor_fits(100000, 10, np.float64, v3)  # 8 MB (gd_products 0.72x)
    assert not choice.factor_fits(5760, 40, np.float64, v3)  # 1.8 MB at 40 columns (0.87-1.02x)
    # float64 at one thread: depth blocks past L2 (nineteenth session: 1.05-1.29x at 32-40 columns)
    assert choice.factor_fits(5760, 39, np.float64, v3)
    assert not choice.factor_fits(5760, 39, np.float64, v3, threads=2)
    assert choice.factor_fits(20000, 31, np.float32, v3)  # 2.5 MB
    assert not choice.factor_fits(20000, 32, np.float32, v3)  # float32 keeps CACHE_COLUMNS (lost at 33, 36, 40)
    assert not choice.factor_fits(20000, 60, np.float32, v3)  # 4.8 MB at 60 columns (0.4-0.7x)
    # two threads: each keeps its own Z, and BLAS gains more from the second core
    assert choice.factor_fits(100000, 10, np.float32, v4, threads=2)  # 4 MB, 40-byte rows (won 1.1-1.7x)
    assert choice.factor_fits(20000, 16, np.float64, v4, threads=2)  # 2.56 MB, 128 bytes (won 1.9-2.8x)
    assert not choice.factor_fits(100000, 16, np.float32, v4, threads=2)  # 6.4 MB (A^T A V 0.85-0.91x)
    assert not choice.factor_fits(20000, 40, np.float32, v4, threads=2)  # 3.2 MB, 160 bytes (0.69-0.87x)
    assert not choice.factor_fits(20000, 20, np.float64, v3, threads=2)  # 3.2 MB (0.73-0.89x)
    assert choice.factor_fits(100000, 16, np.float32, v4, threads=1)
    # the cap applies on top of the column threshold, in the table's rule and the calibrated one
    assert choice.use_kernel("gram", 20, np.float64, "C", v4)
    assert choice.use_kernel("gram", 20, np.float64, "C", v4, factor_rows=5760)
    assert not choice.use_kernel("gram", 20, np.float64, "C", v4, factor_rows=100000)
    assert not choice.use_kernel("gram", 20, np.float64, "F", v4, factor_rows=100000)
    assert not choice.use_kernel("pass", 60, np.float32, "C", v4, factor_rows=100000)
    assert choice.use_kernel("gd", 100, np.float64, "C", v4, factor_rows=300)  # "gd" at v4: the size only
    # below v4, "gd" follows the "pass" threshold (the same two products)
    assert not choice.use_kernel("gd", 10, np.float64, "C", "baseline", factor_rows=300)
    assert not choice.use_kernel("gd", 10, np.float32, "F", v3, factor_rows=300)
    assert choice.use_kernel("gd", 10, np.float64, "C", v3, factor_rows=300)
    assert not choice.use_kernel("gd", 100, np.float64, "C", v3, factor_rows=300)
    assert not choice.use_kernel("gd", 50, np.float64, "C", v4, factor_rows=20000)
    assert choice.use_kernel("gram", 16, np.float32, "C", v4, factor_rows=100000)
    assert not choice.use_kernel("gram", 16, np.float32, "C", v4, factor_rows=100000, threads=2)


def test_factor_cap_routes_inmemory_products(monkeypatch, caches):
    monkeypatch.setattr(choice, "_level", "x86-64-v4")
    rng = np.random.default_rng(1)
    narrow = InMemory(rng.standard_normal((6, 400)))
    assert narrow._kernel_for("gram", 20)
    monkeypatch.setattr(choice, "_cache_sizes", (1 << 10, 16 << 10))  # 400 x 20 float64: 64 KB past both
    assert not narrow._kernel_for("gram", 20) and not narrow._kernel_for("matmul", 20)
    A = narrow.A
    V = rng.standard_normal((400, 20))
    np.testing.assert_allclose(narrow.power_product(20, 1)(V), A.T @ (A @ V), rtol=1e-12, atol=1e-12)
    U = rng.standard_normal((6, 20))
    AV, ATU = narrow.gd_products(U, V)  # BLAS here
    assert AV.flags.c_contiguous and ATU.flags.c_contiguous
    np.testing.assert_allclose(AV, A @ V, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ATU, A.T @ U, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="U, V"):
        narrow.gd_products(U[:5], V)
    monkeypatch.setenv("FASTLR_PRODUCT_CHOICE", "kernel")  # the override still forces the kernel
    assert narrow._kernel_for("gram", 20)
    AV2, ATU2 = narrow.gd_products(U, V)
    np.testing.assert_allclose(AV2, AV, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ATU2, ATU, rtol=1e-12, atol=1e-12)


def test_cache_sizes_are_read_or_defaulted():
    l2, l3 = choice.cache_sizes()
    assert 64 << 10 <= l2 <= 64 << 20 and l2 <= l3 <= 4 << 30


@pytest.mark.parametrize("mode, expected", [("kernel", True), ("blas", False), (" BLAS ", False), ("", None)])
def test_environment_override(monkeypatch, mode, expected):
    monkeypatch.setenv("FASTLR_PRODUCT_CHOICE", mode)
    for level in choice.LEVELS:
        for columns in (1, 2, 500):
            got = choice.use_kernel("pass", columns, np.float64, "C", level)
            assert got == (expected if expected is not None else 1 < columns < 128 and level != "baseline")
    assert mode.strip().lower() in choice.describe() or mode == ""


def test_bad_values(monkeypatch):
    monkeypatch.setenv("FASTLR_PRODUCT_CHOICE", "fast")
    with pytest.raises(ValueError, match="FASTLR_PRODUCT_CHOICE: unknown choice 'fast'"):
        choice.use_kernel("pass", 10, np.float64, "C")
    assert "invalid" in choice.describe()
    with pytest.raises(ValueError, match="FASTLR_PRODUCT_CHOICE"):
        InMemory(np.ones((4, 3))).times(np.ones((3, 2)))
    monkeypatch.delenv("FASTLR_PRODUCT_CHOICE")
    with pytest.raises(ValueError, match="kind"):
        choice.use_kernel("both", 10, np.float64, "C")
    with pytest.raises(ValueError, match="order"):
        choice.use_kernel("pass", 10, np.float64, "K")
    with pytest.raises(ValueError, match="level"):
        choice.use_kernel("pass", 10, np.float64, "C", "x86-64-v5")


def test_isa_level_is_known():
    assert choice.isa_level() in choice.LEVELS


def test_isa_level_follows_the_cap(isa_level):
    """Under an ISA cap the product choice follows the capped level's rule (the kernels' own level),
    as it would on a CPU of that level; builds without dispatch keep the x86-64-v4 rule."""
    from fastlr import _core

    dispatching = _core.build_info()["isa"] in choice.LEVELS
    assert choice.isa_level() == (choice.LEVELS[isa_level] if dispatching else "x86-64-v4")


@pytest.mark.parametrize("mode", ["auto", "kernel", "blas"])
@pytest.mark.parametrize("level", choice.LEVELS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
def test_products_agree_whichever_path_runs(monkeypatch, mode, level, dtype, order):
    monkeypatch.setenv("FASTLR_PRODUCT_CHOICE", mode)
    monkeypatch.setattr(choice, "_level", level)
    rng = np.random.default_rng(0)
    A64 = rng.standard_normal((300, 70))
    A = np.asarray(A64.astype(dtype), order=order)
    op = InMemory(A)
    tol = 1e-4 if dtype == np.float32 else 1e-11
    for r in (3, 64, 130):
        V = rng.standard_normal((70, r))
        W = rng.standard_normal((300, r))
        Ad = A.astype(np.float64)
        for got, want in ((op.times(V), Ad @ V), (op.rtimes(W), Ad.T @ W),
                          (op.power_product(r, 1)(V), Ad.T @ (Ad @ V))):
            assert got.dtype == dtype and got.flags.c_contiguous
            np.testing.assert_allclose(got, want, rtol=0, atol=tol * np.abs(want).max())


def test_sparse_runs_the_kernel_from_two_columns(monkeypatch):
    """Sparse A: the one-pass kernel for every product with >= 2 columns (FASTLR_PRODUCT_CHOICE is
    about dense BLAS), SciPy's matvec for one column (ARPACK's products), both against NumPy."""
    monkeypatch.setenv("FASTLR_PRODUCT_CHOICE", "blas")
    for fmt in ("csr", "csc"):
        A = sp.random(50, 30, density=0.2, format=fmt, random_state=0)
        op = InMemory(A)
        assert op._kernel_for("pass", 200) and op._kernel_for("gram", 2) and op._kernel_for("matmul", 2)
        assert not op._kernel_for("pass", 1) and not op._kernel_for("gram", 1) and not op._kernel_for("rmatmul", 1)
        for k in (1, 2, 4):
            V = np.random.default_rng(k).standard_normal((30, k))
            W = np.random.default_rng(k).standard_normal((50, k))
            np.testing.assert_allclose(op.times(V), A.toarray() @ V, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(op.rtimes(W), A.toarray().T @ W, rtol=1e-12, atol=1e-12)
            P, Z = op.power_pass(V)
            np.testing.assert_allclose(Z, A.toarray().T @ (A.toarray() @ V), rtol=1e-12, atol=1e-12)
            assert op.times(V).shape == (50, k) and op.rtimes(W).shape == (30, k)


def test_sparse_short_rows_run_on_scipy():
    """A @ V and A.T @ W over rows of fewer than 4 nonzeros on average (of A for CSR, of A^T for
    CSC) run on SciPy, and so does A.T A V of CSC A (two passes over A^T's rows); A.T A V of CSR
    A on the kernel from two columns; every route agrees with NumPy."""
    from fastlr._matrix.choice import SPARSE_MIN_ROW_NNZ, use_sparse_kernel

    rng = np.random.default_rng(8)
    n, d = 400, 30
    A = sp.random(n, d, density=1.5 / d, format="csr", random_state=rng)  # ~1.5 a row, ~20 a column
    assert A.nnz < SPARSE_MIN_ROW_NNZ * n and A.nnz >= SPARSE_MIN_ROW_NNZ * d
    assert not use_sparse_kernel("matmul", 8, "csr", A.shape, A.nnz)
    assert use_sparse_kernel("matmul", 8, "csc", A.shape, A.nnz)
    assert use_sparse_kernel("gram", 2, "csr", A.shape, A.nnz)
    assert not use_sparse_kernel("gram", 1, "csc", A.shape, A.nnz)
    # CSC A^T A V is two passes over A^T's rows: the short-row rule holds for it too
    assert use_sparse_kernel("gram", 8, "csc", A.shape, A.nnz)  # ~20 a column
    assert not use_sparse_kernel("gram", 8, "csc", A.T.shape, A.nnz)  # ~1.5 a column
    assert use_sparse_kernel("gram", 8, "csr", A.T.shape, A.nnz)  # one pass over rows of ~20
    with pytest.raises(ValueError, match="kind"):
        use_sparse_kernel("other", 8, "csr", A.shape, A.nnz)
    Ad = A.toarray()
    for dtype in (np.float32, np.float64):
        tol = 1e-4 if dtype == np.float32 else 1e-12
        for fmt in ("csr", "csc"):
            op = InMemory(A.asformat(fmt).astype(dtype))
            short = fmt == "csr"
            for k in (1, 2, 5, 8):
                assert op._kernel_for("matmul", k) == op._kernel_for("rmatmul", k) == (k > 1 and not short)
                assert op._kernel_for("gram", k) == (k > 1)
                assert InMemory(A.T.asformat(fmt).astype(dtype))._kernel_for("gram", k) == (k > 1 and fmt == "csr")
                V = rng.standard_normal((d, k)).astype(dtype)
                W = rng.standard_normal((n, k)).astype(dtype)
                AV, ATW, ATAV = Ad @ V, Ad.T @ W, Ad.T @ (Ad @ V)
                results = [(op.times(V), AV), (op.matmul(V), AV), (op.rtimes(W), ATW), (op.rmatmul(W), ATW),
                           (op.gram_product(V), ATAV), (op.power_step(V)[1], ATAV), (op.power_pass(V)[1], ATAV),
                           (op.power_step(V)[0], AV)]
                for got, want in results:
                    assert got.dtype == dtype and got.flags.c_contiguous and got.shape == want.shape
                    np.testing.assert_allclose(got, want, rtol=0, atol=tol * max(np.abs(want).max(), 1.0))
            with pytest.raises(ValueError, match="rows"):
                op.matmul(np.ones((d + 1, 2), dtype=dtype))
            with pytest.raises(ValueError, match="rows"):
                op.rmatmul(np.ones((n + 1, 2), dtype=dtype))


def test_sparse_rule_at_baseline(caches):
    """A.T (A V) of CSR A at baseline: SciPy over rows of 4 to 5 nonzeros while V (rows past 32 bytes)
    takes 3 L3 / 16 to 11 L3 / 16 bytes (6-22 MiB here; narrow rows from L3 / 4); the kernel elsewhere and
    at the AVX2 levels (bench/README.md, thirteenth session, HT2: 5 a row lost 0.53-0.97x there;
    fourteenth session on a 16 MiB L3: 0.66-0.96x at 4.6-10.6 MB)."""
    from fastlr._matrix.choice import use_sparse_kernel

    base, v3, v4 = "baseline", "x86-64-v3", "x86-64-v4"
    sq = (50000, 50000)
    five, two, twenty = 250_000, 100_000, 1_000_000
    f64, f32 = np.float64, np.float32
    assert not use_sparse_kernel("gram", 17, "csr", sq, five, level=base, dtype=f64)  # 6.5 MiB (0.6-0.7x)
    assert not use_sparse_kernel("gram", 40, "csr", sq, five, level=base, dtype=f64)  # 15.3 MiB (0.9x)
    assert use_sparse_kernel("gram", 12, "csr", sq, five, level=base, dtype=f64)  # 4.6 MiB: under 6 MiB
    assert not use_sparse_kernel("gram", 16, "csr", sq, five, level=base, dtype=f64)  # 6.1 MiB (0.7-0.9x)
    assert not use_sparse_kernel("gram", 56, "csr", sq, five, level=base, dtype=f64)  # 21.4 MiB: under 22 MiB
    assert use_sparse_kernel("gram", 60, "csr", sq, five, level=base, dtype=f64)  # 22.9 MiB (1.1-1.3x from 18)
    assert use_sparse_kernel("gram", 8, "csr", sq, five, level=base, dtype=f64)  # 3.1 MiB
    assert not use_sparse_kernel("gram", 33, "csr", sq, five, level=base, dtype=f32)  # 6.3 MiB (0.6-0.9x)
    assert use_sparse_kernel("gram", 120, "csr", sq, five, level=base, dtype=f32)  # 22.9 MiB
    assert not use_sparse_kernel("gram", 17, "csr", sq, five, level=base)  # dtype: float64 by default
    assert use_sparse_kernel("gram", 17, "csr", sq, twenty, level=base, dtype=f64)  # 20 a row (1.1x)
    assert use_sparse_kernel("gram", 17, "csr", sq, two, level=base, dtype=f64)  # 2 a row: one pass (1.3x)
    assert use_sparse_kernel("gram", 17, "csr", (100000, 100000), 550_000, level=base, dtype=f64)  # 5.5 a row
    assert not use_sparse_kernel("gram", 17, "csr", (100000, 100000), 549_999, level=base, dtype=f64)
    assert use_sparse_kernel("gram", 10, "csr", (120000, 120000), 720_000, level=base, dtype=f64)  # 6 a row (1.0-1.3x)
    assert not use_sparse_kernel("gram", 17, "csr", (100000, 100000), 400_000, level=base, dtype=f64)  # 4 a row
    assert use_sparse_kernel("gram", 33, "csr", (100000, 100000), 500_000, level=base, dtype=f64)  # 25 MiB
    # rows of at most 32 bytes (the kernels' narrow rows) keep the kernel: they won in the band (1.0-1.8x)
    big = (200000, 200000)
    assert use_sparse_kernel("gram", 6, "csr", big, 1_000_000, level=base, dtype=f32)  # 24-byte rows, 4.6 MiB
    assert use_sparse_kernel("gram", 4, "csr", big, 1_000_000, level=base, dtype=f64)  # 32-byte rows, 6.1 MiB
    assert not use_sparse_kernel("gram", 5, "csr", big, 1_000_000, level=base, dtype=f64)  # 40-byte rows, 7.6 MiB
    assert not use_sparse_kernel("gram", 6, "csr", (350000, 350000), 1_750_000, level=base, dtype=f32)  # 8 MiB
    # the baseline scatter pass (CSR A.T @ W, CSC A @ V) past 128-byte factor rows: SciPy (tied, the same loop)
    assert not use_sparse_kernel("rmatmul", 17, "csr", sq, twenty, level=base, dtype=f64)
    assert not use_sparse_kernel("matmul", 33, "csc", sq, twenty, level=base, dtype=f32)
    assert use_sparse_kernel("rmatmul", 16, "csr", sq, twenty, level=base, dtype=f64)
    assert use_sparse_kernel("rmatmul", 17, "csc", sq, twenty, level=base, dtype=f64)
    assert use_sparse_kernel("matmul", 17, "csr", sq, twenty, level=base, dtype=f64)
    for level in (v3, v4):
        assert use_sparse_kernel("rmatmul", 64, "csr", sq, twenty, level=level, dtype=f64)
    for level in (v3, v4):
        assert use_sparse_kernel("gram", 17, "csr", sq, five, level=level, dtype=f64)
    # the other products keep the short-row rule at every level
    for level in (base, v3, v4):
        assert use_sparse_kernel("gram", 17, "csc", sq, five, level=level, dtype=f64)
        assert use_sparse_kernel("matmul", 17, "csr", sq, five, level=level, dtype=f64)
        assert not use_sparse_kernel("rmatmul", 16, "csr", sq, two, level=level, dtype=f64)
        assert not use_sparse_kernel("gram", 1, "csr", sq, five, level=level, dtype=f64)
    with pytest.raises(ValueError, match="level"):
        use_sparse_kernel("gram", 17, "csr", sq, five, level="avx2")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_baseline_routes_agree(monkeypatch, dtype):
    """The level picks the route (isa_level() by default); both routes give A.T (A V) and A V as NumPy
    does. Caches shrunk so that a small V falls in the band."""
    from fastlr._matrix.choice import use_sparse_kernel

    monkeypatch.setattr(choice, "_cache_sizes", (1024, 256 * 1024))  # band: 48 KiB to 176 KiB
    rng = np.random.default_rng(3)
    n, d, k = 3000, 1500, 10  # rows of 40 / 80 bytes
    A = sp.random(n, d, density=5.0 / d, format="csr", random_state=rng, dtype=np.float64).astype(dtype)
    assert 4 * n <= A.nnz < 5.5 * n  # 4 to 5 nonzeros a row
    nbytes = d * k * np.dtype(dtype).itemsize
    assert 48 * 1024 <= nbytes <= 176 * 1024
    op = InMemory(A)
    Ad = A.toarray().astype(np.float64)
    V = rng.standard_normal((d, k)).astype(dtype)
    want_Y, want_Z = Ad @ V, Ad.T @ (Ad @ V)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    routes = []
    for level in choice.LEVELS:
        monkeypatch.setattr(choice, "_level", level)
        assert use_sparse_kernel("gram", k, "csr", A.shape, A.nnz, dtype=dtype) == (level != "baseline")
        routes.append(op._kernel_for("gram", k))
        Y, Z = op.power_pass(V)
        for got, want in ((op.gram_product(V), want_Z), (Z, want_Z), (Y, want_Y)):
            assert got.dtype == dtype and got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=0, atol=tol * np.abs(want).max())
    assert routes == [level != "baseline" for level in choice.LEVELS]
    # the band's ends: V of 3 L3 / 16 and of 11 L3 / 16 bytes (64-byte rows) are in it
    kk = 64 // np.dtype(dtype).itemsize
    for cols, inside in ((767, False), (768, True), (2816, True), (2817, False)):
        assert use_sparse_kernel("gram", kk, "csr", (n, cols), 5 * n, "baseline", dtype) == (not inside)


def test_sparse_scatter_rule_same_at_v3_and_v4(caches):
    """x86-64-v3 and x86-64-v4 run the same CSR code, and the rule is the same at both: the scatter pass
    (CSR A.T @ W, CSC A @ V) over rows of 4-5 nonzeros keeps the kernel at every factor width and Z size
    (bench/README.md, thirteenth session, HV: timed fairly, float32 k = 5-6 0.97-1.72x SciPy at both levels,
    float64 k = 3 0.77-1.08x); rows of fewer than 4 nonzeros go to SciPy at every level."""
    from fastlr._matrix.choice import use_sparse_kernel

    big, nnz = (200000, 200000), 1_000_000
    f64, f32 = np.float64, np.float32
    for level in choice.LEVELS:
        for k, dtype in ((2, f64), (3, f64), (4, f64), (3, f32), (5, f32), (6, f32), (7, f32)):
            for fmt in ("csr", "csc"):
                for kind in ("matmul", "rmatmul", "pass", "gram"):
                    assert use_sparse_kernel(kind, k, fmt, big, nnz, level=level, dtype=dtype)
                assert not use_sparse_kernel("rmatmul", k, fmt, big, 3 * 200000, level=level, dtype=dtype)
        assert use_sparse_kernel("matmul", 3, "csc", (131072, 100), 500, level=level, dtype=f64)  # Z 4 MiB padded
        assert use_sparse_kernel("rmatmul", 3, "csr", big, 1_099_999, level=level)  # float64 by default
        assert not use_sparse_kernel("rmatmul", 1, "csr", big, nnz, level=level, dtype=f64)  # one column


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_scatter_kernel_at_every_level(monkeypatch, isa_level, dtype, fmt):
    """The scatter pass over rows of 4-5 nonzeros at the padded widths (float64 k = 3, 7; float32 k = 5, 6:
    Z's row tail in two or three pieces) runs the kernel at every level, with the kernels capped at that
    level, and gives NumPy's A @ V, A.T @ W and A.T (A V). Caches shrunk so that a small Z passes 4 L2."""
    monkeypatch.setattr(choice, "_cache_sizes", (1024, 256 * 1024))
    monkeypatch.setattr(choice, "_level", choice.LEVELS[isa_level])
    rng = np.random.default_rng(4)
    n = d = 500  # 5 nonzeros a row and a column
    A = sp.random(n, d, density=5.0 / d, format=fmt, random_state=rng, dtype=np.float64).astype(dtype)
    rows = n if fmt == "csr" else d
    assert 4 * rows <= A.nnz < 5.5 * rows  # the kernel's rows hold 4 to 5 nonzeros
    op = InMemory(A)
    Ad = A.toarray().astype(np.float64)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    for k in ((3, 7) if dtype == np.float64 else (5, 6)):
        V = rng.standard_normal((d, k)).astype(dtype)
        W = rng.standard_normal((n, k)).astype(dtype)
        assert op._kernel_for("matmul", k) and op._kernel_for("rmatmul", k)
        for got, want in ((op.times(V), Ad @ V), (op.rtimes(W), Ad.T @ W), (op.gram_product(V), Ad.T @ (Ad @ V))):
            assert got.dtype == dtype and got.shape == want.shape and got.flags.c_contiguous
            np.testing.assert_allclose(got, want, rtol=0, atol=tol * np.abs(want).max())


def test_small_products_run_on_one_thread(monkeypatch):
    from fastlr._matrix import memory

    seen = []
    op = InMemory(np.ones((100, 50)))
    monkeypatch.setattr(InMemory, "_matmul", lambda self, V: seen.append(fastlr.get_num_threads()) or self.A @ V)
    with fastlr.thread_limit(2):
        op.matmul(np.ones((50, 3)))  # 15,000 multiply-adds
        monkeypatch.setattr(memory, "SMALL_WORK", 0)
        op.matmul(np.ones((50, 3)))
    assert seen == [1, 2]


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_products_count_their_nonzeros_as_dearer_work(fmt, monkeypatch):
    """A sparse gathering pass (CSR A @ V, CSC A.T @ W) counts SPARSE_ENTRY_WORK multiply-adds per nonzero:
    400,000 nonzeros times 8 columns (3.2M, far under SMALL_WORK) take ~2 ms a thread and run on fastlr's
    threads (they ran on one, at half the speed two gave, up to 45 ms). A one-sided scattering pass keeps the
    plain count (each thread sums into a Z of its own; right after a BLAS call two threads ran up to 1.21x one's
    time), and so does a small product."""
    from fastlr._matrix import memory

    seen = []
    record = lambda self, F: seen.append(fastlr.get_num_threads()) or np.zeros(1)  # noqa: E731
    monkeypatch.setattr(InMemory, "_matmul", record)
    monkeypatch.setattr(InMemory, "_rmatmul", record)
    big = sp.random(40000, 2000, density=0.005, format=fmt, random_state=np.random.default_rng(0))
    small = sp.random(300, 200, density=0.01, format=fmt, random_state=np.random.default_rng(0))
    assert memory.SPARSE_ENTRY_WORK * big.nnz * 8 >= memory.SMALL_WORK > big.nnz * 8
    gather, scatter = ("matmul", "rmatmul") if fmt == "csr" else ("rmatmul", "matmul")
    factor = {"matmul": np.ones((2000, 8)), "rmatmul": np.ones((40000, 8))}
    with fastlr.thread_limit(2):
        getattr(InMemory(big), gather)(factor[gather])
        getattr(InMemory(big), scatter)(factor[scatter])
        getattr(InMemory(small), gather)(np.ones((200, 8)) if gather == "matmul" else np.ones((300, 8)))
    assert seen == [2, 1, 1]


def test_sparse_two_sided_passes_share_threads_by_nonzeros_per_row_of_z(monkeypatch):
    """CSR A^T (A Q) gathers, then scatters into a d x k Z: on fastlr's threads where Z gets SCATTER_SHARED_ENTRIES
    nonzeros a row (2000 columns, 200 a row: two threads 0.48-0.73x one's time), on one where it gets few (40000
    columns, 10 a row: with few a row two lost to one), both far under SMALL_WORK by the plain count."""
    from fastlr._matrix import memory

    seen = []
    monkeypatch.setattr(InMemory, "_gram_product", lambda self, Q: seen.append(fastlr.get_num_threads()) or Q)
    dense_rows = sp.random(40000, 2000, density=0.005, format="csr", random_state=np.random.default_rng(1))
    sparse_rows = sp.random(2000, 40000, density=0.005, format="csr", random_state=np.random.default_rng(1))
    assert 2 * dense_rows.nnz * 8 < memory.SMALL_WORK
    assert 40000 * memory.SCATTER_SHARED_ENTRIES > sparse_rows.nnz >= 2000 * memory.SCATTER_SHARED_ENTRIES
    with fastlr.thread_limit(2):
        InMemory(dense_rows).gram_product(np.ones((2000, 8)))
        InMemory(sparse_rows).gram_product(np.ones((40000, 8)))
    assert seen == [2, 1]


def test_dense_blas_route_threads(monkeypatch):
    """The dense BLAS route (``times``, ``rtimes``, ``power_pass``) runs BLAS on one thread below SMALL_WORK
    multiply-adds (a power pass counts both products), on fastlr's count otherwise; results are BLAS's."""
    from fastlr._matrix import memory

    seen = []
    real = memory.blas_call  # each BLAS route runs through it once, with the count it runs BLAS at
    monkeypatch.setattr(memory, "blas_call", lambda n, *a: seen.append(n) or real(n, *a))
    monkeypatch.setenv("FASTLR_PRODUCT_CHOICE", "blas")
    rng = np.random.default_rng(0)
    A = rng.standard_normal((200, 100))
    V, W = rng.standard_normal((100, 4)), rng.standard_normal((200, 4))
    op = InMemory(A)
    with fastlr.thread_limit(2):
        np.testing.assert_allclose(op.times(V), A @ V, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(op.rtimes(W), A.T @ W, rtol=1e-12, atol=1e-12)
        P, Z = op.power_pass(V)
        np.testing.assert_allclose(Z, A.T @ (A @ V), rtol=1e-12, atol=1e-12)
        assert seen == [1, 1, 1]
        monkeypatch.setattr(memory, "SMALL_WORK", 2 * 200 * 100 * 4)  # a power pass's work: not below it
        op.times(V), op.rtimes(W), op.power_pass(V), op.gram_product(V)
        assert seen[3:] == [1, 1, 2, 2]
    with fastlr.thread_limit(1):
        monkeypatch.setattr(memory, "SMALL_WORK", 0)
        op.times(V)
    assert seen[-1] == 1


def test_dtype_name_is_numpys():
    """``choice.dtype_name`` (the tables' keys without NumPy's Python code) gives ``np.dtype(x).name``."""
    for x in (np.float32, np.float64, np.dtype("float32"), np.dtype("<f8"), "float32", "float64", "f4",
              np.int64, np.dtype(">f4"), float):
        assert choice.dtype_name(x) == np.dtype(x).name, x


def test_operand_order_keys_the_choice(monkeypatch):
    """``InMemory`` reads A's order once; the choice gets "F" for F-order A (which runs BLAS for A @ V at every
    level) and "C" for C-order A."""
    keys = []
    real = choice.use_kernel
    monkeypatch.setattr("fastlr._matrix.memory.use_kernel", lambda *a, **k: keys.append(a[3]) or real(*a, **k))
    routes = {}  # not the routes earlier tests' operands of this shape left (InMemory._route's memo)
    monkeypatch.setattr(choice, "routes", routes)
    monkeypatch.setattr("fastlr._matrix.memory.routes", routes)
    A = np.random.default_rng(0).standard_normal((300, 200))
    V = np.ones((200, 5))
    for M in (A, np.asfortranarray(A)):
        np.testing.assert_allclose(InMemory(M).times(V), A @ V, rtol=1e-12, atol=1e-12)
    assert keys == ["C", "F"]


def test_matmul_columns(monkeypatch):
    """``A @ V`` alone at x86-64-v3, C order, one thread, A past L3 runs the kernel below MATMUL_COLUMNS (float32 49,
    float64 45: it beat OpenBLAS's Haswell GEMM 1.1-1.5x at 40-48 / 40-44 columns on 5760 x 1080 and 100000 x 500 on
    a Zen 2, seventeenth session) where the pair's threshold is the table's (40); an A within L3 (2000 x 1000 read
    0.97-1.01x there), two threads, a calibration that lowered the pair, F order and baseline keep the pair's."""
    assert choice.MATMUL_COLUMNS == {("x86-64-v3", "C", "float32"): 49, ("x86-64-v3", "C", "float64"): 45}
    big = 2 * choice.cache_sizes()[1] + 1
    for columns in (8, 39, 40, 44, 45, 48, 49, 60):
        assert choice.use_kernel("matmul", columns, np.float32, "C", "x86-64-v3", matrix_bytes=big) == (columns < 49)
        assert choice.use_kernel("matmul", columns, np.float64, "C", "x86-64-v3", matrix_bytes=big) == (columns < 45)
        assert choice.use_kernel("matmul", columns, np.float32, "C", "x86-64-v3") == (columns < 40)
        assert choice.use_kernel("matmul", columns, np.float32, "C", "x86-64-v3",
                                 matrix_bytes=choice.cache_sizes()[1]) == (columns < 40)
        assert choice.use_kernel("matmul", columns, np.float32, "C", "x86-64-v3", threads=2,
                                 matrix_bytes=big) == (columns < 40)
        assert choice.use_kernel("pass", columns, np.float32, "C", "x86-64-v3", matrix_bytes=big) == (columns < 40)
        assert not choice.use_kernel("matmul", columns, np.float32, "F", "x86-64-v3", matrix_bytes=big)
        assert not choice.use_kernel("matmul", columns, np.float32, "C", "baseline", matrix_bytes=big)
    static = choice.static_thresholds("x86-64-v3")
    lowered = calibration.Table("x86-64-v3", {**static, ("C", "pass", "float32"): 32}, "measured")
    monkeypatch.setattr(choice, "_calibrated", lambda *a, **k: lowered)
    monkeypatch.setattr(choice, "isa_level", lambda: "x86-64-v3")
    assert choice.use_kernel("matmul", 31, np.float32, "C", matrix_bytes=big)
    assert not choice.use_kernel("matmul", 32, np.float32, "C", matrix_bytes=big)
    assert choice.use_kernel("matmul", 44, np.float64, "C", matrix_bytes=big)
    assert not choice.use_kernel("matmul", 45, np.float64, "C", matrix_bytes=big)
    raised = calibration.Table("x86-64-v3", {**static, ("C", "pass", "float32"): 64}, "measured")
    monkeypatch.setattr(choice, "_calibrated", lambda *a, **k: raised)
    assert choice.use_kernel("matmul", 63, np.float32, "C", matrix_bytes=big)
    assert not choice.use_kernel("matmul", 64, np.float32, "C", matrix_bytes=big)
    monkeypatch.undo()
    monkeypatch.delenv("FASTLR_PRODUCT_CHOICE", raising=False)
    monkeypatch.setattr(choice, "_level", "x86-64-v3")
    assert "its A V < 49 columns past L3 (float32), its A V < 45 columns past L3 (float64)" in choice.describe()
    rng = np.random.default_rng(5)
    A = rng.standard_normal((300, 200)).astype(np.float32)
    V = rng.standard_normal((200, 44)).astype(np.float32)
    op = InMemory(A)
    with fastlr.thread_limit(1):
        assert not op._kernel_for("matmul", 44)  # 240 KB: within L3
        monkeypatch.setattr(choice, "_cache_sizes", (1 << 16, 1 << 17))  # a 128 KiB L3: A (240 KB) is past it
        assert op._kernel_for("matmul", 44) and not op._kernel_for("rmatmul", 44) and not op._kernel_for("gram", 44)
        np.testing.assert_allclose(op.times(V), A.astype(np.float64) @ V, rtol=0, atol=1e-4 * 200)
    with fastlr.thread_limit(2):
        assert not op._kernel_for("matmul", 44)


def test_rmatmul_blas_widths_follow_the_measured_layout(monkeypatch):
    """Float64 25, 33 and 41 columns run BLAS for its swapped layout's speed there: where this machine's
    calibration measured NumPy's layout faster at that width (``blas_swap`` False), the kernel runs instead."""
    monkeypatch.setattr(choice, "_level", "x86-64-v3")
    monkeypatch.setattr(choice, "_calibrated", lambda *a, **k: None)  # the table's thresholds
    shape = {"factor_rows": 1080, "matrix_bytes": 5760 * 1080 * 8}  # 5760 x 1080: sums of 5760
    depths = []
    for swap, kernel in ((None, False), (True, False), (False, True)):
        monkeypatch.setattr(choice, "blas_swap", lambda dtype, columns, depth, swap=swap: depths.append(depth) or swap)
        assert choice.use_kernel("rmatmul", 33, np.float64, "C", **shape) == kernel
        assert choice.use_kernel("rmatmul", 25, np.float64, "C", **shape) == kernel
        assert choice.use_kernel("rmatmul", 34, np.float64, "C", **shape)
        assert not choice.use_kernel("rmatmul", 28, np.float32, "C", **shape)  # float32's 28: sgemm, no layout
        assert not choice.use_kernel("rmatmul", 33, np.float64, "C")  # A's shape not given: the table
    assert set(depths) == {5760}
    assert not choice.use_kernel("rmatmul", 33, np.float64, "C", level="x86-64-v3")  # a level pinned: the table


def test_info_names_the_rmatmul_blas_widths_the_measured_layout_keeps(monkeypatch):
    """``fastlr info`` lists float64's RMATMUL_BLAS_WIDTHS only where they run BLAS: where the calibration measured
    NumPy's layout faster at their width mod 8, ``use_kernel`` sends them to the kernel, and so must the line."""
    monkeypatch.setattr(choice, "_level", "x86-64-v3")
    for swapped in (frozenset({1}), frozenset({0})):
        tab = calibration.Table("x86-64-v3", choice.static_thresholds("x86-64-v3"), "measured",
                                layouts={"float64": swapped})
        monkeypatch.setattr(choice, "_calibrated", lambda *a, tab=tab, **k: tab)
        assert ("its A^T W < 40 columns but 25, 33 (float64)" in choice.describe()) == (1 in swapped)
        assert choice.use_kernel("rmatmul", 33, np.float64, "C", factor_rows=1080,
                                 matrix_bytes=5760 * 1080 * 8) == (1 not in swapped)


def test_f_order_float64_gram_below_17_columns_at_v3():
    """F-order float64 ``A.T (A V)`` at x86-64-v3: the kernel below 17 columns (it lost 0.82-0.97x at 17-30 on a
    Zen 2, eighteenth session); x86-64-v4 keeps 64."""
    for columns in (2, 16, 17, 20, 25, 31):
        assert choice.use_kernel("gram", columns, np.float64, "F", "x86-64-v3") == (columns < 17)
        assert choice.use_kernel("gram", columns, np.float64, "F", "x86-64-v4")


@pytest.mark.parametrize("n, d, kernel_below", [(5760, 1080, 17), (2880, 1440, 17), (100000, 500, 17),
                                                  (2000, 2000, 9), (1080, 5760, 9), (1000, 4000, 9),
                                                  (500, 20000, 0)])
def test_short_f_order_gram_columns(monkeypatch, n, d, kernel_below):
    """x86-64-v3, F-order float64 ``A.T (A V)``: the kernel below 17 columns where A is at least twice as tall as
    wide, below 9 where it is not, and never where the gather of whole cache lines (d x 64 bytes) passes L2
    (``SHORT_F_COLUMNS``; a Zen 2 measured 0.83-0.98x NumPy at 12-16 columns on 2000 x 2000 to 1080 x 5760 and
    0.56-0.71x on 500 x 20000, nineteenth session). C order and the other kinds keep their rules."""
    monkeypatch.setattr(choice, "_cache_sizes", (512 << 10, 16 << 20))
    for columns in (2, 8, 9, 12, 16, 17):
        got = choice.use_kernel("gram", columns, np.float64, "F", "x86-64-v3", factor_rows=d,
                                matrix_bytes=8 * n * d)
        assert got == (columns < kernel_below), columns
        assert choice.use_kernel("gram", columns, np.float64, "C", "x86-64-v3", factor_rows=d,
                                 matrix_bytes=8 * n * d) == choice.use_kernel(
            "gram", columns, np.float64, "C", "x86-64-v3", factor_rows=d)
    assert choice.use_kernel("gram", 12, np.float64, "F", "x86-64-v3")  # A's size unknown: the table's 17


def test_past_l2_widths_keep_the_kernel(monkeypatch):
    """x86-64-v3, C order, float64: ``A @ V``, ``A.T @ W``, ``A.T (A V)`` and gd at 19-31 columns keep the kernel
    where the d x l factor passes L2 (1080 x 5760), as where it fits (5760 x 1080): the AVX2 passes sweep such a
    factor in depth blocks (products_split_depth.cpp, nineteenth session), where the eighteenth session's kernel
    lost 0.68-0.92x at 21-22 and 25-30 columns and ran BLAS there (choice.PAST_L2_BLAS_WIDTHS, removed since).
    ``A.T @ W`` at 25 columns keeps its BLAS layout (RMATMUL_BLAS_WIDTHS)."""
    monkeypatch.setattr(choice, "_cache_sizes", (512 << 10, 16 << 20))
    monkeypatch.setattr(choice, "_level", "x86-64-v3")
    assert "past L2 (choice.PAST_L2_BLAS_WIDTHS)" not in choice.describe()
    for columns in range(19, 32):
        for rows in (5760, 1080):
            assert choice.use_kernel("matmul", columns, np.float64, "C", "x86-64-v3", factor_rows=rows)
            assert choice.use_kernel("rmatmul", columns, np.float64, "C", "x86-64-v3", factor_rows=rows) == (
                columns != 25)
            assert choice.use_kernel("matmul", columns, np.float32, "C", "x86-64-v3", factor_rows=rows)
            for kind in ("gram", "gd"):
                assert choice.use_kernel(kind, columns, np.float64, "C", "x86-64-v3", factor_rows=rows)
