"""Error codes shared by the Python-side kernels, mirroring KernelError in csrc/include/fastlr/common.hpp."""

BAD_ROW = 1
BAD_INDEX = 2
BAD_INDPTR = 3

_MESSAGES = {
    BAD_ROW: "rows: every entry must lie in [0, m)",
    BAD_INDEX: "A: a sparse column/row index lies outside the matrix",
    BAD_INDPTR: "A: sparse indptr must start at 0, be non-decreasing and end at nnz",
}


def raise_for(code: int) -> None:
    """Raise the ValueError a kernel's error code stands for (0: no error)."""
    if code:
        raise ValueError(_MESSAGES.get(int(code), "invalid kernel input"))


def check_matching(name: str, array, expected_len: int) -> None:
    """Length check with the same wording as the compiled kernels."""
    if array.ndim != 1 or array.shape[0] != expected_len:
        raise ValueError(f"{name}: expected length {expected_len}, got shape {array.shape}")


def check_compressed(indptr, indices, data, outer: int) -> None:
    """The ends of a CSR/CSC structure with ``outer`` rows (CSR) or columns (CSC): indptr of length outer + 1
    from 0 to nnz, data as long as indices; the kernels check the rest (monotone indptr, indices in range) in
    their pass."""
    check_matching("indptr", indptr, outer + 1)
    check_matching("data", data, len(indices))
    if outer < 0 or indptr[0] != 0 or indptr[-1] != len(indices):
        raise_for(BAD_INDPTR)
