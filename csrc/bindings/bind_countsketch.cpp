// Bindings for the CountSketch kernels (csrc/include/fastlr/countsketch.hpp).
#include "fastlr/countsketch.hpp"

#include "common.hpp"

namespace fastlr::bind {

namespace {

py::array countsketch_dense_py(const py::array& A, const py::array& rows, const py::array& values,
                               index_t m) {
  FASTLR_REQUIRE(m >= 1, "m: must be >= 1, got " + std::to_string(m));
  return dispatch_float(A, "A", [&](auto t) -> py::array {
    using T = decltype(t);
    const auto a = dense_view<T>(A, "A");
    const index_t* r = vector_ptr<index_t>(rows, a.rows, "rows");
    const T* v = vector_ptr<T>(values, a.rows, "values");
    auto out = new_matrix<T>(m, a.cols);
    T* o = out.mutable_data();
    py::gil_scoped_release release;
    const auto nt = call_threads("countsketch_dense", a.rows * a.cols);
    countsketch_dense<T>(a.data, a.rows, a.cols, a.ld, a.col_major, r, v, m, o, nt);
    return out;
  });
}

// CSR (by_rows) or CSC sketch of a sparse n x d matrix.
py::array countsketch_compressed_py(const py::array& indptr, const py::array& indices,
                                    const py::array& data, const py::array& rows,
                                    const py::array& values, index_t m, index_t d, bool by_rows) {
  FASTLR_REQUIRE(m >= 1, "m: must be >= 1, got " + std::to_string(m));
  FASTLR_REQUIRE(d >= 0, "d: must be >= 0");
  const index_t n = rows.ndim() == 1 ? rows.shape(0) : -1;
  const index_t outer = by_rows ? n : d;
  return dispatch_sparse(data, indices, [&](auto t, auto i) -> py::array {
    using T = decltype(t);
    using I = decltype(i);
    const auto a = compressed_view<T, I>(indptr, indices, data, outer);
    const index_t* r = vector_ptr<index_t>(rows, n, "rows");
    const T* v = vector_ptr<T>(values, n, "values");
    auto out = new_matrix<T>(m, d);
    T* o = out.mutable_data();
    py::gil_scoped_release release;
    const auto nt = call_threads(by_rows ? "countsketch_csr" : "countsketch_csc", a.nnz + outer);
    if (by_rows)
      countsketch_csr<T, I>(a.indptr, a.indices, a.data, a.nnz, n, d, r, v, m, o, nt);
    else
      countsketch_csc<T, I>(a.indptr, a.indices, a.data, a.nnz, n, d, r, v, m, o, nt);
    return out;
  });
}

py::array gather_dot_py(const py::array& A, const py::array& rows, const py::array& D) {
  return dispatch_float(A, "A", [&](auto t) -> py::array {
    using T = decltype(t);
    const auto a = dense_view<T>(A, "A");
    const auto dv = dense_view<T>(D, "D");
    FASTLR_REQUIRE(!dv.col_major || dv.rows <= 1, "D: array must be C-contiguous");
    FASTLR_REQUIRE(dv.cols == a.cols, "D: expected " + std::to_string(a.cols) + " columns (A's), got " +
                                   std::to_string(dv.cols));
    const index_t* r = vector_ptr<index_t>(rows, a.rows, "rows");
    py::array_t<T> g(a.rows);
    T* gp = g.mutable_data();
    py::gil_scoped_release release;
    const auto nt = call_threads("countsketch_gather_dot", a.rows * a.cols);
    countsketch_gather_dot<T>(a.data, a.rows, a.cols, a.ld, a.col_major, r, dv.data, dv.rows, gp, nt);
    return g;
  });
}

py::array gather_dot_csr_py(const py::array& indptr, const py::array& indices,
                            const py::array& data, const py::array& rows, const py::array& D) {
  const index_t n = rows.ndim() == 1 ? rows.shape(0) : -1;
  return dispatch_sparse(data, indices, [&](auto t, auto i) -> py::array {
    using T = decltype(t);
    using I = decltype(i);
    const auto a = compressed_view<T, I>(indptr, indices, data, n);
    const auto dv = dense_view<T>(D, "D");
    FASTLR_REQUIRE(!dv.col_major || dv.rows <= 1, "D: array must be C-contiguous");
    const index_t* r = vector_ptr<index_t>(rows, n, "rows");
    py::array_t<T> g(n);
    T* gp = g.mutable_data();
    py::gil_scoped_release release;
    const auto nt = call_threads("countsketch_gather_dot_csr", a.nnz + n);
    countsketch_gather_dot_csr<T, I>(a.indptr, a.indices, a.data, a.nnz, n, dv.cols, r, dv.data, dv.rows,
                                     gp, nt);
    return g;
  });
}

py::tuple countsketch_hash_py(std::uint64_t seed, index_t m, index_t start, index_t stop) {
  FASTLR_REQUIRE(m >= 1 && m <= (index_t(1) << 32), "m: must lie in [1, 2**32], got " + std::to_string(m));
  FASTLR_REQUIRE(start >= 0 && stop >= start, "start, stop: need 0 <= start <= stop");
  const index_t n = stop - start;
  py::array_t<index_t> rows(n);
  py::array_t<double> signs(n);
  index_t* r = rows.mutable_data();
  double* v = signs.mutable_data();
  {
    py::gil_scoped_release release;
    const auto nt = call_threads("countsketch_hash", n);
    countsketch_hash(static_cast<std::uint64_t>(seed), m, start, n, r, v, nt);
  }
  return py::make_tuple(rows, signs);
}

// True when none of x[0, n) is NaN or infinite (np.isfinite(x).all()): x - x is +0 for a finite x and NaN for
// inf or NaN, and a sum with a NaN stays NaN. Eight partial sums, so the loop vectorizes without fast-math
// (20 x 1080 float64: ~3 us; a test of the exponent bits does not vectorize for 64-bit lanes under SSE2: ~16 us).
template <class T>
bool all_finite(const T* x, index_t n) {
  T part[8] = {};
  const index_t whole = n - n % 8;
  for (index_t i = 0; i < whole; i += 8)
    for (int k = 0; k < 8; ++k) part[k] += x[i + k] - x[i + k];
  T total = 0;
  for (index_t i = whole; i < n; ++i) total += x[i] - x[i];
  for (int k = 0; k < 8; ++k) total += part[k];
  return total == 0;
}

// countsketch_seeded_dense's S A for a dense float32/float64 A (m and start checked by the caller); with `finite`,
// also whether S A holds no NaN/inf, checked while it is still in cache. Both seeded dense entries run it.
template <class T>
py::array_t<T> seeded_dense_pass(const py::array& A, std::uint64_t seed, index_t m, index_t start,
                                 bool* finite = nullptr) {
  const auto a = dense_view<T>(A, "A");
  auto out = new_matrix<T>(m, a.cols);
  T* o = out.mutable_data();
  py::gil_scoped_release release;
  const auto nt = call_threads("countsketch_seeded_dense", a.rows * a.cols);
  countsketch_seeded_dense<T>(a.data, a.rows, a.cols, a.ld, a.col_major, seed, m, start, o, nt);
  if (finite != nullptr) *finite = all_finite(o, m * a.cols);
  return out;
}

py::array countsketch_seeded_dense_py(const py::array& A, std::uint64_t seed, index_t m, index_t start) {
  require_seeded(m, start);
  return dispatch_float(A, "A", [&](auto t) -> py::array { return seeded_dense_pass<decltype(t)>(A, seed, m, start); });
}

// The public seeded call in one step (fastlr._matrix.memory.seeded_countsketch: CountSketch(m, n, seed) @ A for an
// ndarray): countsketch_seeded_dense's S A, or None where countsketch_seeded_dense would refuse A (not a 2-D C- or
// F-contiguous float32/float64 array in native byte order) or S A is not finite, so that the caller's general path
// (InMemory, then the same kernel) gives the same result or names the error. One call instead of the Python layer's
// conversion, dispatch and finiteness check, which run with the caches the pass has just flushed.
py::object countsketch_seeded_dense_finite_py(const py::array& A, std::uint64_t seed, index_t m, index_t start) {
  require_seeded(m, start);
  const bool f32 = has_dtype<float>(A);
  if (A.ndim() != 2 || !(f32 || has_dtype<double>(A)) ||
      (A.flags() & (py::array::c_style | py::array::f_style)) == 0)
    return py::none();
  const auto run = [&](auto t) -> py::object {
    bool finite;
    auto out = seeded_dense_pass<decltype(t)>(A, seed, m, start, &finite);
    if (!finite) return py::none();
    return std::move(out);
  };
  return f32 ? run(float{}) : run(double{});
}

// Seeded CSR (by_rows) or CSC sketch of a sparse n x d matrix.
py::array countsketch_seeded_compressed_py(const py::array& indptr, const py::array& indices,
                                           const py::array& data, std::uint64_t seed, index_t m, index_t n,
                                           index_t d, index_t start, bool by_rows) {
  FASTLR_REQUIRE(m >= 1 && m <= (index_t(1) << 32), "m: must lie in [1, 2**32], got " + std::to_string(m));
  FASTLR_REQUIRE(n >= 0 && d >= 0, "n, d: must be >= 0");
  FASTLR_REQUIRE(start >= 0, "start: must be >= 0, got " + std::to_string(start));
  const index_t outer = by_rows ? n : d;
  return dispatch_sparse(data, indices, [&](auto t, auto i) -> py::array {
    using T = decltype(t);
    using I = decltype(i);
    const auto a = compressed_view<T, I>(indptr, indices, data, outer);
    auto out = new_matrix<T>(m, d);
    T* o = out.mutable_data();
    py::gil_scoped_release release;
    const auto nt = call_threads(by_rows ? "countsketch_seeded_csr" : "countsketch_seeded_csc", a.nnz + outer);
    if (by_rows)
      countsketch_seeded_csr<T, I>(a.indptr, a.indices, a.data, a.nnz, n, d, seed, m, start, o, nt);
    else
      countsketch_seeded_csc<T, I>(a.indptr, a.indices, a.data, a.nnz, n, d, seed, m, start, o, nt);
    return out;
  });
}

}  // namespace

void bind_countsketch(py::module_& m) {
  using py::arg;
  m.def("countsketch_hash", &countsketch_hash_py, arg("seed"), arg("m"), arg("start"), arg("stop"),
        "Rows (int64) and signs (float64) of CountSketch columns start .. stop-1 for seed.");
  m.def("countsketch_dense", &countsketch_dense_py, arg("A"), arg("rows"), arg("values"), arg("m"),
        "S @ A for dense A (C- or F-contiguous, float32/float64); returns an m x d array of A's dtype.");
  m.def("countsketch_csr",
        [](const py::array& indptr, const py::array& indices, const py::array& data,
           const py::array& rows, const py::array& values, index_t m, index_t d) {
          return countsketch_compressed_py(indptr, indices, data, rows, values, m, d, true);
        },
        arg("indptr"), arg("indices"), arg("data"), arg("rows"), arg("values"), arg("m"), arg("d"),
        "S @ A for CSR A (n = len(rows) rows, d columns).");
  m.def("countsketch_csc",
        [](const py::array& indptr, const py::array& indices, const py::array& data,
           const py::array& rows, const py::array& values, index_t m, index_t d) {
          return countsketch_compressed_py(indptr, indices, data, rows, values, m, d, false);
        },
        arg("indptr"), arg("indices"), arg("data"), arg("rows"), arg("values"), arg("m"), arg("d"),
        "S @ A for CSC A (n = len(rows) rows, d columns).");
  m.def("countsketch_seeded_dense", &countsketch_seeded_dense_py, arg("A"), arg("seed"), arg("m"),
        arg("start") = 0,
        "S @ A for the seeded CountSketch: countsketch_dense with (rows, values) = countsketch_hash(seed, m, "
        "start, start + n) cast to A's dtype, bit for bit, hashed on the fly.");
  m.def("countsketch_seeded_dense_finite", &countsketch_seeded_dense_finite_py, arg("A"), arg("seed"), arg("m"),
        arg("start") = 0,
        "countsketch_seeded_dense's S @ A when it is finite; None where countsketch_seeded_dense would refuse A "
        "(not a 2-D C- or F-contiguous float32/float64 array) or S @ A holds NaN/inf.");
  m.def("countsketch_seeded_csr",
        [](const py::array& indptr, const py::array& indices, const py::array& data, std::uint64_t seed,
           index_t m, index_t n, index_t d, index_t start) {
          return countsketch_seeded_compressed_py(indptr, indices, data, seed, m, n, d, start, true);
        },
        arg("indptr"), arg("indices"), arg("data"), arg("seed"), arg("m"), arg("n"), arg("d"), arg("start") = 0,
        "S @ A for CSR A (n x d) and the seeded CountSketch (as countsketch_seeded_dense).");
  m.def("countsketch_seeded_csc",
        [](const py::array& indptr, const py::array& indices, const py::array& data, std::uint64_t seed,
           index_t m, index_t n, index_t d, index_t start) {
          return countsketch_seeded_compressed_py(indptr, indices, data, seed, m, n, d, start, false);
        },
        arg("indptr"), arg("indices"), arg("data"), arg("seed"), arg("m"), arg("n"), arg("d"), arg("start") = 0,
        "S @ A for CSC A (n x d) and the seeded CountSketch (as countsketch_seeded_dense).");
  m.def("countsketch_gather_dot", &gather_dot_py, arg("A"), arg("rows"), arg("D"),
        "g[i] = <A[i, :], D[rows[i], :]> for dense A.");
  m.def("countsketch_gather_dot_csr", &gather_dot_csr_py, arg("indptr"), arg("indices"), arg("data"),
        arg("rows"), arg("D"), "g[i] = <A[i, :], D[rows[i], :]> for CSR A (n = len(rows)).");
}

}  // namespace fastlr::bind
