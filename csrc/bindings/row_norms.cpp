// Bindings for the squared-row-norm kernels (csrc/include/fastlr/row_norms.hpp).
//
// A translation unit of its own, outside LTO and last in the link (its name sorts after products_vector.cpp),
// so the other kernels keep their code's place (bench/README.md, fifteenth session, HS).
#include "fastlr/row_norms.hpp"

#include "common.hpp"

namespace fastlr::bind {

namespace {

py::array row_squared_norms_dense_py(const py::array& A) {
  return dispatch_float(A, "A", [&](auto t) -> py::array {
    using T = decltype(t);
    const auto a = dense_view<T>(A, "A");
    py::array_t<double> out(a.rows);
    double* o = out.mutable_data();
    py::gil_scoped_release release;
    const auto nt = call_threads("row_squared_norms_dense", a.rows * a.cols);
    row_squared_norms_dense<T>(a.data, a.rows, a.cols, a.ld, a.col_major, o, nt);
    return out;
  });
}

// CSR (by_rows: n = len(indptr) - 1) or CSC (n rows) A.
py::array row_squared_norms_compressed_py(const py::array& indptr, const py::array& indices, const py::array& data,
                                          index_t n, bool by_rows) {
  FASTLR_REQUIRE(indptr.ndim() == 1 && indptr.shape(0) >= 1, "indptr: expected a 1-D array of length >= 1");
  FASTLR_REQUIRE(n >= 0, "n: must be >= 0, got " + std::to_string(n));
  const index_t outer = indptr.shape(0) - 1;
  FASTLR_REQUIRE(!by_rows || n == outer, "indptr: expected length " + std::to_string(n + 1));
  return dispatch_sparse(data, indices, [&](auto t, auto i) -> py::array {
    using T = decltype(t);
    using I = decltype(i);
    const auto a = compressed_view<T, I>(indptr, indices, data, outer);
    py::array_t<double> out(n);
    double* o = out.mutable_data();
    py::gil_scoped_release release;
    if (by_rows) {
      const auto nt = call_threads("row_squared_norms_csr", a.nnz + n);
      row_squared_norms_csr<T, I>(a.indptr, a.data, a.nnz, n, o, nt);
    } else {
      row_squared_norms_csc<T, I>(a.indptr, a.indices, a.data, a.nnz, n, outer, o);
    }
    return out;
  });
}

}  // namespace

void bind_row_norms(py::module_& m) {
  using py::arg;
  m.def("row_squared_norms_dense", &row_squared_norms_dense_py, arg("A"),
        "||A[i, :]||^2 (float64, n) for dense A (C- or F-contiguous, float32/float64), summed in float64; "
        "bit-identical at every thread count.");
  m.def("row_squared_norms_csr",
        [](const py::array& indptr, const py::array& indices, const py::array& data, index_t n) {
          return row_squared_norms_compressed_py(indptr, indices, data, n, true);
        },
        arg("indptr"), arg("indices"), arg("data"), arg("n"),
        "The squares of each row's stored entries summed (float64, n) for CSR A with n rows (sum duplicates "
        "first).");
  m.def("row_squared_norms_csc",
        [](const py::array& indptr, const py::array& indices, const py::array& data, index_t n) {
          return row_squared_norms_compressed_py(indptr, indices, data, n, false);
        },
        arg("indptr"), arg("indices"), arg("data"), arg("n"),
        "The squares of each row's stored entries summed (float64, n) for CSC A with n rows (sum duplicates "
        "first).");
}

}  // namespace fastlr::bind
