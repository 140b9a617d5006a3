// Helpers shared by the binding files: thread settings and NumPy argument checks.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "fastlr/common.hpp"

namespace fastlr::bind {

namespace py = pybind11;

/// Threads a kernel called from this Python thread may use: the thread-local
/// limit when one is set, else the process-wide setting.
int kernel_threads();

/// The threads a kernel call may use (call_threads's answer), an int to the kernel. When it goes out of
/// scope, after the kernel, it notes the end of the call for the cold-pool rule (busy_threads.cpp): bind
/// it to a name that lives through the call (`const auto nt = call_threads(...)`); converting the
/// temporary at once would note the end before the kernel ran, so that does not compile.
class CallThreads {
 public:
  explicit CallThreads(int n) : n_(n) {}
  CallThreads(const CallThreads&) = delete;
  CallThreads& operator=(const CallThreads&) = delete;
  ~CallThreads();
  operator int() const& { return n_; }
  operator int() const&& = delete;

 private:
  int n_;
};

/// Threads for a call of `kernel` (its Python name) with `work` units of work: kernel_threads(), or
/// fewer when the busy-thread check (busy_threads.cpp) applies to this kernel and call and finds
/// other threads of this process running now, or finds this thread's OpenMP pool idle long enough
/// that its worker would start late (the cold-pool rule).
CallThreads call_threads(const char* kernel, index_t work);

// The busy-thread check's settings and testing hooks (busy_threads.cpp, bound in module.cpp).
int busy_threads(int nt, double budget_ns);
bool set_busy_check(bool on, double calls_per_check, int every_listed);
bool busy_check_enabled();
bool busy_check_supported();
int last_call_threads();
std::vector<std::string> busy_checked_kernels(bool applied_only);
double busy_check_min_ns();
double busy_check_max_ns();
void spin_for(double seconds, long ticket);
void stop_spins(long ticket);
double set_cold_pool(double after_ms, double advance_ms);
double cold_pool_after_ms();

/// The seeded CountSketch's arguments, as every seeded entry checks them (the counter hash maps onto [0, m)).
inline void require_seeded(index_t m, index_t start) {
  FASTLR_REQUIRE(m >= 1 && m <= (index_t(1) << 32), "m: must lie in [1, 2**32], got " + std::to_string(m));
  FASTLR_REQUIRE(start >= 0, "start: must be >= 0, got " + std::to_string(start));
}

/// A 2-D float array in C or F order, as a kernel sees it.
template <class T>
struct DenseView {
  const T* data;
  index_t rows, cols, ld;
  bool col_major;
};

inline std::string dtype_name(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

/// True when a's dtype is equivalent to T's (native byte order). Compares by
/// value, not identity: unpickled arrays carry equal but distinct dtype objects.
template <class T>
bool has_dtype(const py::array& a) {
  return py::isinstance<py::array_t<T>>(a);
}

/// View a 2-D array of dtype T that is C- or F-contiguous (the Python layer
/// makes copies explicitly; kernels never copy behind the caller's back).
template <class T>
DenseView<T> dense_view(const py::array& a, const char* name) {
  FASTLR_REQUIRE(a.ndim() == 2, std::string(name) + ": expected a 2-D array, got ndim=" + std::to_string(a.ndim()));
  FASTLR_REQUIRE(has_dtype<T>(a), std::string(name) + ": expected dtype " +
                               py::str(py::dtype::of<T>()).cast<std::string>() + ", got " + dtype_name(a));
  const index_t r = a.shape(0), c = a.shape(1);
  const bool c_contig = (a.flags() & py::array::c_style) != 0;
  const bool f_contig = (a.flags() & py::array::f_style) != 0;
  FASTLR_REQUIRE(c_contig || f_contig, std::string(name) + ": array must be C- or F-contiguous");
  const bool col_major = !c_contig;  // prefer row-major when both (e.g. one row or column)
  const index_t ld = col_major ? std::max<index_t>(r, 1) : std::max<index_t>(c, 1);
  return {static_cast<const T*>(a.data()), r, c, ld, col_major};
}

/// Pointer to a contiguous 1-D array of dtype T and length n.
template <class T>
const T* vector_ptr(const py::array& a, index_t n, const char* name) {
  FASTLR_REQUIRE(a.ndim() == 1, std::string(name) + ": expected a 1-D array");
  FASTLR_REQUIRE(has_dtype<T>(a), std::string(name) + ": expected dtype " +
                               py::str(py::dtype::of<T>()).cast<std::string>() + ", got " + dtype_name(a));
  FASTLR_REQUIRE(a.shape(0) == n, std::string(name) + ": expected length " + std::to_string(n) + ", got " +
                               std::to_string(a.shape(0)));
  FASTLR_REQUIRE((a.flags() & py::array::c_style) != 0, std::string(name) + ": array must be contiguous");
  return static_cast<const T*>(a.data());
}

/// A compressed sparse matrix's three arrays with index type I, value type T.
template <class T, class I>
struct CompressedView {
  const I* indptr;
  const I* indices;
  const T* data;
  index_t nnz;
};

template <class T, class I>
CompressedView<T, I> compressed_view(const py::array& indptr, const py::array& indices,
                                     const py::array& data, index_t outer) {
  FASTLR_REQUIRE(indptr.ndim() == 1 && indptr.shape(0) == outer + 1,
          "indptr: expected length " + std::to_string(outer + 1));
  const index_t nnz = indices.ndim() == 1 ? indices.shape(0) : -1;
  return {vector_ptr<I>(indptr, outer + 1, "indptr"), vector_ptr<I>(indices, nnz, "indices"),
          vector_ptr<T>(data, nnz, "data"), nnz};
}

/// Call f(T{}) with T = float or double according to `a`'s dtype.
template <class F>
auto dispatch_float(const py::array& a, const char* name, F&& f) {
  if (has_dtype<float>(a)) return f(float{});
  if (has_dtype<double>(a)) return f(double{});
  throw py::type_error(std::string(name) + ": dtype must be float32 or float64, got " + dtype_name(a));
}

/// Call f(T{}, I{}) for float/double values and int32/int64 sparse indices.
template <class F>
auto dispatch_sparse(const py::array& data, const py::array& indices, F&& f) {
  return dispatch_float(data, "data", [&](auto t) {
    using T = decltype(t);
    if (has_dtype<std::int32_t>(indices)) return f(T{}, std::int32_t{});
    if (has_dtype<std::int64_t>(indices)) return f(T{}, std::int64_t{});
    throw py::type_error("indices: dtype must be int32 or int64, got " + dtype_name(indices));
  });
}

template <class T>
py::array_t<T> new_matrix(index_t r, index_t c) {
  return py::array_t<T>({r, c});
}

void bind_countsketch(py::module_& m);
void bind_products(py::module_& m);
void bind_gd(py::module_& m);
void bind_vector(py::module_& m);
void bind_row_norms(py::module_& m);

}  // namespace fastlr::bind
