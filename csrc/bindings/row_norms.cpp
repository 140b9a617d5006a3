// Bindings for the squared-row-norm kernels (csrc/include/fastlr/row_norms.hpp) and the CountSketch passes that
// also return them (sketch_energy.hpp: their instantiations here, so the plain sketch's keep their place).
//
// A translation unit of its own, outside LTO and last in the link (its name sorts after products_vector.cpp),
// so the other kernels keep their code's place (bench/README.md, fifteenth session, HS).
#include "fastlr/row_norms.hpp"
#include "fastlr/sketch_energy.hpp"

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

// (S A, energy) for dense A: `pass(a, out, energy, threads)` runs countsketch_(seeded_)dense_energy; `kernel`:
// the plain pass's name for call_threads (the same work).
template <class T, class Pass>
py::tuple sketch_energy_py(const py::array& A, index_t m, const char* kernel, const Pass& pass) {
  const auto a = dense_view<T>(A, "A");
  auto out = new_matrix<T>(m, a.cols);
  py::array_t<double> energy(a.rows);
  T* o = out.mutable_data();
  double* e = energy.mutable_data();
  {
    py::gil_scoped_release release;
    const auto nt = call_threads(kernel, a.rows * a.cols);  // alive through the pass: it stamps the call's end
    pass(a, o, e, nt);
  }
  return py::make_tuple(out, energy);
}

py::tuple countsketch_dense_energy_py(const py::array& A, const py::array& rows, const py::array& values, index_t m) {
  FASTLR_REQUIRE(m >= 1, "m: must be >= 1, got " + std::to_string(m));
  return dispatch_float(A, "A", [&](auto t) -> py::tuple {
    using T = decltype(t);
    const index_t n = dense_view<T>(A, "A").rows;
    const index_t* r = vector_ptr<index_t>(rows, n, "rows");
    const T* v = vector_ptr<T>(values, n, "values");
    return sketch_energy_py<T>(A, m, "countsketch_dense", [&](const auto& a, T* o, double* e, int nt) {
      countsketch_dense_energy<T>(a.data, a.rows, a.cols, a.ld, a.col_major, r, v, m, o, e, nt);
    });
  });
}

py::tuple countsketch_seeded_dense_energy_py(const py::array& A, std::uint64_t seed, index_t m, index_t start) {
  require_seeded(m, start);
  return dispatch_float(A, "A", [&](auto t) -> py::tuple {
    using T = decltype(t);
    return sketch_energy_py<T>(A, m, "countsketch_seeded_dense", [&](const auto& a, T* o, double* e, int nt) {
      countsketch_seeded_dense_energy<T>(a.data, a.rows, a.cols, a.ld, a.col_major, seed, m, start, o, e, nt);
    });
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
  m.def("countsketch_dense_energy", &countsketch_dense_energy_py, arg("A"), arg("rows"), arg("values"), arg("m"),
        "(countsketch_dense(A, rows, values, m), row_squared_norms_dense(A)), both bit for bit, from one pass "
        "over a C-contiguous A (F-contiguous: the two passes).");
  m.def("countsketch_seeded_dense_energy", &countsketch_seeded_dense_energy_py, arg("A"), arg("seed"), arg("m"),
        arg("start") = 0,
        "(countsketch_seeded_dense(A, seed, m, start), row_squared_norms_dense(A)), both bit for bit, from one "
        "pass over a C-contiguous A (F-contiguous: the two passes).");
}

}  // namespace fastlr::bind
