// Bindings for the one-pass product kernels (csrc/include/fastlr/products.hpp).
#include "fastlr/products.hpp"

#include "common.hpp"

namespace fastlr::bind {

namespace {

// A C-contiguous factor with `rows` rows; returns its column count.
template <class T>
index_t factor_cols(const py::array& F, index_t rows, const char* name, const char* rows_of) {
  const auto v = dense_view<T>(F, name);
  FASTLR_REQUIRE(!v.col_major, std::string(name) + ": array must be C-contiguous");
  FASTLR_REQUIRE(v.rows == rows, std::string(name) + ": expected " + std::to_string(rows) + " rows (" + rows_of +
                              "), got " + std::to_string(v.rows));
  return v.cols;
}

template <class T>
const T* factor_ptr(const py::array& F) {
  return static_cast<const T*>(F.data());
}

// Outputs of a pass: Y (n x k) when it runs forward, Z (d x k) when it runs backward.
py::object outputs(RowPass pass, py::array Y, py::array Z) {
  if (pass == RowPass::kForward) return std::move(Y);
  if (pass == RowPass::kBackward) return std::move(Z);
  return py::make_tuple(Y, Z);
}

// The pass over dense A (`kernel`: its Python name, for call_threads). F1 is V (forward) or W (backward only); F2 is U for kBoth.
// keep_y false (kPower only): Z alone, A V is never stored.
py::object dense_pass_py(const char* kernel, RowPass pass, const py::array& A, const py::array& F1, const py::array* F2,
                         bool keep_y = true) {
  return dispatch_float(A, "A", [&](auto t) -> py::object {
    using T = decltype(t);
    const auto a = dense_view<T>(A, "A");
    const T* V = nullptr;
    const T* W = nullptr;
    index_t k;
    if (pass == RowPass::kBackward) {
      k = factor_cols<T>(F1, a.rows, "W", "A's rows");
      W = factor_ptr<T>(F1);
    } else {
      k = factor_cols<T>(F1, a.cols, pass == RowPass::kPower ? "Q" : "V", "A's columns");
      V = factor_ptr<T>(F1);
    }
    if (pass == RowPass::kBoth) {
      const index_t ku = factor_cols<T>(*F2, a.rows, "U", "A's rows");
      FASTLR_REQUIRE(ku == k, "U: expected " + std::to_string(k) + " columns (V's), got " + std::to_string(ku));
      W = factor_ptr<T>(*F2);
    }
    auto Y = new_matrix<T>(has_forward(pass) && keep_y ? a.rows : 0, k);
    auto Z = new_matrix<T>(has_backward(pass) ? a.cols : 0, k);
    T* y = keep_y ? Y.mutable_data() : nullptr;
    T* z = Z.mutable_data();
    {
      py::gil_scoped_release release;
      const auto nt = call_threads(kernel, (has_forward(pass) + has_backward(pass)) * a.rows * a.cols * (k + 16));
      dense_row_pass<T>(pass, a.data, a.rows, a.cols, a.ld, a.col_major, V, W, k, y, z, nt);
    }
    return keep_y ? outputs(pass, Y, Z) : py::object(Z);
  });
}

// The pass over CSR A (n = len(indptr) - 1 rows). d is given for rmatmul, else V's rows.
py::object csr_pass_py(const char* kernel, RowPass pass, const py::array& indptr, const py::array& indices, const py::array& data,
                       const py::array& F1, const py::array* F2, index_t d_given, bool keep_y = true) {
  FASTLR_REQUIRE(indptr.ndim() == 1 && indptr.shape(0) >= 1, "indptr: expected a 1-D array of length n + 1 >= 1");
  const index_t n = indptr.shape(0) - 1;
  return dispatch_sparse(data, indices, [&](auto t, auto i) -> py::object {
    using T = decltype(t);
    using I = decltype(i);
    const auto a = compressed_view<T, I>(indptr, indices, data, n);
    const T* V = nullptr;
    const T* W = nullptr;
    index_t k, d;
    if (pass == RowPass::kBackward) {
      FASTLR_REQUIRE(d_given >= 0, "d: must be >= 0, got " + std::to_string(d_given));
      d = d_given;
      k = factor_cols<T>(F1, n, "W", "A's rows");
      W = factor_ptr<T>(F1);
    } else {
      const auto v = dense_view<T>(F1, pass == RowPass::kPower ? "Q" : "V");
      d = v.rows;
      k = factor_cols<T>(F1, d, pass == RowPass::kPower ? "Q" : "V", "A's columns");
      V = factor_ptr<T>(F1);
    }
    if (pass == RowPass::kBoth) {
      const index_t ku = factor_cols<T>(*F2, n, "U", "A's rows");
      FASTLR_REQUIRE(ku == k, "U: expected " + std::to_string(k) + " columns (V's), got " + std::to_string(ku));
      W = factor_ptr<T>(*F2);
    }
    auto Y = new_matrix<T>(has_forward(pass) && keep_y ? n : 0, k);
    auto Z = new_matrix<T>(has_backward(pass) ? d : 0, k);
    T* y = keep_y ? Y.mutable_data() : nullptr;
    T* z = Z.mutable_data();
    {
      py::gil_scoped_release release;
      const auto nt = call_threads(kernel, (has_forward(pass) + has_backward(pass)) * (a.nnz * k + 32 * n));
      csr_row_pass<T, I>(pass, a.indptr, a.indices, a.data, a.nnz, n, d, V, W, k, y, z, nt);
    }
    return keep_y ? outputs(pass, Y, Z) : py::object(Z);
  });
}

}  // namespace

void bind_products(py::module_& m) {
  using py::arg;
  const auto cap_isa = [](int level) {
    FASTLR_REQUIRE(level >= kIsaBaseline && level <= kIsaAvx512, "level: must be 0, 1 or 2");
    return detail::isa_cap().exchange(level);
  };
  m.def("_cap_isa", cap_isa, arg("level"),
        "Testing and benchmark hook: run every dispatched kernel (product tiles, CountSketch, gd) at most at ISA "
        "`level` (0 baseline x86-64, 1 x86-64-v3 AVX2/FMA, 2 x86-64-v4 AVX-512), process-wide; returns the "
        "previous cap.");
  m.def(
      "_set_cache_sizes",
      [](std::int64_t l2, std::int64_t l3) {
        FASTLR_REQUIRE(l2 > 0 && l3 > 0, "cache sizes: must be positive");
        return py::make_tuple(detail::cache_l2_bytes().exchange(l2), detail::cache_l3_bytes().exchange(l3));
      },
      arg("l2"), arg("l3"),
      "Set the L2 (per core) and L3 sizes in bytes that the CSR kernels' bounds scale with (the two-pass "
      "A^T (A V) band, the padded Z buffer), and the dense AVX2 passes' depth blocks (a factor past L2); fastlr calls it with _caches.read_cache_sizes() on loading the module. "
      "Returns the previous (l2, l3).");
  m.def("_cap_product_isa", cap_isa, arg("level"), "Former name of _cap_isa (the same function).");
  m.def("_kernel_isa", [] { return detail::variant_level(); },
        "The ISA level (0, 1 or 2) of the CountSketch and gd kernels' variant that runs now: the CPU's widest "
        "within _cap_isa's cap; 0 in builds without dispatch (one variant).");
  m.def("_last_kernel_isa", [] { return detail::last_kernel_isa().load(); },
        "Testing hook: the ISA level (0, 1, 2) of the variant the last CountSketch or gd kernel call ran; -1 "
        "before any. Builds without dispatch have one variant, reported as 0.");
  m.def("matmul", [](const py::array& A, const py::array& V) { return dense_pass_py("matmul", RowPass::kForward, A, V, nullptr); },
        arg("A"), arg("V"), "A @ V (n x k) for dense A (C or F order) and C-contiguous V (d x k) of A's dtype.");
  m.def("matmul_csr",
        [](const py::array& indptr, const py::array& indices, const py::array& data, const py::array& V) {
          return csr_pass_py("matmul_csr", RowPass::kForward, indptr, indices, data, V, nullptr, -1);
        },
        arg("indptr"), arg("indices"), arg("data"), arg("V"), "A @ V for CSR A (len(indptr) - 1 rows, V.shape[0] columns).");
  m.def("rmatmul", [](const py::array& A, const py::array& W) { return dense_pass_py("rmatmul", RowPass::kBackward, A, W, nullptr); },
        arg("A"), arg("W"), "A.T @ W (d x k) in one pass over dense A; W is n x k, C-contiguous.");
  m.def("rmatmul_csr",
        [](const py::array& indptr, const py::array& indices, const py::array& data, const py::array& W, index_t d) {
          return csr_pass_py("rmatmul_csr", RowPass::kBackward, indptr, indices, data, W, nullptr, d);
        },
        arg("indptr"), arg("indices"), arg("data"), arg("W"), arg("d"), "A.T @ W for CSR A with d columns.");
  m.def("gd_products",
        [](const py::array& A, const py::array& U, const py::array& V) {
          return dense_pass_py("gd_products", RowPass::kBoth, A, V, &U);
        },
        arg("A"), arg("U"), arg("V"), "(A @ V, A.T @ U) in one pass over dense A.");
  m.def("gd_products_csr",
        [](const py::array& indptr, const py::array& indices, const py::array& data, const py::array& U,
           const py::array& V) { return csr_pass_py("gd_products_csr", RowPass::kBoth, indptr, indices, data, V, &U, -1); },
        arg("indptr"), arg("indices"), arg("data"), arg("U"), arg("V"), "(A @ V, A.T @ U) in one pass over CSR A.");
  m.def("power_step", [](const py::array& A, const py::array& Q) { return dense_pass_py("power_step", RowPass::kPower, A, Q, nullptr); },
        arg("A"), arg("Q"), "(Y, Z) = (A @ Q, A.T @ (A @ Q)) in one pass over dense A.");
  m.def("power_step_csr",
        [](const py::array& indptr, const py::array& indices, const py::array& data, const py::array& Q) {
          return csr_pass_py("power_step_csr", RowPass::kPower, indptr, indices, data, Q, nullptr, -1);
        },
        arg("indptr"), arg("indices"), arg("data"), arg("Q"), "(A @ Q, A.T @ (A @ Q)) in one pass over CSR A.");
  m.def("gram_product",
        [](const py::array& A, const py::array& Q) { return dense_pass_py("gram_product", RowPass::kPower, A, Q, nullptr, false); },
        arg("A"), arg("Q"), "A.T @ (A @ Q) in one pass over dense A (A @ Q is not stored).");
  m.def("gram_product_csr",
        [](const py::array& indptr, const py::array& indices, const py::array& data, const py::array& Q) {
          return csr_pass_py("gram_product_csr", RowPass::kPower, indptr, indices, data, Q, nullptr, -1, false);
        },
        arg("indptr"), arg("indices"), arg("data"), arg("Q"), "A.T @ (A @ Q) in one pass over CSR A (A @ Q is not stored).");
}

}  // namespace fastlr::bind
