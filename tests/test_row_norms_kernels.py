"""The squared-row-norm kernels (``row_squared_norms_*``, HeavyRowSketch's pass) against NumPy, every backend."""

import numpy as np
import pytest
import scipy.sparse as sp
from helpers import messy_csr

import fastlr
from fastlr._kernels import reference as ref
from fastlr._matrix import InMemory

SHAPES = [(0, 5), (5, 0), (0, 0), (1, 1), (7, 3), (9, 37), (300, 8), (1030, 61)]


def _numpy(A) -> np.ndarray:
    """||A[i, :]||^2 written out: a dense float64 copy (a sparse A's duplicates summed), squared, row sums."""
    dense = A.toarray() if sp.issparse(A) else A
    return (np.asarray(dense, dtype=np.float64) ** 2).sum(axis=1)


def _check(got, A):
    expected = _numpy(A)
    assert got.dtype == np.float64 and got.shape == (A.shape[0],)
    # float32 entries square exactly in float64: both sides sum float64 squares, in different orders
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=0)


def test_reference_matches_numpy():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((40, 13))
    _check(ref.row_squared_norms_dense(A), A)
    S = sp.csr_matrix(A * (rng.random(A.shape) < 0.3))
    _check(ref.row_squared_norms_csr(S.indptr, S.indices, S.data, 40), S)
    C = S.tocsc()
    _check(ref.row_squared_norms_csc(C.indptr, C.indices, C.data, 40), C)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("n,d", SHAPES)
def test_dense(backend, dtype, order, n, d):
    rng = np.random.default_rng(n * 100 + d)
    A = np.asarray(rng.standard_normal((n, d)) * rng.uniform(0.1, 10, (n, 1)), dtype=dtype, order=order)
    _check(fastlr.get_backend(backend).row_squared_norms_dense(A), A)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("n,d", [(1, 1), (60, 30), (30, 60), (500, 20)])
def test_sparse(backend, dtype, fmt, index_dtype, n, d):
    rng = np.random.default_rng(n + d)
    A = sp.csr_matrix(rng.standard_normal((n, d)) * (rng.random((n, d)) < 0.3)).astype(dtype)
    A = A.tocsc() if fmt == "csc" else A
    A.indptr, A.indices = A.indptr.astype(index_dtype), A.indices.astype(index_dtype)
    got = getattr(fastlr.get_backend(backend), f"row_squared_norms_{fmt}")(A.indptr, A.indices, A.data, n)
    _check(got, A)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("n,d", [(0, 4), (4, 0), (6, 3)])
def test_sparse_empty(backend, fmt, n, d):
    A = (sp.csr_matrix((n, d)) if fmt == "csr" else sp.csc_matrix((n, d)))
    got = getattr(fastlr.get_backend(backend), f"row_squared_norms_{fmt}")(A.indptr, A.indices, A.data, n)
    np.testing.assert_array_equal(got, np.zeros(n))


def test_rows_of_every_length_up_to_the_end_of_data(backend):
    """CSR rows of 0-40 entries in every order (short rows and long ones, summed as dense rows), the last row
    ending at nnz (the kernels' tails)."""
    rng = np.random.default_rng(3)
    for last in list(range(14)) + [15, 16, 17, 23, 24, 25, 40]:
        counts = np.concatenate([rng.permutation(np.repeat(np.arange(41), 2)), [last]])
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        data = rng.standard_normal(indptr[-1]) * 3
        A = sp.csr_matrix((data, rng.integers(0, 20, indptr[-1]), indptr), shape=(len(counts), 20))
        # duplicates are squared apart here: the expected sums are of the stored entries' squares
        expected = np.add.reduceat(np.append(data ** 2, 0.0), indptr[:-1]) * (counts > 0)
        got = fastlr.get_backend(backend).row_squared_norms_csr(A.indptr, A.indices, A.data, len(counts))
        np.testing.assert_allclose(got, expected, rtol=1e-13, atol=0)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_bad_structure_is_refused(backend, fmt):
    kernels = fastlr.get_backend(backend)
    fn = getattr(kernels, f"row_squared_norms_{fmt}")
    data = np.ones(3)
    with pytest.raises(ValueError, match="indptr"):
        fn(np.array([0, 2, 1, 3], np.int32), np.zeros(3, np.int32), data, 3)  # decreasing
    with pytest.raises(ValueError, match="indptr"):
        fn(np.array([0, 1, 2, 4], np.int32), np.zeros(3, np.int32), data, 3)  # ends past nnz
    if fmt == "csc":
        with pytest.raises(ValueError, match="index"):
            fn(np.array([0, 1, 2, 3], np.int32), np.array([0, 1, 3], np.int32), data, 3)  # row 3 of 3


@pytest.mark.parametrize("fmt", ["dense-C", "dense-F", "csr", "csc"])
def test_operand_sums_duplicates_before_squaring(backend, fmt):
    """InMemory.row_squared_norms: a non-canonical sparse A (duplicates, unsorted) squared after summing."""
    rng = np.random.default_rng(5)
    A = messy_csr(200, 30, 0.2, rng)
    assert not A.has_canonical_format
    forms = {"dense-C": A.toarray(), "dense-F": np.asfortranarray(A.toarray()), "csr": A, "csc": A.tocsc()}
    op = InMemory(forms[fmt], backend=backend)
    assert op.sparse != fmt.startswith("dense") and (not op.sparse or not op.A.has_canonical_format)
    got = op.row_squared_norms()
    _check(got, A)


def test_every_isa_level(isa_level, dtype):
    """Each ISA variant against NumPy, the variant that ran following the cap."""
    rng = np.random.default_rng(7)
    core = fastlr.get_backend("cpp")
    for order in "CF":
        A = np.asarray(rng.standard_normal((301, 45)), dtype=dtype, order=order)
        _check(core.row_squared_norms_dense(A), A)
        assert core._last_kernel_isa() == isa_level
    mask = rng.random((301, 45)) < 0.2
    mask[7] = True  # a long row
    S = sp.csr_matrix(rng.standard_normal((301, 45)) * mask).astype(dtype)
    _check(core.row_squared_norms_csr(S.indptr, S.indices, S.data, 301), S)
    assert core._last_kernel_isa() == isa_level
    C = S.tocsc()
    _check(core.row_squared_norms_csc(C.indptr, C.indices, C.data, 301), C)
    assert core._last_kernel_isa() == isa_level
