// Products of dense A with 1-4 columns (BLAS's GEMV and pairs of GEMVs), one thread: ``A @ V``, ``A.T @ W``,
// ``(A V, A.T (A V))`` and ``(A V, A.T U)``. The pairs read A once where NumPy's two GEMVs read it twice
// (a row block's dot products, then its axpys while the block sits in L1/L2), and the single products spare the
// BLAS route's Python (thread counters, layout, result copy); at 2-4 columns they read A once where the one-pass
// kernels run the width as 8. The route sends one column here on one thread at x86-64-v3 and x86-64-v4
// (``choice.VECTOR_LEVELS``), and C-order A's 2-4 columns by ``choice.VECTOR_COLUMNS`` (fastlr/_matrix/memory.py,
// ``InMemory._route``).
//
// A translation unit of its own, outside LTO and last in the link (its name sorts after products_split_depth.cpp),
// so the other kernels keep their code's place (bench/README.md, fifteenth session, HS).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "common.hpp"

namespace fastlr::bind {

namespace {

// Row-major B (r x c): y = B x (rows' dots), z = B.T w (rows' axpys), and the fused pairs. The dots take rows in
// blocks of kBlock, the axpys in blocks of kAxpyBlock (one load and store of z per block: with 4 rows float32 ran
// 0.93-0.98x OpenBLAS's sgemv, with 8 0.98-1.10x; Zen 2, HG); each kernel's sums run in one fixed order (no
// threads), so a result depends on its inputs only.
constexpr index_t kBlock = 4;
constexpr int kAxpyBlock = 8;

// ---------------------------------------------------------------- portable (baseline) loops
// One pass over row-major B (r x c) with K columns (any K; K = 1: XT = x, W = w, Y = y, ZT = z): XT non-null,
// the dots Y = B XT.T (r x K); ZT non-null, the axpys ZT += (weights).T B (zeroed here; the weights are W, or Y
// for the gram pass), row by row.
template <class T>
void pass_k_plain(const T* B, index_t r, index_t c, int K, const T* XT, const T* W, T* Y, T* ZT) {
  if (ZT != nullptr) std::fill(ZT, ZT + K * c, T(0));
  const T* weights = W != nullptr ? W : Y;
  for (index_t i = 0; i < r; ++i) {
    const T* b = B + i * c;
    for (int k = 0; k < K; ++k) {
      if (XT != nullptr) {
        T s = 0;
        for (index_t j = 0; j < c; ++j) s += b[j] * XT[k * c + j];
        Y[i * K + k] = s;
      }
      if (ZT != nullptr) {
        const T w = weights[i * K + k];
        for (index_t j = 0; j < c; ++j) ZT[k * c + j] += b[j] * w;
      }
    }
  }
}

#if defined(FASTLR_X86_DISPATCH)
// ---------------------------------------------------------------- AVX2 / FMA
// Helpers inlined into the AVX2 kernels, compiled for AVX2 themselves (their intrinsics need the target).
#define FASTLR_AVX2_INLINE inline __attribute__((target("avx2,fma"), always_inline))

template <class T>
struct Avx2;

template <>
struct Avx2<float> {
  using V = __m256;
  static constexpr int L = 8;
  static FASTLR_AVX2_INLINE V zero() { return _mm256_setzero_ps(); }
  static FASTLR_AVX2_INLINE V load(const float* p) { return _mm256_loadu_ps(p); }
  static FASTLR_AVX2_INLINE void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static FASTLR_AVX2_INLINE V set1(float x) { return _mm256_set1_ps(x); }
  static FASTLR_AVX2_INLINE V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static FASTLR_AVX2_INLINE V add(V a, V b) { return _mm256_add_ps(a, b); }
  static FASTLR_AVX2_INLINE __m256i mask(int rem) {
    alignas(32) static const int m[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(m + 8 - rem));
  }
  static FASTLR_AVX2_INLINE V mload(const float* p, __m256i m) { return _mm256_maskload_ps(p, m); }
  static FASTLR_AVX2_INLINE void mstore(float* p, __m256i m, V v) { _mm256_maskstore_ps(p, m, v); }
  // y[0..3] = the lane sums of a, b, c, d
  static FASTLR_AVX2_INLINE void sum4(V a, V b, V c, V d, float* y) {
    const V s = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    _mm_storeu_ps(y, _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1)));
  }
  static FASTLR_AVX2_INLINE float sum1(V a) {
    alignas(32) float t[8];
    _mm256_store_ps(t, a);
    return ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]));
  }
};

template <>
struct Avx2<double> {
  using V = __m256d;
  static constexpr int L = 4;
  static FASTLR_AVX2_INLINE V zero() { return _mm256_setzero_pd(); }
  static FASTLR_AVX2_INLINE V load(const double* p) { return _mm256_loadu_pd(p); }
  static FASTLR_AVX2_INLINE void store(double* p, V v) { _mm256_storeu_pd(p, v); }
  static FASTLR_AVX2_INLINE V set1(double x) { return _mm256_set1_pd(x); }
  static FASTLR_AVX2_INLINE V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static FASTLR_AVX2_INLINE V add(V a, V b) { return _mm256_add_pd(a, b); }
  static FASTLR_AVX2_INLINE __m256i mask(int rem) {
    alignas(32) static const long long m[8] = {-1, -1, -1, -1, 0, 0, 0, 0};
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(m + 4 - rem));
  }
  static FASTLR_AVX2_INLINE V mload(const double* p, __m256i m) { return _mm256_maskload_pd(p, m); }
  static FASTLR_AVX2_INLINE void mstore(double* p, __m256i m, V v) { _mm256_maskstore_pd(p, m, v); }
  static FASTLR_AVX2_INLINE void sum4(V a, V b, V c, V d, double* y) {
    const V ab = _mm256_hadd_pd(a, b), cd = _mm256_hadd_pd(c, d);  // a0+a1 b0+b1 a2+a3 b2+b3
    _mm256_storeu_pd(y, _mm256_add_pd(_mm256_permute2f128_pd(ab, cd, 0x20), _mm256_permute2f128_pd(ab, cd, 0x31)));
  }
  static FASTLR_AVX2_INLINE double sum1(V a) {
    alignas(32) double t[4];
    _mm256_store_pd(t, a);
    return (t[0] + t[2]) + (t[1] + t[3]);
  }
};

// The dots of N rows b0.. (row stride c; N a multiple of 4) with x into y[0..N) (c columns; a masked tail): N row
// streams and one load of x per N FMAs. dots_avx2 takes eight (kDotRows): 1.00-1.51x NumPy's GEMV at x86-64-v4,
// where four lost 0.93-0.97x on 5760 x 1080 (bench/README.md, twenty-second session, HV); the pairs' blocks four.
template <int N, class T>
FASTLR_AVX2_INLINE void block_dots(const T* b0, index_t c, const T* x, T* y) {
  using S = Avx2<T>;
  using V = typename S::V;
  const index_t cv = c / S::L * S::L;
  V s[N];
  for (int q = 0; q < N; ++q) s[q] = S::zero();
  for (index_t j = 0; j < cv; j += S::L) {
    const V xv = S::load(x + j);
    for (int q = 0; q < N; ++q) s[q] = S::fma(S::load(b0 + q * c + j), xv, s[q]);
  }
  if (cv < c) {
    const __m256i m = S::mask(static_cast<int>(c - cv));
    const V xv = S::mload(x + cv, m);
    for (int q = 0; q < N; ++q) s[q] = S::fma(S::mload(b0 + q * c + cv, m), xv, s[q]);
  }
  for (int q = 0; q < N; q += 4) S::sum4(s[q], s[q + 1], s[q + 2], s[q + 3], y + q);
}

// One row's dot with x: four chains of FMAs (a row alone waits on one chain's latency where A comes from cache).
template <class T>
FASTLR_AVX2_INLINE T row_dot(const T* b, index_t c, const T* x) {
  using S = Avx2<T>;
  using V = typename S::V;
  const index_t cv = c / S::L * S::L;
  V s0 = S::zero(), s1 = s0, s2 = s0, s3 = s0;
  index_t j = 0;
  for (; j + 4 * S::L <= cv; j += 4 * S::L) {
    s0 = S::fma(S::load(b + j), S::load(x + j), s0);
    s1 = S::fma(S::load(b + j + S::L), S::load(x + j + S::L), s1);
    s2 = S::fma(S::load(b + j + 2 * S::L), S::load(x + j + 2 * S::L), s2);
    s3 = S::fma(S::load(b + j + 3 * S::L), S::load(x + j + 3 * S::L), s3);
  }
  for (; j < cv; j += S::L) s0 = S::fma(S::load(b + j), S::load(x + j), s0);
  if (cv < c) {
    const __m256i m = S::mask(static_cast<int>(c - cv));
    s1 = S::fma(S::mload(b + cv, m), S::mload(x + cv, m), s1);
  }
  return S::sum1(S::add(S::add(s0, s1), S::add(s2, s3)));
}

// z += w[0] b0 + ... + w[N-1] b(N-1), N rows c apart (one load and store of z per block), the even rows' terms
// and the odd rows' in two chains of FMAs (half the latency a block of 8 waits on). One row: row_axpy.
template <class T, int N>
FASTLR_AVX2_INLINE void block_axpy(const T* b0, index_t c, const T* w, T* z) {
  static_assert(N >= 2 && N % 2 == 0, "block_axpy: an even block of rows (one row: row_axpy)");
  using S = Avx2<T>;
  using V = typename S::V;
  V wv[N];
  for (int q = 0; q < N; ++q) wv[q] = S::set1(w[q]);
  const index_t cv = c / S::L * S::L;
  for (index_t j = 0; j < cv; j += S::L) {
    V s = S::load(z + j), t = S::zero();
    for (int q = 0; q < N; q += 2) {
      s = S::fma(S::load(b0 + q * c + j), wv[q], s);
      t = S::fma(S::load(b0 + (q + 1) * c + j), wv[q + 1], t);
    }
    S::store(z + j, S::add(s, t));
  }
  if (cv < c) {
    const __m256i m = S::mask(static_cast<int>(c - cv));
    V s = S::mload(z + cv, m), t = S::zero();
    for (int q = 0; q < N; q += 2) {
      s = S::fma(S::mload(b0 + q * c + cv, m), wv[q], s);
      t = S::fma(S::mload(b0 + (q + 1) * c + cv, m), wv[q + 1], t);
    }
    S::mstore(z + cv, m, S::add(s, t));
  }
}

constexpr index_t kDotRows = 8;  // rows of dots_avx2's blocks (block_dots)

// z += w b for one row b (c entries), the tail entries added one by one, where a masked load and store of z would
// come once per row (AMD's masked stores are slow: 1000000 x 20 float32 one row at a time
// took 3.5x the blocks' time with them).
template <class T>
FASTLR_AVX2_INLINE void row_axpy(const T* b, index_t c, T w, T* z) {
  using S = Avx2<T>;
  const typename S::V wv = S::set1(w);
  const index_t cv = c / S::L * S::L;
  for (index_t j = 0; j < cv; j += S::L) S::store(z + j, S::fma(S::load(b + j), wv, S::load(z + j)));
  for (index_t j = cv; j < c; ++j) z[j] = std::fma(b[j], w, z[j]);
}

// A of at least kOneStreamBytes (past the L2 and most of an L3) with rows narrower than kRowDotBytes takes its dots
// one row at a time (row_dot), read as one stream in memory order; else in blocks of kDotRows rows (block_dots:
// eight streams, x loaded once per eight FMAs). Zen 4 (x86-64-v4/v3, one thread; a C++ model of the loops on 80-160
// MB A): rows of 128 B to 8.6 KB one at a time 1.01-1.12x the fastest read of A where the blocks took 1.14-3.2x
// (rows of 0.5-2 KB: 2.4-3.2x); 16 KB float64 rows 1.34x against the blocks' 1.20x. In cache the blocks keep their
// lead on float32 (the kernel, 10000 x 200 float32: 0.12 against 0.18 ms one row at a time). Zen 2 had chosen the
// blocks: one stream of A read at ~17 GB/s there, four at ~23 (bench/README.md, twenty-third session).
constexpr index_t kOneStreamBytes = 16 << 20;
constexpr index_t kRowDotBytes = 12 << 10;
// The axpys (z += w_i B_i; the blocks load and store z once per kAxpyBlock rows) one row at a time for rows
// narrower than kRowAxpyBytes, from kOneStreamBytes: the model, rows of 128 B-3 KB 1.03-1.36x the read against
// the blocks' 1.40-2.82x; 8 KB rows and more 1.6-2.5x against 1.3x (z's load and store per row). Not where a row
// ends in a partial vector below kRowAxpyMinBytes: its scalar tail per row cost 1.4x the blocks at 20 float32
// columns.
constexpr index_t kRowAxpyBytes = 4 << 10;
constexpr index_t kRowAxpyMinBytes = 256;

template <class T>
bool one_stream(index_t r, index_t c, index_t max_row) {
  const index_t row = c * static_cast<index_t>(sizeof(T));
  return row < max_row && r * row >= kOneStreamBytes;
}

// Whether B (r x c) takes its axpys (and the Gram pair) one row at a time.
template <class T>
bool rowwise_axpys(index_t r, index_t c) {
  const index_t row = c * static_cast<index_t>(sizeof(T));
  return one_stream<T>(r, c, kRowAxpyBytes) && (row >= kRowAxpyMinBytes || c % Avx2<T>::L == 0);
}

// The pair y = B x, z = B.T u (both_avx2) one row at a time from rows of kRowBothMinBytes: 100000 x 200 and
// 50000 x 500 0.51-0.58x the four-row blocks' time, but 200000 x 64 float32 (256-byte rows) 1.18x and 1000000 x 20
// float64 1.38x (a row's own reduction and tail).
constexpr index_t kRowBothMinBytes = 512;

template <class T>
bool rowwise_both(index_t r, index_t c) {
  return rowwise_axpys<T>(r, c) && c * static_cast<index_t>(sizeof(T)) >= kRowBothMinBytes;
}

template <class T>
__attribute__((target("avx2,fma"))) void dots_avx2(const T* B, index_t r, index_t c, const T* x, T* y, bool rowwise) {
  index_t i = 0;
  if (rowwise) {
    for (; i < r; ++i) y[i] = row_dot<T>(B + i * c, c, x);
    return;
  }
  for (; i + kDotRows <= r; i += kDotRows) block_dots<kDotRows, T>(B + i * c, c, x, y + i);
  for (; i + kBlock <= r; i += kBlock) block_dots<kBlock, T>(B + i * c, c, x, y + i);
  for (; i < r; ++i) y[i] = row_dot<T>(B + i * c, c, x);
}

template <class T>
__attribute__((target("avx2,fma"))) void axpys_avx2(const T* B, index_t r, index_t c, const T* w, T* z,
                                                     bool rowwise) {
  std::fill(z, z + c, T(0));
  index_t i = 0;
  for (; !rowwise && i + kAxpyBlock <= r; i += kAxpyBlock) block_axpy<T, kAxpyBlock>(B + i * c, c, w + i, z);
  for (; i < r; ++i) row_axpy<T>(B + i * c, c, w[i], z);
}

// One row's dot with x, returned, and z += u b, each vector of the row loaded once for both (row_dot's four chains;
// the tail entries one by one, as row_axpy's).
template <class T>
FASTLR_AVX2_INLINE T row_dot_axpy(const T* b, index_t c, const T* x, T u, T* z) {
  using S = Avx2<T>;
  using V = typename S::V;
  const V uv = S::set1(u);
  const index_t cv = c / S::L * S::L;
  V s0 = S::zero(), s1 = s0, s2 = s0, s3 = s0;
  index_t j = 0;
  for (; j + 4 * S::L <= cv; j += 4 * S::L) {
    const V a0 = S::load(b + j), a1 = S::load(b + j + S::L), a2 = S::load(b + j + 2 * S::L),
            a3 = S::load(b + j + 3 * S::L);
    s0 = S::fma(a0, S::load(x + j), s0);
    s1 = S::fma(a1, S::load(x + j + S::L), s1);
    s2 = S::fma(a2, S::load(x + j + 2 * S::L), s2);
    s3 = S::fma(a3, S::load(x + j + 3 * S::L), s3);
    S::store(z + j, S::fma(a0, uv, S::load(z + j)));
    S::store(z + j + S::L, S::fma(a1, uv, S::load(z + j + S::L)));
    S::store(z + j + 2 * S::L, S::fma(a2, uv, S::load(z + j + 2 * S::L)));
    S::store(z + j + 3 * S::L, S::fma(a3, uv, S::load(z + j + 3 * S::L)));
  }
  for (; j < cv; j += S::L) {
    const V a = S::load(b + j);
    s0 = S::fma(a, S::load(x + j), s0);
    S::store(z + j, S::fma(a, uv, S::load(z + j)));
  }
  T tail = 0;
  for (index_t j = cv; j < c; ++j) {
    tail = std::fma(b[j], x[j], tail);
    z[j] = std::fma(b[j], u, z[j]);
  }
  return S::sum1(S::add(S::add(s0, s1), S::add(s2, s3))) + tail;
}

// y = B x, z = B.T u in one sweep of B (each block's rows loaded once for both; rowwise: one row at a time).
template <class T>
__attribute__((target("avx2,fma"))) void both_avx2(const T* B, index_t r, index_t c, const T* x, const T* u, T* y,
                                                    T* z, bool rowwise) {
  using S = Avx2<T>;
  using V = typename S::V;
  std::fill(z, z + c, T(0));
  const index_t cv = c / S::L * S::L;
  const __m256i m = S::mask(static_cast<int>(c - cv));
  index_t i = 0;
  if (rowwise) {
    for (; i < r; ++i) y[i] = row_dot_axpy<T>(B + i * c, c, x, u[i], z);
    return;
  }
  for (; i + kBlock <= r; i += kBlock) {
    const T* b0 = B + i * c;
    const T *b1 = b0 + c, *b2 = b1 + c, *b3 = b2 + c;
    const V u0 = S::set1(u[i]), u1 = S::set1(u[i + 1]), u2 = S::set1(u[i + 2]), u3 = S::set1(u[i + 3]);
    V s0 = S::zero(), s1 = s0, s2 = s0, s3 = s0;
    for (index_t j = 0; j < cv; j += S::L) {
      const V xv = S::load(x + j);
      const V a0 = S::load(b0 + j), a1 = S::load(b1 + j), a2 = S::load(b2 + j), a3 = S::load(b3 + j);
      s0 = S::fma(a0, xv, s0);
      s1 = S::fma(a1, xv, s1);
      s2 = S::fma(a2, xv, s2);
      s3 = S::fma(a3, xv, s3);
      S::store(z + j, S::fma(a3, u3, S::fma(a2, u2, S::fma(a1, u1, S::fma(a0, u0, S::load(z + j))))));
    }
    if (cv < c) {
      const V xv = S::mload(x + cv, m);
      const V a0 = S::mload(b0 + cv, m), a1 = S::mload(b1 + cv, m), a2 = S::mload(b2 + cv, m),
              a3 = S::mload(b3 + cv, m);
      s0 = S::fma(a0, xv, s0);
      s1 = S::fma(a1, xv, s1);
      s2 = S::fma(a2, xv, s2);
      s3 = S::fma(a3, xv, s3);
      S::mstore(z + cv, m, S::fma(a3, u3, S::fma(a2, u2, S::fma(a1, u1, S::fma(a0, u0, S::mload(z + cv, m))))));
    }
    S::sum4(s0, s1, s2, s3, y + i);
  }
  for (; i < r; ++i) {
    y[i] = row_dot<T>(B + i * c, c, x);
    row_axpy<T>(B + i * c, c, u[i], z);
  }
}

// y = B x, z = B.T y in one pass: each block's dots, then its axpy while its rows are in L1/L2.
template <class T>
__attribute__((target("avx2,fma"))) void gram_avx2(const T* B, index_t r, index_t c, const T* x, T* y, T* z,
                                                    bool rowwise) {
  std::fill(z, z + c, T(0));
  index_t i = 0;
  for (; !rowwise && i + kAxpyBlock <= r; i += kAxpyBlock) {
    for (index_t q = 0; q < kAxpyBlock; q += kBlock) block_dots<kBlock, T>(B + (i + q) * c, c, x, y + i + q);
    block_axpy<T, kAxpyBlock>(B + i * c, c, y + i, z);
  }
  for (; i < r; ++i) {
    y[i] = row_dot<T>(B + i * c, c, x);
    row_axpy<T>(B + i * c, c, y[i], z);
  }
}

// K = 2-4 columns: the dots of R rows with the K vectors XT (K x c), into Y (r x K, row-major).
template <class T, int R, int K>
FASTLR_AVX2_INLINE void block_dots_k(const T* b0, index_t c, const T* XT, T* Y) {
  using S = Avx2<T>;
  using V = typename S::V;
  V acc[R][K];
  for (int q = 0; q < R; ++q)
    for (int k = 0; k < K; ++k) acc[q][k] = S::zero();
  const index_t cv = c / S::L * S::L;
  for (index_t j = 0; j < cv; j += S::L) {
    V x[K];
    for (int k = 0; k < K; ++k) x[k] = S::load(XT + k * c + j);
    for (int q = 0; q < R; ++q) {
      const V a = S::load(b0 + q * c + j);
      for (int k = 0; k < K; ++k) acc[q][k] = S::fma(a, x[k], acc[q][k]);
    }
  }
  if (cv < c) {
    const __m256i m = S::mask(static_cast<int>(c - cv));
    V x[K];
    for (int k = 0; k < K; ++k) x[k] = S::mload(XT + k * c + cv, m);
    for (int q = 0; q < R; ++q) {
      const V a = S::mload(b0 + q * c + cv, m);
      for (int k = 0; k < K; ++k) acc[q][k] = S::fma(a, x[k], acc[q][k]);
    }
  }
  for (int q = 0; q < R; ++q)
    for (int k = 0; k < K; ++k) Y[q * K + k] = S::sum1(acc[q][k]);
}

// One pass over row-major B (r x c) with K = 2-4 columns, in blocks of kAxpyBlock rows: XT non-null, the block's
// dots Y = B XT.T (r x K); ZT non-null, its axpys ZT += (weights' block).T B (ZT: K x c, zeroed here; the weights
// are W (r x K), or Y for the gram pass), each column's axpy while the block's rows sit in L1/L2.
template <class T, int K>
__attribute__((target("avx2,fma"))) void pass_k_avx2(const T* B, index_t r, index_t c, const T* XT, const T* W, T* Y,
                                                     T* ZT) {
  constexpr int R = K <= 2 ? 4 : 2;  // R x K accumulators: at most 8
  if (ZT != nullptr) std::fill(ZT, ZT + K * c, T(0));
  const T* weights = W != nullptr ? W : Y;
  index_t i = 0;
  for (; i + kAxpyBlock <= r; i += kAxpyBlock) {
    const T* b = B + i * c;
    if (XT != nullptr)
      for (int q = 0; q < kAxpyBlock; q += R) block_dots_k<T, R, K>(b + q * c, c, XT, Y + (i + q) * K);
    if (ZT != nullptr) {
      for (int k = 0; k < K; ++k) {
        T w[kAxpyBlock];
        for (int q = 0; q < kAxpyBlock; ++q) w[q] = weights[(i + q) * K + k];
        block_axpy<T, kAxpyBlock>(b, c, w, ZT + k * c);
      }
    }
  }
  for (; i < r; ++i) {
    if (XT != nullptr) block_dots_k<T, 1, K>(B + i * c, c, XT, Y + i * K);
    if (ZT != nullptr)
      for (int k = 0; k < K; ++k) row_axpy<T>(B + i * c, c, weights[i * K + k], ZT + k * c);
  }
}

bool avx2_level() { return detail::cpu_level() >= kIsaAvx2; }
#else
bool avx2_level() { return false; }
#endif

// The entry points: AVX2 where the ISA level (within _core._cap_isa's cap) has it, else the portable loops.
template <class T>
void dots(const T* B, index_t r, index_t c, const T* x, T* y, bool stream) {
#if defined(FASTLR_X86_DISPATCH)
  if (avx2_level()) return dots_avx2<T>(B, r, c, x, y, stream && one_stream<T>(r, c, kRowDotBytes));
#endif
  pass_k_plain<T>(B, r, c, 1, x, nullptr, y, nullptr);
}

// The axpys' sums over B's rows (into z, zlen entries) go in fixed chunks of kSumRows rows, each chunk's from zero
// into a scratch added to z in chunk order: float32 rounding then grows with kSumRows + r / kSumRows terms, not r
// (C-order float32 A.T @ w over 10^5-10^6 rows: 1-2.5e-5 relative, 5-15x NumPy's sgemv, before; twentieth session).
constexpr index_t kSumRows = 1024;

template <class T, class Pass>
void in_row_chunks(index_t r, T* z, index_t zlen, Pass&& pass) {
  if (z == nullptr || r <= kSumRows) return pass(index_t(0), r, z);
  std::vector<T> part(static_cast<std::size_t>(zlen));
  std::fill(z, z + zlen, T(0));
  for (index_t i0 = 0; i0 < r; i0 += kSumRows) {
    pass(i0, std::min(kSumRows, r - i0), part.data());
    for (index_t j = 0; j < zlen; ++j) z[j] += part[j];
  }
}

template <class T>
void axpys(const T* B, index_t r, index_t c, const T* w, T* z, bool stream) {
  in_row_chunks<T>(r, z, c, [&](index_t i0, index_t rows, T* zc) {
#if defined(FASTLR_X86_DISPATCH)
    if (avx2_level()) return axpys_avx2<T>(B + i0 * c, rows, c, w + i0, zc, stream && rowwise_axpys<T>(r, c));
#endif
    pass_k_plain<T>(B + i0 * c, rows, c, 1, nullptr, w + i0, nullptr, zc);
  });
}

template <class T>
void pair(const T* B, index_t r, index_t c, const T* x, const T* u, T* y, T* z, bool stream) {
  in_row_chunks<T>(r, z, c, [&](index_t i0, index_t rows, T* zc) {
    const T* B0 = B + i0 * c;
    const T* u0 = u != nullptr ? u + i0 : nullptr;
#if defined(FASTLR_X86_DISPATCH)
    if (avx2_level())
      return u0 != nullptr ? both_avx2<T>(B0, rows, c, x, u0, y + i0, zc, stream && rowwise_both<T>(r, c))
                           : gram_avx2<T>(B0, rows, c, x, y + i0, zc, stream && rowwise_axpys<T>(r, c));
#endif
    pass_k_plain<T>(B0, rows, c, 1, x, u0, y + i0, zc);
  });
}

template <class T>
void pass_k(const T* B, index_t r, index_t c, int K, const T* XT, const T* W, T* Y, T* ZT) {
  in_row_chunks<T>(r, ZT, K * c, [&](index_t i0, index_t rows, T* zt) {
    const T* B0 = B + i0 * c;
    const T* W0 = W != nullptr ? W + i0 * K : nullptr;
    T* Y0 = Y != nullptr ? Y + i0 * K : nullptr;
#if defined(FASTLR_X86_DISPATCH)
    if (avx2_level()) {
      if (K == 2) return pass_k_avx2<T, 2>(B0, rows, c, XT, W0, Y0, zt);
      if (K == 3) return pass_k_avx2<T, 3>(B0, rows, c, XT, W0, Y0, zt);
      if (K == 4) return pass_k_avx2<T, 4>(B0, rows, c, XT, W0, Y0, zt);
    }
#endif
    pass_k_plain<T>(B0, rows, c, K, XT, W0, Y0, zt);
  });
}

// A buffer of n entries, at least one: pass_k reads a null buffer as "not this part".
template <class T>
std::vector<T> buffer(index_t n) {
  return std::vector<T>(static_cast<std::size_t>(std::max<index_t>(n, 1)));
}

// X (len x K, row-major) transposed into K x len.
template <class T>
std::vector<T> transposed(const T* X, index_t len, int K) {
  std::vector<T> out = buffer<T>(len * K);
  for (index_t i = 0; i < len; ++i)
    for (int k = 0; k < K; ++k) out[k * len + i] = X[i * K + k];
  return out;
}

// A factor of dtype T with `rows` rows and `cols` columns (or any 1-4 where cols is 0), C-contiguous (converted
// by NumPy when not).
template <class T>
py::array_t<T> column(const py::object& F, index_t rows, const char* name, const char* rows_of, index_t cols = 0) {
  auto f = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(F);
  FASTLR_REQUIRE(f && f.ndim() == 2 && f.shape(1) >= 1 && f.shape(1) <= 4 && (cols == 0 || f.shape(1) == cols),
                 std::string(name) + ": expected a 2-D array of 1-4 columns" +
                     (cols ? " (" + std::to_string(cols) + ")" : std::string()));
  FASTLR_REQUIRE(f.shape(0) == rows, std::string(name) + ": expected " + std::to_string(rows) + " rows (" + rows_of +
                                         "), got " + std::to_string(f.shape(0)));
  return f;
}

// Kinds 0-3 (vector_product) with K = 2-4 columns: C-order A is B; F-order A's B = A.T runs dots for A.T's products
// and axpys for A's (its kind 2: the axpys into P.T, then P.T as the dots' vectors).
template <class T>
py::object columns_product(int kind, const DenseView<T>& a, const py::array_t<T>& f1, const py::array_t<T>& f2) {
  const index_t n = a.rows, d = a.cols, r = a.col_major ? d : n, c = a.col_major ? n : d;
  const int K = static_cast<int>(f1.shape(1));
  const T* F1 = f1.data();
  const bool fwd = kind != 1;
  auto Y = new_matrix<T>(fwd ? n : 0, K);
  auto Z = new_matrix<T>(kind != 0 ? d : 0, K);
  {
    py::gil_scoped_release release;
    if (!a.col_major) {
      std::vector<T> XT, ZT = buffer<T>(K * d);
      if (fwd) XT = transposed<T>(F1, d, K);
      pass_k<T>(a.data, r, c, K, fwd ? XT.data() : nullptr, kind == 1 ? F1 : kind == 3 ? f2.data() : nullptr,
                fwd ? Y.mutable_data() : nullptr, kind != 0 ? ZT.data() : nullptr);
      if (kind != 0) {
        T* z = Z.mutable_data();
        for (index_t j = 0; j < d; ++j)
          for (int k = 0; k < K; ++k) z[j * K + k] = ZT[k * d + j];
      }
    } else {
      // B's axpys give A @ V (kinds 0, 2, 3) as PT (K x n); its dots A.T @ W (kind 1), A.T P (2) or A.T U (3).
      std::vector<T> PT = buffer<T>(K * n), XT;
      if (kind == 1) XT = transposed<T>(F1, n, K);
      if (kind == 3) XT = transposed<T>(f2.data(), n, K);
      if (kind == 2) {
        pass_k<T>(a.data, r, c, K, nullptr, F1, nullptr, PT.data());
        pass_k<T>(a.data, r, c, K, PT.data(), nullptr, Z.mutable_data(), nullptr);
      } else {
        pass_k<T>(a.data, r, c, K, kind != 0 ? XT.data() : nullptr, fwd ? F1 : nullptr,
                  kind != 0 ? Z.mutable_data() : nullptr, fwd ? PT.data() : nullptr);
      }
      if (fwd) {
        T* y = Y.mutable_data();
        for (index_t i = 0; i < n; ++i)
          for (int k = 0; k < K; ++k) y[i * K + k] = PT[k * n + i];
      }
    }
  }
  if (kind == 0) return std::move(Y);
  if (kind == 1) return std::move(Z);
  return py::make_tuple(Y, Z);
}

// kind 0: A @ v; 1: A.T @ w; 2: (A v, A.T (A v)); 3: (A v, A.T u). A C- or F-contiguous: F-order A is the
// row-major B = A.T, whose dots are A.T's products and axpys A's.
py::object vector_product(int kind, const py::array& A, const py::object& F1, const py::object& F2,
                          bool one_stream) {
  return dispatch_float(A, "A", [&](auto t) -> py::object {
    using T = decltype(t);
    const auto a = dense_view<T>(A, "A");
    const index_t n = a.rows, d = a.cols;
    const index_t r = a.col_major ? d : n, c = a.col_major ? n : d;  // B's shape
    FASTLR_REQUIRE(kind >= 0 && kind <= 3, "kind: must be 0, 1, 2 or 3");
    const auto f1 = kind == 1 ? column<T>(F1, n, "W", "A's rows") : column<T>(F1, d, kind == 2 ? "Q" : "V", "A's columns");
    if (f1.shape(1) > 1) {
      const auto f2 = kind == 3 ? column<T>(F2, n, "U", "A's rows", f1.shape(1)) : py::array_t<T>();
      return columns_product<T>(kind, a, f1, f2);
    }
    if (kind == 0 || kind == 1) {
      const bool forward = kind == 0;
      const auto& f = f1;
      auto out = new_matrix<T>(forward ? n : d, 1);
      const T* x = f.data();
      T* y = out.mutable_data();
      py::gil_scoped_release release;
      if (forward != a.col_major) {
        dots<T>(a.data, r, c, x, y, one_stream);  // C-order A @ v, or F-order A.T @ w
      } else {
        axpys<T>(a.data, r, c, x, y, one_stream);
      }
      return std::move(out);
    }
    const auto& v = f1;
    auto u = kind == 3 ? column<T>(F2, n, "U", "A's rows", 1) : py::array_t<T>();
    auto Y = new_matrix<T>(n, 1);
    auto Z = new_matrix<T>(d, 1);
    T* y = Y.mutable_data();
    T* z = Z.mutable_data();
    {
      py::gil_scoped_release release;
      if (!a.col_major) {
        pair<T>(a.data, r, c, v.data(), kind == 3 ? u.data() : nullptr, y, z, one_stream);
      } else if (kind == 3) {
        pair<T>(a.data, r, c, u.data(), v.data(), z, y, one_stream);  // B u = A.T u and B.T v = A v in one sweep
      } else {
        axpys<T>(a.data, r, c, v.data(), y, one_stream);  // A v = B.T v, then A.T (A v) = B (A v): two sweeps
        dots<T>(a.data, r, c, y, z, one_stream);
      }
    }
    return py::make_tuple(Y, Z);
  });
}

}  // namespace

void bind_vector(py::module_& m) {
  using py::arg;
  m.def("vector_product", &vector_product, arg("kind"), arg("A"), arg("F1"), arg("F2") = py::none(),
        arg("one_stream") = true,
        "Products of dense A (C or F order, float32/float64) with 1-4 columns on the calling thread: kind 0 ``A @ V`` "
        "(n x k), 1 ``A.T @ W`` (d x k), 2 ``(A V, A.T (A V))``, 3 ``(A V, A.T U)`` (F1 = V, F2 = U), each pair "
        "in one pass over A (two for F-order A's kind 2). Factors (d x k or n x k) are converted to A's dtype, C "
        "order, where they are not. one_stream: with one column, large A with narrow rows read one row at a time "
        "(the AVX2 loops; False: in blocks of rows, as below 16 MiB).");
}

}  // namespace fastlr::bind
