// One-pass products of a matrix A (n x d) with thin factors (k columns):
//   matmul       Y = A V                      V: d x k
//   rmatmul      Z = A^T W                    W: n x k
//   gd_products  (A V, A^T U) in one pass     U: n x k, V: d x k
//   power_step   Y = A Q, Z = A^T Y in one pass
// for dense A (row- or column-major) and CSR A. Every kernel is one "row pass":
// for each row a_i, optionally y_i = a_i V (forward) and Z += a_i^T w_i
// (backward), where w_i is a given row or the y_i just computed.
#pragma once

#include <cstring>
#include <type_traits>

#include "fastlr/common.hpp"
#include "fastlr/countsketch.hpp"  // sparse error codes, detail::row_span

namespace fastlr {

/// Which halves of the row pass a kernel runs.
enum class RowPass : int {
  kForward = 1,   // Y[i] = a_i V
  kBackward = 2,  // Z += a_i^T W[i]
  kBoth = 3,      // both, W given (gd_products)
  kPower = 7,     // Y[i] = a_i V, then Z += a_i^T Y[i] (power_step)
};

inline bool has_forward(RowPass p) { return (static_cast<int>(p) & 1) != 0; }
inline bool has_backward(RowPass p) { return (static_cast<int>(p) & 2) != 0; }
inline bool backward_uses_y(RowPass p) { return p == RowPass::kPower; }

namespace detail {

/// Everything a dense row pass reads and writes. V is padded to kp columns (a
/// multiple of half the vector width) so the forward's inner loops have
/// compile-time widths; the backward accumulates Z transposed (k x dp, rows
/// padded from d to dp, a multiple of the vector width), its vectors running
/// along the rows of A. Y and W keep the caller's k columns.
template <class T>
struct DensePass {
  const T* A;
  index_t n, d, ld;
  bool col_major;
  const T* Vp;  // d x kp (forward)
  const T* W;   // n x k  (backward with given rows) or nullptr
  T* Y;         // n x k  (forward output) or nullptr
  index_t k, kp, dp;
  RowPass pass;
};

// A W-wide vector of T (GCC/Clang vector extension): the compiler maps it onto
// the registers of the target ISA (one zmm, two ymm or four xmm for 64 bytes).
template <class T, int W>
struct simd {
#if defined(__GNUC__)
  typedef T type __attribute__((vector_size(W * sizeof(T))));
#endif
};

#if defined(__GNUC__)
template <class T, int W>
inline void load(typename simd<T, W>::type& v, const T* p) {
  std::memcpy(&v, p, sizeof(v));
}
template <class T, int W>
inline void store(T* p, const typename simd<T, W>::type& v) {
  std::memcpy(p, &v, sizeof(v));
}

// Yb[r, t:t+W] = sum_j X[r, j] * Vp[j, t:t+W] for R rows of X (row-major,
// leading dim ldx), W = NV vectors of L lanes (each a native register).
template <class T, int R, int L, int NV>
inline void forward_tile(const T* X, index_t ldx, index_t d, const T* Vp, index_t kp, index_t t, T* Yb) {
  using vec = typename simd<T, L>::type;
  vec acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < NV; ++q) acc[r][q] = vec{};
  const T* v = Vp + t;
  for (index_t j = 0; j < d; ++j, v += kp) {
    vec vj[NV];
    for (int q = 0; q < NV; ++q) load<T, L>(vj[q], v + q * L);
    for (int r = 0; r < R; ++r) {
      const T a = X[r * ldx + j];
      for (int q = 0; q < NV; ++q) acc[r][q] += a * vj[q];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < NV; ++q) store<T, L>(Yb + r * kp + t + q * L, acc[r][q]);
}

// Zt[c, 0:J*L] += sum_{r < rows} X[r, 0:J*L] * W[r, c] for C columns: the
// C x J-vector tile of Zt (row stride dp) stays in registers over all the
// rows, so Zt is read and written once per block of rows.
template <class T, int L, int C, int J>
inline void axpy_tile(const T* X, index_t ldx, int rows, const T* W, index_t ldw, T* Zt, index_t dp) {
  using vec = typename simd<T, L>::type;
  vec z[C][J];
  for (int c = 0; c < C; ++c)
    for (int q = 0; q < J; ++q) load<T, L>(z[c][q], Zt + c * dp + q * L);
  for (int r = 0; r < rows; ++r) {
    vec x[J];
    for (int q = 0; q < J; ++q) load<T, L>(x[q], X + r * ldx + q * L);
    for (int c = 0; c < C; ++c) {
      const T w = W[r * ldw + c];  // a scalar operand: broadcast from memory, no shuffle
      for (int q = 0; q < J; ++q) z[c][q] += x[q] * w;
    }
  }
  for (int c = 0; c < C; ++c)
    for (int q = 0; q < J; ++q) store<T, L>(Zt + c * dp + q * L, z[c][q]);
}
#else
template <class T, int R, int L, int NV>
inline void forward_tile(const T* X, index_t ldx, index_t d, const T* Vp, index_t kp, index_t t, T* Yb) {
  constexpr int W = L * NV;
  T acc[R][W] = {};
  const T* v = Vp + t;
  for (index_t j = 0; j < d; ++j, v += kp)
    for (int r = 0; r < R; ++r)
      for (int w = 0; w < W; ++w) acc[r][w] += X[r * ldx + j] * v[w];
  for (int r = 0; r < R; ++r)
    for (int w = 0; w < W; ++w) Yb[r * kp + t + w] = acc[r][w];
}

template <class T, int L, int C, int J>
inline void axpy_tile(const T* X, index_t ldx, int rows, const T* W, index_t ldw, T* Zt, index_t dp) {
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < C; ++c)
      for (int j = 0; j < J * L; ++j) Zt[c * dp + j] += X[r * ldx + j] * W[r * ldw + c];
}
#endif

// f(lanes, vectors, t) over the columns [0, kp) in tiles of two V-lane vectors,
// then at most one of one vector and one of a half vector (kp is a multiple of
// V/2): no padding beyond half a vector.
template <int V, class F>
inline void for_each_tile(index_t kp, F&& f) {
  using full = std::integral_constant<int, V>;
  index_t t = 0;
  for (; t + 2 * V <= kp; t += 2 * V) f(full{}, std::integral_constant<int, 2>{}, t);
  if (t + V <= kp) {
    f(full{}, std::integral_constant<int, 1>{}, t);
    t += V;
  }
  if (t < kp) f(std::integral_constant<int, (V > 1 ? V / 2 : 1)>{}, std::integral_constant<int, 1>{}, t);
}

template <class T, int R, int V>
inline void forward_rows(const T* X, index_t ldx, index_t d, const T* Vp, index_t kp, T* Yb) {
  for_each_tile<V>(kp, [&](auto lanes, auto nv, index_t t) {
    forward_tile<T, R, decltype(lanes)::value, decltype(nv)::value>(X, ldx, d, Vp, kp, t, Yb);
  });
}

// f(std::integral_constant<int, B>{}, i0) over [0, n) in blocks of up to KB (<= 4).
template <int KB, class F>
inline void for_each_block(index_t n, F&& f) {
  static_assert(KB >= 1 && KB <= 4, "blocks of 1 to 4");
  index_t i0 = 0;
  for (; i0 + KB <= n; i0 += KB) f(std::integral_constant<int, KB>{}, i0);
  const index_t rest = n - i0;
  if constexpr (KB > 3) if (rest == 3) f(std::integral_constant<int, 3>{}, i0);
  if constexpr (KB > 2) if (rest == 2) f(std::integral_constant<int, 2>{}, i0);
  if constexpr (KB > 1) if (rest == 1) f(std::integral_constant<int, 1>{}, i0);
}

// Zt += X^T W for `rows` rows of X (n full L-vectors per row, then the rows'
// last d % L entries from Xt, rows x L zero-padded, when given) and of W
// (rows x k, stride ldw); Zt is k x dp.
template <class T, int L, int KC, int KJ>
inline void backward_block(const T* X, index_t ldx, int rows, index_t nv, const T* Xt, const T* W, index_t ldw,
                           index_t k, T* Zt, index_t dp) {
  for_each_block<KJ>(nv, [&](auto jn, index_t q0) {
    for_each_block<KC>(k, [&](auto cn, index_t c0) {
      axpy_tile<T, L, decltype(cn)::value, decltype(jn)::value>(X + q0 * L, ldx, rows, W + c0, ldw,
                                                                Zt + c0 * dp + q0 * L, dp);
    });
  });
  if (Xt != nullptr) {
    for_each_block<KC>(k, [&](auto cn, index_t c0) {
      axpy_tile<T, L, decltype(cn)::value, 1>(Xt, L, rows, W + c0, ldw, Zt + c0 * dp + nv * L, dp);
    });
  }
}

// G (rows x d, row-major) = the rows x d block of a column-major matrix at A
// (leading dim ld), in 8-column strips so reads and writes both stream.
template <class T>
inline void transpose_rows(const T* A, index_t ld, index_t rows, index_t d, T* G) {
  constexpr index_t S = 8;
  index_t j0 = 0;
  for (; j0 + S <= d; j0 += S)
    for (index_t r = 0; r < rows; ++r)
      for (index_t c = 0; c < S; ++c) G[r * d + j0 + c] = A[r + (j0 + c) * ld];
  for (index_t r = 0; r < rows; ++r)
    for (index_t j = j0; j < d; ++j) G[r * d + j] = A[r + j * ld];
}

// Rows [b, e) of a dense pass, in blocks of RB rows: the forward in register
// tiles of R rows by up to two V-lane vectors of columns, the backward in
// tiles of KC columns by KJ vectors along the rows of A. Zt: this thread's
// k x dp accumulator (backward).
// buf: scratch of RB * kp (Y rows) + RB * V (row tails) + gather_rows * d
// (column-major A only). Column-major A is copied a few rows at a time into a
// row-major buffer, so both layouts share the same register tiles (and
// power_step stays one pass).
template <class T, int R, int RB, int V, int KC, int KJ>
inline void dense_rows(const DensePass<T>& p, index_t gather_rows, index_t b, index_t e, T* Zt, T* buf) {
  static_assert(RB % R == 0, "a block of rows is whole forward tiles");
  const index_t d = p.d, k = p.k, kp = p.kp, dp = p.dp, nv = d / V, tail = d - nv * V;
  const bool fwd = has_forward(p.pass), bwd = has_backward(p.pass), use_y = backward_uses_y(p.pass);
  T* Yb = buf;
  T* Xt = buf + RB * kp;
  T* G = Xt + RB * V;
  for (index_t g0 = b; g0 < e; g0 += gather_rows) {
    const index_t g1 = std::min(e, g0 + gather_rows);
    const T* X;
    index_t ldx;
    if (p.col_major) {
      transpose_rows(p.A + g0, p.ld, g1 - g0, d, G);
      X = G;
      ldx = d;
    } else {
      X = p.A + g0 * p.ld;
      ldx = p.ld;
    }
    for (index_t i0 = g0; i0 < g1; i0 += RB) {
      const int rows = static_cast<int>(std::min<index_t>(RB, g1 - i0));
      const T* Xr = X + (i0 - g0) * ldx;
      if (fwd) {
        int r = 0;
        for (; r + R <= rows; r += R) forward_rows<T, R, V>(Xr + r * ldx, ldx, d, p.Vp, kp, Yb + r * kp);
        for (; r < rows; ++r) forward_rows<T, 1, V>(Xr + r * ldx, ldx, d, p.Vp, kp, Yb + r * kp);
        for (r = 0; r < rows; ++r) std::memcpy(p.Y + (i0 + r) * k, Yb + r * kp, sizeof(T) * k);
      }
      if (bwd) {
        if (tail > 0) {
          for (int r = 0; r < rows; ++r) {
            std::memcpy(Xt + r * V, Xr + r * ldx + nv * V, sizeof(T) * tail);
            std::fill(Xt + r * V + tail, Xt + (r + 1) * V, T(0));
          }
        }
        const T* W = use_y ? Yb : p.W + i0 * k;
        backward_block<T, V, KC, KJ>(Xr, ldx, rows, nv, tail > 0 ? Xt : nullptr, W, use_y ? kp : k, k, Zt, dp);
      }
    }
  }
}

using cpu_level_t = int;
constexpr cpu_level_t kGeneric = kIsaBaseline, kAvx2 = kIsaAvx2, kAvx512 = kIsaAvx512;

/// The widest vector ISA this CPU runs (common.hpp's detection).
inline cpu_level_t cpu_level() { return cpu_isa_level(); }

// Lanes of one vector register per ISA. Forward tiles: R rows x up to two
// vectors of columns; backward tiles: KC columns x KJ vectors along a row
// (KC * KJ accumulators + KJ rows + 1 broadcast within 16 or 32 registers);
// RB rows per block, over which the backward keeps its tile in registers.
template <class T>
constexpr int vector_lanes(cpu_level_t level) {
  return static_cast<int>((level == kAvx512 ? 64 : level == kAvx2 ? 32 : 16) / sizeof(T));
}
constexpr int kTileRows = 4, kTileRowsAvx512 = 8;
constexpr int kBlockRows = 32;
constexpr int kBackCols = 3, kBackVecs = 3, kBackColsAvx512 = 4, kBackVecsAvx512 = 4;

template <class T>
using dense_rows_fn = void (*)(const DensePass<T>&, index_t, index_t, index_t, T*, T*);

template <class T>
void dense_rows_generic(const DensePass<T>& p, index_t g, index_t b, index_t e, T* Z, T* buf) {
  dense_rows<T, kTileRows, kBlockRows, vector_lanes<T>(kGeneric), kBackCols, kBackVecs>(p, g, b, e, Z, buf);
}

#if defined(FASTLR_X86_DISPATCH)
template <class T>
__attribute__((target("avx2,fma"), flatten)) void dense_rows_avx2(const DensePass<T>& p, index_t g, index_t b,
                                                                  index_t e, T* Z, T* buf) {
  dense_rows<T, kTileRows, kBlockRows, vector_lanes<T>(kAvx2), kBackCols, kBackVecs>(p, g, b, e, Z, buf);
}
template <class T>
__attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma,prefer-vector-width=512"), flatten)) void
dense_rows_avx512(const DensePass<T>& p, index_t g, index_t b, index_t e, T* Z, T* buf) {
  dense_rows<T, kTileRowsAvx512, kBlockRows, vector_lanes<T>(kAvx512), kBackColsAvx512, kBackVecsAvx512>(
      p, g, b, e, Z, buf);
}
#endif

template <class T>
dense_rows_fn<T> pick_dense_rows(cpu_level_t level) {
#if defined(FASTLR_X86_DISPATCH)
  if (level == kAvx512) return &dense_rows_avx512<T>;
  if (level == kAvx2) return &dense_rows_avx2<T>;
#endif
  (void)level;
  return &dense_rows_generic<T>;
}

// out[j, c] = sum_t acc[t][c, j] (k x dp accumulators, `size` entries apart)
// for rows [b, e) of the d x k output, in a fixed order.
template <class T>
inline void reduce_transposed(T* out, index_t k, const T* acc, index_t dp, index_t size, int nacc, index_t b,
                              index_t e) {
  for (index_t c = 0; c < k; ++c) {
    for (index_t j = b; j < e; ++j) {
      T s = acc[c * dp + j];
      for (int t = 1; t < nacc; ++t) s += acc[static_cast<index_t>(t) * size + c * dp + j];
      out[j * k + c] = s;
    }
  }
}

// out[j, :k] = sum_t acc[t][j, :k] for rows [b, e) of the d x kp accumulators, in a fixed order.
template <class T>
inline void reduce_padded(T* out, index_t k, const T* acc, index_t d, index_t kp, int nacc, index_t b, index_t e) {
  for (index_t j = b; j < e; ++j) {
    T* __restrict o = out + j * k;
    const T* __restrict src = acc + j * kp;
    for (index_t c = 0; c < k; ++c) o[c] = src[c];
    for (int s = 1; s < nacc; ++s) {
      const T* __restrict a = acc + static_cast<index_t>(s) * d * kp + j * kp;
      for (index_t c = 0; c < k; ++c) o[c] += a[c];
    }
  }
}

inline index_t round_up(index_t x, index_t m) { return (x + m - 1) / m * m; }

}  // namespace detail

/// The row pass `pass` over a dense n x d matrix A.
/// Layout: A row-major (A[i*ld + j]) or, when col_major, column-major (A[i + j*ld]).
/// V: d x k row-major (forward). W: n x k row-major (backward unless kPower).
/// Y: n x k row-major output (forward), Z: d x k row-major output (backward);
/// both caller-allocated and overwritten.
/// Threads: contiguous row chunks; each thread accumulates Z in its own
/// d x k buffer, summed in a fixed order, so results are deterministic for a
/// given thread count. Column-major A is transposed a few rows at a time into
/// a cache-sized buffer, so power_step is one pass over A in either layout.
template <class T>
void dense_row_pass(RowPass pass, const T* A, index_t n, index_t d, index_t ld, bool col_major, const T* V,
                    const T* W, index_t k, T* Y, T* Z, int nthreads) {
  const bool fwd = has_forward(pass), bwd = has_backward(pass);
  if (k == 0) return;
  if (d == 0 || n == 0) {
    if (fwd) std::fill(Y, Y + n * k, T(0));
    if (bwd) std::fill(Z, Z + d * k, T(0));
    return;
  }
  const detail::cpu_level_t level = detail::cpu_level();
  const auto rows_fn = detail::pick_dense_rows<T>(level);
  const int lanes = detail::vector_lanes<T>(level);
  const index_t kp = detail::round_up(k, std::max(1, lanes / 2));
  const index_t dp = detail::round_up(d, lanes);
  std::vector<T> Vp;
  if (fwd) {
    Vp.assign(static_cast<size_t>(d * kp), T(0));
    for (index_t j = 0; j < d; ++j) std::memcpy(Vp.data() + j * kp, V + j * k, sizeof(T) * k);
  }
  // Column-major A: gather enough rows to read whole cache lines of each column,
  // but keep the buffer within L2.
  constexpr index_t RB = detail::kBlockRows;
  index_t gather_rows = n;
  if (col_major)
    gather_rows = std::max<index_t>(8, std::min<index_t>(64, (index_t(1) << 18) / (d * index_t(sizeof(T)))));
  const index_t per_row = (fwd ? 1 : 0) + (bwd ? 1 : 0);
  const int want = useful_threads(nthreads, n * d * per_row * kp / 8);
  const index_t zsize = bwd ? k * dp : 0;
  std::vector<T> zacc(static_cast<size_t>(want) * zsize, T(0));
  const detail::DensePass<T> p{A, n, d, ld, col_major, Vp.data(), W, Y, k, kp, dp, pass};
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp parallel num_threads(want)
#endif
  {
    const int parts = want > 1 ? omp_threads_in_team() : 1;
    const int t = thread_id();
    index_t b, e;
    chunk_range(n, parts, t, b, e);
    std::vector<T> buf(static_cast<size_t>(RB * (kp + lanes) + (col_major ? gather_rows * d : 0)));
    rows_fn(p, gather_rows, b, e, zacc.data() + t * zsize, buf.data());
    if (bwd) {
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp barrier
#endif
      index_t jb, je;
      chunk_range(d, parts, t, jb, je);
      detail::reduce_transposed(Z, k, zacc.data(), dp, zsize, parts, jb, je);
    }
  }
}

/// The row pass `pass` over a CSR matrix A (n x d; duplicates are summed,
/// column indices need not be sorted). V, W, Y, Z as in dense_row_pass.
/// Threads: row chunks balanced by nonzeros, per-thread d x k accumulators
/// for Z summed in a fixed order (deterministic for a given thread count).
template <class T, class I>
void csr_row_pass(RowPass pass, const I* indptr, const I* indices, const T* data, index_t nnz, index_t n,
                  index_t d, const T* V, const T* W, index_t k, T* Y, T* Z, int nthreads) {
  require(static_cast<index_t>(indptr[0]) == 0 && static_cast<index_t>(indptr[n]) == nnz,
          "A: sparse indptr must start at 0 and end at nnz (the length of indices and data)");
  const bool fwd = has_forward(pass), bwd = has_backward(pass), use_y = backward_uses_y(pass);
  if (k == 0) return;
  const index_t per_entry = (fwd ? 1 : 0) + (bwd ? 1 : 0);
  const int want = useful_threads(nthreads, (nnz * per_entry * k + n * k) / 8);
  const index_t zsize = bwd ? d * k : 0;
  std::vector<T> zacc(static_cast<size_t>(want) * zsize, T(0));
  ErrorFlag err;
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp parallel num_threads(want)
#endif
  {
    const int parts = want > 1 ? omp_threads_in_team() : 1;
    const int t = thread_id();
    index_t b, e;
    nnz_chunk_range(indptr, n, parts, t, b, e);
    T* __restrict z = zacc.data() + t * zsize;
    std::vector<T> ybuf(static_cast<size_t>(k));
    T* __restrict y = ybuf.data();
    for (index_t i = b; i < e; ++i) {
      index_t s, f;
      if (!detail::row_span(indptr, i, nnz, s, f)) { err.set(kBadIndptr); break; }
      bool ok = true;
      if (fwd) {
        std::fill(y, y + k, T(0));
        for (index_t q = s; q < f; ++q) {
          const index_t c = static_cast<index_t>(indices[q]);
          if (!in_range(c, d)) { ok = false; break; }
          const T x = data[q];
          const T* __restrict v = V + c * k;
          for (index_t l = 0; l < k; ++l) y[l] += x * v[l];
        }
        if (!ok) { err.set(kBadIndex); break; }
        std::memcpy(Y + i * k, y, sizeof(T) * k);
      }
      if (bwd) {
        const T* __restrict w = use_y ? y : W + i * k;
        for (index_t q = s; q < f; ++q) {
          const index_t c = static_cast<index_t>(indices[q]);
          if (!in_range(c, d)) { ok = false; break; }
          const T x = data[q];
          T* __restrict zr = z + c * k;
          for (index_t l = 0; l < k; ++l) zr[l] += x * w[l];
        }
        if (!ok) { err.set(kBadIndex); break; }
      }
    }
    if (bwd) {
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp barrier
#endif
      index_t jb, je;
      chunk_range(d, parts, t, jb, je);
      detail::reduce_padded(Z, k, zacc.data(), d, k, parts, jb, je);
    }
  }
  throw_countsketch_error(err.code);
}

}  // namespace fastlr
