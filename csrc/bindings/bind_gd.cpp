// Bindings for the gradient-descent kernels (csrc/include/fastlr/gd.hpp).
#include "fastlr/gd.hpp"

#include <cmath>

#include "common.hpp"

namespace fastlr::bind {

namespace {

/// A C-contiguous 2-D array of dtype T with `cols` columns (any number of rows when rows < 0).
template <class T>
const T* factor_ptr(const py::array& a, index_t rows, index_t cols, const char* name) {
  const auto v = dense_view<T>(a, name);
  FASTLR_REQUIRE(!v.col_major || v.rows <= 1 || v.cols <= 1, std::string(name) + ": array must be C-contiguous");
  FASTLR_REQUIRE(rows < 0 || v.rows == rows, std::string(name) + ": expected " + std::to_string(rows) + " rows, got " +
                                          std::to_string(v.rows));
  FASTLR_REQUIRE(v.cols == cols, std::string(name) + ": expected " + std::to_string(cols) + " columns, got " +
                              std::to_string(v.cols));
  return v.data;
}

py::tuple masked_grad_py(const py::array& indptr, const py::array& indices, const py::array& data,
                         const py::array& U, const py::array& V, double l2) {
  FASTLR_REQUIRE(U.ndim() == 2 && V.ndim() == 2, "U, V: expected 2-D arrays");
  FASTLR_REQUIRE(std::isfinite(l2) && l2 >= 0, "l2: must be finite and >= 0");
  const index_t m = U.shape(0), n = V.shape(0), k = U.shape(1);
  return dispatch_sparse(data, indices, [&](auto t, auto i) -> py::tuple {
    using T = decltype(t);
    using I = decltype(i);
    const auto a = compressed_view<T, I>(indptr, indices, data, m);
    const T* u = factor_ptr<T>(U, m, k, "U");
    const T* v = factor_ptr<T>(V, n, k, "V");
    auto gu = new_matrix<T>(m, k);
    auto gv = new_matrix<T>(n, k);
    T* gup = gu.mutable_data();
    T* gvp = gv.mutable_data();
    double loss;
    {
      py::gil_scoped_release release;
      const auto nt = call_threads("gd_masked_grad", a.nnz * k);
      loss = gd_masked_grad<T, I>(a.indptr, a.indices, a.data, a.nnz, m, n, k, u, v, static_cast<T>(l2), gup,
                                  gvp, nt);
    }
    return py::make_tuple(gu, gv, loss);
  });
}

OptimizerKind parse_kind(const std::string& kind) {
  if (kind == "sgd") return OptimizerKind::kSgd;
  if (kind == "momentum") return OptimizerKind::kMomentum;
  if (kind == "nesterov") return OptimizerKind::kNesterov;
  if (kind == "adam") return OptimizerKind::kAdam;
  throw std::invalid_argument("kind: unknown optimizer '" + kind + "'; choose sgd, momentum, nesterov or adam");
}

void optimizer_step_py(py::array param, const py::array& grad, py::array state, const std::string& kind_name,
                       const py::sequence& hyper) {
  const OptimizerKind kind = parse_kind(kind_name);
  FASTLR_REQUIRE(py::len(hyper) == 5, "hyper: expected (lr, beta1, beta2, eps, step)");
  const OptimizerHyper h{hyper[0].cast<double>(), hyper[1].cast<double>(), hyper[2].cast<double>(),
                         hyper[3].cast<double>(), hyper[4].cast<double>()};
  FASTLR_REQUIRE(param.writeable(), "param: array must be writeable");
  FASTLR_REQUIRE(state.writeable(), "state: array must be writeable");
  FASTLR_REQUIRE((param.flags() & py::array::c_style) != 0, "param: array must be C-contiguous");
  FASTLR_REQUIRE((grad.flags() & py::array::c_style) != 0, "grad: array must be C-contiguous");
  FASTLR_REQUIRE((state.flags() & py::array::c_style) != 0, "state: array must be C-contiguous");
  const index_t size = param.size();
  FASTLR_REQUIRE(grad.ndim() == param.ndim() && grad.size() == size, "grad: expected the shape of param");
  for (py::ssize_t d = 0; d < param.ndim(); ++d)
    FASTLR_REQUIRE(grad.shape(d) == param.shape(d), "grad: expected the shape of param");
  const int nstate = optimizer_state_count(kind);
  FASTLR_REQUIRE(state.ndim() == param.ndim() + 1 && state.shape(0) == nstate && state.size() == nstate * size,
          "state: expected shape (" + std::to_string(nstate) + ", *param.shape) for optimizer " + kind_name);
  for (py::ssize_t d = 0; d < param.ndim(); ++d)
    FASTLR_REQUIRE(state.shape(d + 1) == param.shape(d), "state: expected shape (n_state, *param.shape)");
  dispatch_float(param, "param", [&](auto t) {
    using T = decltype(t);
    FASTLR_REQUIRE(has_dtype<T>(grad), "grad: expected the dtype of param, got " + dtype_name(grad));
    FASTLR_REQUIRE(has_dtype<T>(state), "state: expected the dtype of param, got " + dtype_name(state));
    T* p = static_cast<T*>(param.mutable_data());
    const T* g = static_cast<const T*>(grad.data());
    T* s = static_cast<T*>(state.mutable_data());
    py::gil_scoped_release release;
    const auto nt = call_threads("optimizer_step", size);
    optimizer_step<T>(p, g, s, size, kind, h, nt);
  });
}

}  // namespace

void bind_gd(py::module_& m) {
  using py::arg;
  m.def("gd_masked_grad", &masked_grad_py, arg("indptr"), arg("indices"), arg("data"), arg("U"), arg("V"),
        arg("l2"),
        "(grad_U, grad_V, loss) of 1/2 sum over the stored entries of CSR A (m = len(U) rows, n = len(V) "
        "columns) of (u_i . v_j - a_ij)^2 + l2/2 (|U|^2 + |V|^2).");
  m.def("optimizer_step", &optimizer_step_py, arg("param"), arg("grad"), arg("state"), arg("kind"), arg("hyper"),
        "In-place fused update of param and state: kind 'sgd' | 'momentum' | 'nesterov' | 'adam'; "
        "hyper = (lr, beta1, beta2, eps, step); state has shape (n_state, *param.shape), n_state 0, 1, 1, 2.");
}

}  // namespace fastlr::bind
