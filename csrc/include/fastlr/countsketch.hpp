// CountSketch kernels: S A and the gradient's gather-dot, for dense and
// compressed sparse A. S is m x n with one nonzero per column: S[rows[i], i] = values[i].
// The seeded kernels (countsketch_seeded_*) compute each column's (row, sign) from
// (seed, column) with countsketch_hash's counter hash instead of reading rows/values:
// the same S A, bit for bit, without materializing the n-length sketch.
#pragma once

#include <memory>
#include <type_traits>

#include "fastlr/common.hpp"
#include "fastlr/row_sumsq.hpp"

namespace fastlr {

namespace detail {

/// SplitMix64's finalizer (Steele, Lea and Flood, 2014): a bijective 64-bit mixer.
FASTLR_INLINE std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/// The counter hash of CountSketch column `col` under key = mix64(seed).
FASTLR_INLINE std::uint64_t countsketch_z(std::uint64_t key, std::uint64_t col) {
  return mix64(key + (col + 1) * 0x9E3779B97F4A7C15ULL);
}

/// Lemire's multiply-shift of z's top 32 bits onto [0, m) (m <= 2^32).
FASTLR_INLINE index_t countsketch_row(std::uint64_t z, std::uint64_t m) {
  return static_cast<index_t>(((z >> 32) * m) >> 32);
}

// Where a kernel gets column i's (row, value) of S. Both sources fill small
// per-thread blocks (r, v) that the kernels then use, so the materialized and the
// seeded sketch run the same loops in the same order: S A is bit-identical.

/// The materialized sketch: rows[i], values[i].
template <class T>
struct ArraySketch {
  const index_t* rows;
  const T* values;
  index_t m;
  // Columns i0 .. i0 + k - 1; false when a row lies outside [0, m).
  FASTLR_INLINE bool fill(index_t i0, index_t k, index_t* __restrict r, T* __restrict v) const {
    bool ok = true;
    for (index_t j = 0; j < k; ++j) {
      r[j] = rows[i0 + j];
      v[j] = values[i0 + j];
      ok &= in_range(r[j], m);
    }
    return ok;
  }
  // Columns idx[0 .. k - 1] (already checked to lie in [0, n)).
  template <class I>
  FASTLR_INLINE bool gather(const I* __restrict idx, index_t k, index_t* __restrict r, T* __restrict v) const {
    bool ok = true;
    for (index_t j = 0; j < k; ++j) {
      const index_t i = static_cast<index_t>(idx[j]);
      r[j] = rows[i];
      v[j] = values[i];
      ok &= in_range(r[j], m);
    }
    return ok;
  }
};

/// +1 or -1 by z's lowest bit, without a branch: as `(z & 1) ? -1 : 1` the baseline (SSE2) build
/// compiled a branch that mispredicts on half the columns: hashing 10^6 columns took 6.5 ms, 1.8 ms
/// so (Zen 2, one thread; the AVX2 build blends either way).
template <class T>
FASTLR_INLINE T countsketch_sign(std::uint64_t z) {
  return T(1) - T(2) * static_cast<T>(static_cast<int>(z & 1));
}

/// The seeded sketch: (row, sign) of column start + i from countsketch_z, as countsketch_hash.
template <class T>
struct HashSketch {
  std::uint64_t key;  // mix64(seed)
  std::uint64_t m;
  std::uint64_t start;
  FASTLR_INLINE bool fill(index_t i0, index_t k, index_t* __restrict r, T* __restrict v) const {
    const std::uint64_t c0 = start + static_cast<std::uint64_t>(i0);
    for (index_t j = 0; j < k; ++j) {
      const std::uint64_t z = countsketch_z(key, c0 + static_cast<std::uint64_t>(j));
      r[j] = countsketch_row(z, m);
      v[j] = countsketch_sign<T>(z);
    }
    return true;
  }
  template <class I>
  FASTLR_INLINE bool gather(const I* __restrict idx, index_t k, index_t* __restrict r, T* __restrict v) const {
    for (index_t j = 0; j < k; ++j) {
      const std::uint64_t z = countsketch_z(key, start + static_cast<std::uint64_t>(idx[j]));
      r[j] = countsketch_row(z, m);
      v[j] = countsketch_sign<T>(z);
    }
    return true;
  }
};

constexpr index_t kRowBlock = 256;   // columns of S per (r, v) block: 2-4 KB on the stack
constexpr index_t kColBlock = 65536; // rows of a column-major A per block: long runs of each column
constexpr index_t kCsrMaxNnz = 2048; // a CSR block with more nonzeros takes the per-row loop

// Entries of o before its next 64-byte boundary, at most d: the head a kernel adds one by one so that its vector
// stores to o are aligned (a store that straddles two cache lines costs the line-crossing penalty on every vector;
// NumPy arrays start 16 bytes into a line).
template <class T>
FASTLR_INLINE index_t aligned_head(const T* o, index_t d) {
  return std::min<index_t>(d, ((64 - (reinterpret_cast<std::uintptr_t>(o) & 63)) & 63) / sizeof(T));
}

// o[0, d) += v * a[0, d), the first few entries (aligned_head) apart so that the vector stores to o are aligned.
template <class T>
FASTLR_INLINE void axpy_aligned_out(T* __restrict o, const T* __restrict a, T v, index_t d) {
  const index_t head = aligned_head(o, d);
  for (index_t c = 0; c < head; ++c) o[c] += v * a[c];
  T* __restrict oa = static_cast<T*>(__builtin_assume_aligned(o + head, 64));
  const T* __restrict aa = a + head;
  const index_t rest = d - head;
  for (index_t c = 0; c < rest; ++c) oa[c] += v * aa[c];
}

// axpy_aligned_out, with each cache line of A asked for `ahead` bytes before it is reached
// (prefetchnta: A is read once). The same additions in the same order: bit-identical results.
template <class T>
FASTLR_INLINE void axpy_prefetch_a(T* __restrict o, const T* __restrict a, T v, index_t d, index_t ahead) {
  const index_t head = aligned_head(o, d);
  for (index_t c = 0; c < head; ++c) o[c] += v * a[c];
  T* __restrict oa = static_cast<T*>(__builtin_assume_aligned(o + head, 64));
  const T* __restrict aa = a + head;
  const index_t rest = d - head;
  constexpr index_t line = 64 / sizeof(T);
  index_t c = 0;
  for (; c + line <= rest; c += line) {
    __builtin_prefetch(reinterpret_cast<const char*>(aa + c) + ahead, 0, 0);
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp simd
#endif
    for (index_t q = 0; q < line; ++q) oa[c + q] += v * aa[c + q];
  }
  for (; c < rest; ++c) oa[c] += v * aa[c];
}

/// Bytes ahead of its use that the row-major dense kernel asks for each line of A (wide rows,
/// countsketch_rows), by the ISA level its variant runs; 0: no prefetch. One thread, Zen 2, the
/// seeded kernel and the public call against A.sum() in one process (bench/README.md, nineteenth
/// session): the AVX2 loop goes through a line faster and did best at 128-384 bytes, the SSE2 one
/// at 640-1024; 1 KB at x86-64-v3 was slower than no prefetch at all (prefetchnta lines fetched
/// too early are evicted before use). Not measured with AVX-512 (no such CPU here): the v4
/// variant keeps the plain loop.
inline index_t dense_prefetch_bytes(int level) {
#if !defined(FASTLR_ISA_DISPATCH) && defined(__AVX512F__)
  (void)level;
  return 0;  // one variant, compiled for AVX-512
#elif !defined(FASTLR_ISA_DISPATCH) && defined(__AVX2__)
  (void)level;
  return 384;  // one variant, compiled for AVX2
#else
  return level >= kIsaAvx512 ? 0 : level == kIsaAvx2 ? 384 : 768;
#endif
}

constexpr index_t kStripBytes = 384;  // bytes of a row per strip of countsketch_strips

/// Bytes of a row per strip of countsketch_strips for rows of `row_bytes` and an m x d accumulator of
/// `acc_bytes` (0: rows one at a time, whole, or the bucket pass): strips for rows of two strips to 12 KiB and an
/// accumulator over 8 KiB, whatever dense_bucket_row_bytes says. One thread, Zen 4 (AMD EPYC family 25 model 17,
/// L1d 32 KiB, L2 1 MiB), every ISA level, kernel alone (bench/README.md, twenty-second session): a C++ model of
/// 100000 x 200 m = 50 float32 had strips of 384 bytes in blocks of 16 rows best (256-512 bytes, 16-32 rows);
/// in the kernel, 800-2800-byte rows with 9.6 KB to 160 KB of accumulator took 0.71-0.97x the one-row
/// scatter's time; rows of one strip (280 and 400 bytes) were 1.0-1.2x slower in blocks, an accumulator of
/// 2.8-8 KB (in L1 anyway) 0.9-1.1x. Against the bucket pass (rows of 2 KB and more at x86-64-v3/v4, 3 KB at
/// the baseline): 2400-8640-byte rows 0.68-0.88x at v3/v4, 0.8-1.0x at the baseline; 16000-byte rows
/// (3000 x 4000 float32) 0.99-1.2x slower, so the bucket pass keeps rows over 12 KiB.
inline index_t dense_strip_bytes(index_t row_bytes, index_t acc_bytes) {
  return row_bytes >= 2 * kStripBytes && row_bytes <= (12 << 10) && acc_bytes > (8 << 10) ? kStripBytes : 0;
}

constexpr index_t kRunProbe = 32;        // rows of a block whose runs decide run-or-scatter
constexpr index_t kRunMaxRowBytes = 256;  // wider rows of a row-major A always take the scatter

// True when r[0, min(k, kRunProbe)) changes value less than once per 3 rows: runs of equal rows.
FASTLR_INLINE bool has_runs(const index_t* __restrict r, index_t k) {
  const index_t p = std::min(k, kRunProbe);
  index_t changes = 0;
  for (index_t j = 1; j < p; ++j) changes += r[j] != r[j - 1];
  return 3 * changes < p;
}

// o[0, d) = (((o + v0 a0) + v1 a1) + v2 a2) + v3 a3, entry by entry: four rows of one bucket added in
// row order (the same additions as four axpy_aligned_out calls) with one load and one store of o.
// Stores aligned as in axpy_aligned_out.
template <class T>
FASTLR_INLINE void axpy4_aligned_out(T* __restrict o, const T* __restrict a, index_t ld, const T* __restrict v,
                                     index_t d) {
  const T* __restrict a0 = a;
  const T* __restrict a1 = a + ld;
  const T* __restrict a2 = a + 2 * ld;
  const T* __restrict a3 = a + 3 * ld;
  const T v0 = v[0], v1 = v[1], v2 = v[2], v3 = v[3];
  const index_t head = aligned_head(o, d);
  for (index_t c = 0; c < head; ++c) o[c] = (((o[c] + v0 * a0[c]) + v1 * a1[c]) + v2 * a2[c]) + v3 * a3[c];
  T* __restrict oa = static_cast<T*>(__builtin_assume_aligned(o + head, 64));
  const index_t rest = d - head;
  a0 += head;
  a1 += head;
  a2 += head;
  a3 += head;
  for (index_t c = 0; c < rest; ++c) oa[c] = (((oa[c] + v0 * a0[c]) + v1 * a1[c]) + v2 * a2[c]) + v3 * a3[c];
}

constexpr index_t kBucketBlock = 1024;    // rows per block of countsketch_rows_by_bucket
constexpr index_t kBucketMaxRows = 1024;  // largest m whose blocks go bucket by bucket

/// Rows of a row-major A at least this many bytes wide go through countsketch_rows_by_bucket, by the
/// ISA level its variant runs and m; 0: never. One thread, Zen 2, against the one-row scatter
/// (bench/README.md, twentieth session): at x86-64-v3 from 2 KB (a C++ loop over 300 float64
/// columns: 0.94x its time; 200 columns: 1.03x); the SSE2 baseline from 3 KB with at least 8 rows
/// of a block per bucket (its passes of eight rows, 21st session: 4.0-4.8 KB rows 0.85-0.91x, 3000-byte
/// rows 0.96x, 2400-byte rows 1.04x; four-row passes had gained only from 6 KB).
inline index_t dense_bucket_row_bytes(int level, index_t m) {
#if !defined(FASTLR_ISA_DISPATCH) && defined(__AVX2__)
  (void)level;
  (void)m;
  return 2048;  // one variant, compiled for AVX2 or AVX-512
#else
#if !defined(FASTLR_ISA_DISPATCH)
  level = kIsaBaseline;  // one variant, compiled for the baseline
#endif
  if (level >= kIsaAvx2) return 2048;
  return 8 * m <= kBucketBlock ? 3072 : 0;
#endif
}

/// Bytes ahead of its use that axpy_bucket asks for each line of its rows when it also sums their squares
/// (the longer loop keeps fewer of A's lines in flight). The fused pass over the plain one, 5760 x 1080 seeded,
/// one thread, three runs (bench/README.md, twenty-second session): float64 1.08-1.19x at x86-64-v4 and v3 and
/// 1.09-1.14x at the baseline with 512 bytes against 1.14-1.23x and 1.18-1.22x without; float32 1.24-1.49x
/// against 1.31-1.57x at v4 and v3, but 1.71-1.87x against 1.66-1.80x at the baseline (256 bytes: in between;
/// 1024: worse than none).
constexpr index_t kEnergyAhead = 512;

// Entry c of N rows into their lane sums (row_sumsq's lanes, kept rotated: e[q][p] is lane (rot + p) % kRowLanes).
template <int N, class T>
FASTLR_INLINE void lane_add(double (*e)[kRowLanes], const T* const* a, index_t c, index_t rot) {
  for (int q = 0; q < N; ++q) {
    const double y = static_cast<double>(a[q][c]);
    e[q][(c - rot) & (kRowLanes - 1)] += y * y;
  }
}

// o[0, d) = ((o + v[0] a[0]) + v[1] a[1]) + ... + v[N-1] a[N-1], entry by entry: N rows of one bucket added in
// row order (the same additions as N axpy_aligned_out calls) with one load and one store of o, a 64-byte line
// of each row in turn (N streams of A in flight). Stores aligned as in axpy_aligned_out.
// kEnergy: also energy[q] = row_sumsq(a[q], d), bit for bit, summed in the same loop (each entry squared while
// it is in a register: the loop waits on memory, so the squares cost next to nothing). A line of o starts at
// entry head + t * line of the rows, so lane p of row_sumsq (entries j = p mod kRowLanes) is kept rotated by
// head; the lines stop at the last whole group of kRowLanes entries (the rest is row_sumsq's tail, in order).
template <int N, bool kEnergy = false, class T>
FASTLR_INLINE void axpy_bucket(T* __restrict o, const T* const* a, const T* __restrict v, index_t d,
                               double* __restrict energy = nullptr) {
  constexpr index_t line = 64 / sizeof(T);
  const index_t head = aligned_head(o, d);
  const index_t whole = d - d % kRowLanes;  // (kEnergy) entries summed in lanes
  const index_t rot = head % kRowLanes;
  double e[kEnergy ? N : 1][kRowLanes] = {};
  index_t c = 0;
  for (; c < head; ++c) {
    T x = o[c];
    for (int q = 0; q < N; ++q) x += v[q] * a[q][c];
    o[c] = x;
    if constexpr (kEnergy)
      if (c < whole) lane_add<N>(e, a, c, rot);
  }
  for (; c + line <= (kEnergy ? whole : d); c += line) {
    T* __restrict oc = static_cast<T*>(__builtin_assume_aligned(o + c, 64));
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp simd
#endif
    for (index_t p = 0; p < line; ++p) {
      T x = oc[p];
      for (int q = 0; q < N; ++q) x += v[q] * a[q][c + p];
      oc[p] = x;
    }
    if constexpr (kEnergy)
      for (int q = 0; q < N; ++q) __builtin_prefetch(reinterpret_cast<const char*>(a[q] + c) + kEnergyAhead, 0, 3);
    if constexpr (kEnergy)
      for (index_t g = 0; g < line; g += kRowLanes)  // c + g = rot mod kRowLanes
        for (int q = 0; q < N; ++q)
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp simd
#endif
          for (int p = 0; p < kRowLanes; ++p) {
            const double y = static_cast<double>(a[q][c + g + p]);
            e[q][p] += y * y;
          }
  }
  for (; c < d; ++c) {
    T x = o[c];
    for (int q = 0; q < N; ++q) x += v[q] * a[q][c];
    o[c] = x;
    if constexpr (kEnergy)
      if (c < whole) lane_add<N>(e, a, c, rot);
  }
  if constexpr (kEnergy)
    for (int q = 0; q < N; ++q) {
      double s[kRowLanes];
      for (int p = 0; p < kRowLanes; ++p) s[(rot + p) % kRowLanes] = e[q][p];
      energy[q] = tail_sumsq(a[q], whole, d, lane_tree(s));
    }
}

// o[q][0, d) += v[q] * a[q][0, d) for R rows of A into their buckets' accumulator rows o[q], a line of each
// row in turn (R streams of A in flight). Rows of one bucket (equal o[q]: no restrict on them) add in row
// order, entry by entry: the same additions as R axpy_aligned_out calls. acc_layout's rows are whole lines
// apart, so the o[q] share their place in a cache line and one head aligns every row's stores.
template <int R, class T>
FASTLR_INLINE void axpy_rows(T* const* o, const T* const* a, const T* __restrict v, index_t d) {
  constexpr index_t line = 64 / sizeof(T);
  const index_t head = aligned_head(o[0], d);
  for (int q = 0; q < R; ++q)
    for (index_t c = 0; c < head; ++c) o[q][c] += v[q] * a[q][c];
  index_t c = head;
  for (; c + line <= d; c += line)
    for (int q = 0; q < R; ++q) {
      T* oq = static_cast<T*>(__builtin_assume_aligned(o[q] + c, 64));
      const T* aq = a[q] + c;
      const T vq = v[q];
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp simd
#endif
      for (index_t p = 0; p < line; ++p) oq[p] += vq * aq[p];
    }
  for (int q = 0; q < R; ++q)
    for (index_t t = c; t < d; ++t) o[q][t] += v[q] * a[q][t];
}

// energy[i] = ||A[i, :]||^2 (row_sumsq, the row norms kernels' sum) for the passes that also return the row
// norms (kEnergy), called right after the rows' axpy: their entries are still in L1 or L2, so A is read from
// memory once. Without kEnergy they compile to nothing: those passes keep their code. row_energy: one row;
// rows_energy: k consecutive rows (energy[0, k), A's rows ld apart), four at a time (rows4_sumsq: four chains of
// additions in flight; one row at a time took about half as long as the plain pass again, 22nd session);
// rows_energy_at: N rows at a[q], energy[i[q]] (the 1-3 rows per bucket and block the bucket passes leave over).
template <bool kEnergy, class T>
FASTLR_INLINE void row_energy(double* __restrict energy, index_t i, const T* __restrict a, index_t d) {
  if constexpr (kEnergy) energy[i] = row_sumsq<T>(a, d);
}

template <bool kEnergy, class T>
FASTLR_INLINE void rows_energy(double* energy, const T* a, index_t k, index_t d, index_t ld) {
  if constexpr (kEnergy) rows_sumsq<T>(a, k, d, ld, energy);
}

// rows_energy of rows j & ~3 .. j of a block of k rows after row j, when j ends a group of four or the block.
template <bool kEnergy, class T>
FASTLR_INLINE void group_energy(double* energy, const T* a, index_t j, index_t k, index_t d, index_t ld) {
  if constexpr (kEnergy)
    if ((j & 3) == 3 || j == k - 1) {
      const index_t g = j & ~index_t(3);
      rows_energy<kEnergy>(energy + g, a + g * ld, j - g + 1, d, ld);
    }
}

constexpr index_t kStripRows = 16;  // rows of A per block of countsketch_strips

// acc[r_j, :] += v_j A[i0 + j, :] for the k rows of a block of countsketch_rows, in blocks of kStripRows rows
// taken in column strips of `strip` bytes (a strip of every row of the block, then the next strip): the
// m x strip slice of the accumulator the block adds to stays in L1 where whole rows would not (m x d is
// 41.6 KB for m = 50 and 200 float32 columns; a row at a time, each row's bucket row came from L2: the
// one-row scatter ran at 1.2x a read of A for m = 1 and 1.7-1.8x for m = 50, Zen 4). While a block is
// summed, the next block's rows are asked for in memory order (prefetcht1; none and prefetchnta were
// 1.3-2.6x slower in the model, t2 about as fast), a few lines per strip of a row, so the strips read A from
// the L2 rather than from memory in strips (short runs of lines, which Zen 4's prefetchers follow poorly).
// Each accumulator entry receives its rows' additions in row order: the same sums, bit for bit, as one row at
// a time. `last`: one past the last row of A the prefetch may touch. kEnergy: each
// block's rows' energy (rows_energy) once its strips are done, from L2 (16 rows of <= 12 KiB).
template <bool kEnergy, class T>
FASTLR_INLINE void countsketch_strips(const T* A, index_t i0, index_t k, index_t d, index_t ld, const index_t* r,
                                      const T* v, T* acc, index_t ldo, index_t strip, index_t last,
                                      double* energy) {
  constexpr index_t line = 64 / sizeof(T);
  const index_t w = std::max<index_t>(strip / static_cast<index_t>(sizeof(T)) / line, 1) * line;
  // strips begin where the accumulator rows' stores are aligned (acc_layout: the same place in every row)
  const index_t head = aligned_head(acc, d);
  const index_t strips = std::max<index_t>((d - head + w - 1) / w, 1);  // the first also takes the head
  // the next block's rows, in memory order, when they lie (nearly) back to back
  const bool contiguous = (ld - d) * static_cast<index_t>(sizeof(T)) <= 64;
  for (index_t j0 = 0; j0 < k; j0 += kStripRows) {
    const index_t q = std::min(kStripRows, k - j0);
    const index_t next = i0 + j0 + q;
    const index_t nq = contiguous ? std::max<index_t>(std::min(kStripRows, last - next), 0) : 0;
    const char* pf = nq > 0 ? reinterpret_cast<const char*>(A + next * ld) : nullptr;
    const char* pfe = nq > 0 ? reinterpret_cast<const char*>(A + (next + nq - 1) * ld + d) : nullptr;
    const index_t per = (pfe - pf) / 64 / (q * strips) + 1;  // lines asked for per row strip
    for (index_t c0 = 0; c0 < d;) {
      const index_t c1 = std::min(d, (c0 == 0 ? head : c0) + w);
      for (index_t j = j0; j < j0 + q; ++j) {
        for (index_t p = 0; p < per && pf < pfe; ++p, pf += 64) __builtin_prefetch(pf, 0, 2);
        axpy_aligned_out(acc + r[j] * ldo + c0, A + (i0 + j) * ld + c0, v[j], c1 - c0);
      }
      c0 = c1;
    }
    rows_energy<kEnergy>(energy + i0 + j0, A + (i0 + j0) * ld, q, d, ld);
  }
}

template <bool kEnergy, int N, class I, class T>
FASTLR_INLINE void rows_energy_at(double* __restrict energy, const I* i, const T* const* a, index_t d) {
  if constexpr (kEnergy)
    for (int q = 0; q < N; ++q) energy[i[q]] = row_sumsq<T>(a[q], d);
}

// countsketch_rows for rows of at least dense_bucket_row_bytes. Zen 2 reads A through one stream (a row at a
// time) at ~17 GB/s and through four at ~23 (a sum of A; OpenBLAS's GEMV reads four rows too), and each row alone
// moves its bucket's accumulator row (8 KB for 1080 float64: the m x d accumulator is in L2, not L1) to L1
// and back. So each block of kBucketBlock rows goes bucket by bucket (a stable counting sort of the rows by
// r_i: rows of different buckets add to different accumulator rows, so their order is free), eight rows of
// a bucket per pass, then four (axpy_bucket: eight or four streams, one load and store of the accumulator;
// eight rows: 0.92-0.96x four's time at x86-64-v3 and the baseline, 21st session), the one to three
// left over in each bucket four at a time whatever their buckets (axpy_rows). Each accumulator entry still
// receives its rows' additions in row order: the same sums, bit for bit, as one row at a time. m over
// kBucketMaxRows (a bucket rarely holds two rows of a block): rows in order, four at a time (axpy_rows).
// kEnergy: also energy[i] for each row (axpy_bucket sums the squares of its rows as it reads them; the rows
// axpy_rows takes, after it: rows_energy_at, row_energy).
template <bool kEnergy = false, class T, class Src>
FASTLR_INLINE int countsketch_rows_by_bucket(const T* A, index_t b, index_t e, index_t d, index_t ld,
                                             const Src& src, T* acc, index_t ldo, index_t m,
                                             double* energy = nullptr) {
  index_t r[kBucketBlock];
  T v[kBucketBlock];
  std::int32_t order[kBucketBlock];
  std::int32_t end[kBucketMaxRows + 1];  // end[q]: where bucket q's rows end in order
  const bool by_bucket = m <= kBucketMaxRows;
  for (index_t i0 = b; i0 < e; i0 += kBucketBlock) {
    const index_t k = std::min(kBucketBlock, e - i0);
    if (!src.fill(i0, k, r, v)) return kBadRow;
    if (by_bucket) {
      std::fill(end, end + m + 1, 0);
      for (index_t j = 0; j < k; ++j) ++end[r[j] + 1];
      for (index_t q = 0; q < m; ++q) end[q + 1] += end[q];
      for (index_t j = 0; j < k; ++j) order[end[r[j]]++] = static_cast<std::int32_t>(j);  // end[q]: bucket q's end
    } else {
      for (index_t j = 0; j < k; ++j) order[j] = static_cast<std::int32_t>(j);
    }
    T* po[4];  // rows waiting for a four-row axpy_rows
    const T* pa[4];
    T pv[4];
    index_t pi[4];  // their rows of A (kEnergy)
    int waiting = 0;
    for (index_t s = 0; s < k;) {
      const index_t row = r[order[s]];
      const index_t f = by_bucket ? end[row] : s + 1;
      T* o = acc + row * ldo;
      for (; by_bucket && s + 8 <= f; s += 8) {
        const T* a[8];
        T w[8];
        for (int q = 0; q < 8; ++q) {
          a[q] = A + (i0 + order[s + q]) * ld;
          w[q] = v[order[s + q]];
        }
        double sq[8];
        axpy_bucket<8, kEnergy>(o, a, w, d, sq);
        if constexpr (kEnergy)
          for (int q = 0; q < 8; ++q) energy[i0 + order[s + q]] = sq[q];
      }
      for (; by_bucket && s + 4 <= f; s += 4) {
        const T* a[4];
        T w[4];
        for (int q = 0; q < 4; ++q) {
          a[q] = A + (i0 + order[s + q]) * ld;
          w[q] = v[order[s + q]];
        }
        double sq[4];
        axpy_bucket<4, kEnergy>(o, a, w, d, sq);
        if constexpr (kEnergy)
          for (int q = 0; q < 4; ++q) energy[i0 + order[s + q]] = sq[q];
      }
      for (; s < f; ++s) {
        po[waiting] = o;
        pa[waiting] = A + (i0 + order[s]) * ld;
        pv[waiting] = v[order[s]];
        pi[waiting] = i0 + order[s];
        if (++waiting == 4) {
          axpy_rows<4>(po, pa, pv, d);
          rows_energy_at<kEnergy, 4>(energy, pi, pa, d);
          waiting = 0;
        }
      }
    }
    for (int q = 0; q < waiting; ++q) {
      axpy_rows<1>(po + q, pa + q, pv + q, d);
      row_energy<kEnergy>(energy, pi[q], pa[q], d);
    }
  }
  return 0;
}

// acc[r_i, :] += v_i * A[i, :] for rows b..e of a row-major A; acc has row stride ldo.
// Rows of one bucket in a row wait on each other's adds to the bucket's accumulator row
// (a store then a load of the same addresses), which costs when A is narrow: there, in
// blocks that begin with runs of equal r_i (has_runs), each run goes four rows per pass
// (axpy4_aligned_out). The same additions in the same order either way. Wide rows keep
// the one-row axpy (their adds overlap anyway; four rows per pass measured slower): in
// column strips of `strip` bytes (countsketch_strips) unless strip is 0, else whole rows with A
// prefetched `ahead` bytes ahead (axpy_prefetch_a) unless ahead is 0. (Rows of
// dense_bucket_row_bytes and more take countsketch_rows_by_bucket instead when strip is 0.) kEnergy: also
// energy[i] for each row: rows in strips after their block of kStripRows (in L2), other wide rows four at a time
// after their axpys (group_energy: in L1/L2), narrow rows after their block's (in L2).
template <bool kEnergy = false, class T, class Src>
FASTLR_INLINE int countsketch_rows(const T* A, index_t b, index_t e, index_t d, index_t ld, const Src& src, T* acc,
                                   index_t ldo, index_t ahead, index_t strip, double* energy = nullptr) {
  index_t r[kRowBlock];
  T v[kRowBlock];
  if (d * static_cast<index_t>(sizeof(T)) > kRunMaxRowBytes) {
    for (index_t i0 = b; i0 < e; i0 += kRowBlock) {
      const index_t k = std::min(kRowBlock, e - i0);
      if (!src.fill(i0, k, r, v)) return kBadRow;
      if (strip > 0)
        countsketch_strips<kEnergy>(A, i0, k, d, ld, r, v, acc, ldo, strip, e, energy);
      else if (ahead > 0)
        for (index_t j = 0; j < k; ++j) {
          axpy_prefetch_a(acc + r[j] * ldo, A + (i0 + j) * ld, v[j], d, ahead);
          group_energy<kEnergy>(energy + i0, A + i0 * ld, j, k, d, ld);
        }
      else
        for (index_t j = 0; j < k; ++j) {
          axpy_aligned_out(acc + r[j] * ldo, A + (i0 + j) * ld, v[j], d);
          group_energy<kEnergy>(energy + i0, A + i0 * ld, j, k, d, ld);
        }
    }
    return 0;
  }
  for (index_t i0 = b; i0 < e; i0 += kRowBlock) {
    const index_t k = std::min(kRowBlock, e - i0);
    if (!src.fill(i0, k, r, v)) return kBadRow;
    if (!has_runs(r, k)) {
      for (index_t j = 0; j < k; ++j) axpy_aligned_out(acc + r[j] * ldo, A + (i0 + j) * ld, v[j], d);
      rows_energy<kEnergy>(energy + i0, A + i0 * ld, k, d, ld);
      continue;
    }
    for (index_t j = 0; j < k;) {
      index_t f = j + 1;
      while (f < k && r[f] == r[j]) ++f;
      T* o = acc + r[j] * ldo;
      for (; j + 4 <= f; j += 4) axpy4_aligned_out(o, A + (i0 + j) * ld, ld, v + j, d);
      for (; j < f; ++j) axpy_aligned_out(o, A + (i0 + j) * ld, v[j], d);
    }
    rows_energy<kEnergy>(energy + i0, A + i0 * ld, k, d, ld);
  }
  return 0;
}

/// Where the row-major kernel's m x d accumulators live in its work buffer: rows
/// `ld` entries apart (d rounded up to whole cache lines), each accumulator
/// `stride` entries after the previous one, starting `offset` entries into a
/// 64-byte-aligned buffer. When A's rows all start at the same place in a cache
/// line, the accumulator's rows start there too, so the peeled axpy's loads from A
/// are aligned along with its stores.
struct AccLayout {
  index_t ld, offset, stride;
};

template <class T>
AccLayout acc_layout(const T* A, index_t m, index_t d, index_t ld) {
  constexpr index_t line = 64 / sizeof(T);
  const auto a = reinterpret_cast<std::uintptr_t>(A);
  const bool same = (ld * static_cast<index_t>(sizeof(T))) % 64 == 0 && a % sizeof(T) == 0;
  const index_t offset = same ? static_cast<index_t>(a % 64) / static_cast<index_t>(sizeof(T)) : 0;
  const index_t ldo = (d + line - 1) / line * line;
  return {ldo, offset, m * ldo + line};
}

constexpr index_t kRunSeg = 256;  // rows of S per run-or-scatter decision (countsketch_cols)

/// Segments of kRunSeg rows the column-major kernel walks for a block of k rows.
inline index_t run_segments(index_t k) { return (k + kRunSeg - 1) / kRunSeg; }

// flag[s] = 1 when segment s of r[0, k) (kRunSeg rows) begins with runs of equal rows
// (has_runs): there countsketch_sweep sums each run in registers.
FASTLR_INLINE void mark_runs(const index_t* __restrict r, index_t k, unsigned char* __restrict flag) {
  for (index_t s0 = 0, q = 0; s0 < k; s0 += kRunSeg, ++q) flag[q] = has_runs(r + s0, std::min(k - s0, kRunSeg));
}

// b_c[r_j] += v_j * a_c[j] for W columns c (b_c = b + c * m, a_c = a + c * ld) and rows
// j in [0, k). A scatter's add waits for the previous add to the same b_c[r] (a store
// then a load of one address: ~2x slower when consecutive rows share a bucket), so in
// segments flagged by mark_runs each run of equal r_j is summed in registers, loaded
// and stored once. The additions are the same ones in the same order either way
// (b_c[r] + v_j a_c[j], row by row): the two paths agree to the last bit.
template <int W, class T>
FASTLR_INLINE void countsketch_sweep(const T* __restrict a, index_t ld, index_t k, const index_t* __restrict r,
                                     const T* __restrict v, const unsigned char* __restrict flag, T* __restrict b,
                                     index_t m) {
  index_t s0 = 0;
  while (s0 < k) {
    const unsigned char run = flag[s0 / kRunSeg];
    index_t s1 = s0;
    while (s1 < k && flag[s1 / kRunSeg] == run) s1 = std::min(k, s1 + kRunSeg);
    if (!run && W == 4) {  // written out as before the run path (measured faster at the baseline ISA)
      T* b0 = b;
      T* b1 = b0 + m;
      T* b2 = b1 + m;
      T* b3 = b2 + m;
      const T* a0 = a;
      const T* a1 = a0 + ld;
      const T* a2 = a1 + ld;
      const T* a3 = a2 + ld;
      for (index_t j = s0; j < s1; ++j) {
        const index_t rj = r[j];
        const T vj = v[j];
        b0[rj] += vj * a0[j];
        b1[rj] += vj * a1[j];
        b2[rj] += vj * a2[j];
        b3[rj] += vj * a3[j];
      }
    } else if (!run) {
      for (index_t j = s0; j < s1; ++j) {
        const index_t rj = r[j];
        const T vj = v[j];
        for (int c = 0; c < W; ++c) b[c * m + rj] += vj * a[c * ld + j];
      }
    } else {
      index_t j = s0;
      while (j < s1) {
        const index_t row = r[j];
        T x[W];
        for (int c = 0; c < W; ++c) x[c] = b[c * m + row];
        do {
          const T vj = v[j];
          for (int c = 0; c < W; ++c) x[c] += vj * a[c * ld + j];
          ++j;
        } while (j < s1 && r[j] == row);
        for (int c = 0; c < W; ++c) b[c * m + row] = x[c];
      }
    }
    s0 = s1;
  }
}

// Columns jb..je of S A for a column-major A, accumulated in buf (column-major,
// m x (je - jb)) block of rows by block of rows, four columns per sweep, then
// copied to out. Each sum runs in increasing row order, as for row-major A.
// r, v: kColBlock entries each (the block's rows and values); flag: run_segments of
// the block (kColBlock rows, or n for the materialized sketch).
template <class T, class Src>
FASTLR_INLINE int countsketch_cols(const T* A, index_t n, index_t jb, index_t je, index_t d, index_t ld,
                            const Src& src, index_t m, T* out, T* buf, index_t* r, T* v, unsigned char* flag) {
  std::fill(buf, buf + (je - jb) * m, T(0));
  if constexpr (std::is_same_v<Src, ArraySketch<T>>) {
    // rows/values are in memory already: stream them with each four-column sweep
    // over all n rows (fewer, longer streams than the blocks below).
    const index_t* rows = src.rows;
    const T* values = src.values;
    for (index_t j = 0; j < n; ++j)
      if (!in_range(rows[j], m)) return kBadRow;
    r = const_cast<index_t*>(rows);
    v = const_cast<T*>(values);
  }
  const index_t block = std::is_same_v<Src, ArraySketch<T>> ? std::max<index_t>(n, 1) : kColBlock;
  for (index_t i0 = 0; i0 < n; i0 += block) {
    const index_t k = std::min(block, n - i0);
    if constexpr (!std::is_same_v<Src, ArraySketch<T>>) {
      if (!src.fill(i0, k, r, v)) return kBadRow;
    }
    mark_runs(r, k, flag);
    index_t j0 = jb;
    for (; j0 + 4 <= je; j0 += 4) countsketch_sweep<4>(A + j0 * ld + i0, ld, k, r, v, flag, buf + (j0 - jb) * m, m);
    for (; j0 < je; ++j0) countsketch_sweep<1>(A + j0 * ld + i0, ld, k, r, v, flag, buf + (j0 - jb) * m, m);
  }
  for (index_t row = 0; row < m; ++row)
    for (index_t j = jb; j < je; ++j) out[row * d + j] = buf[(j - jb) * m + row];
  return 0;
}

// <a, x> with a vectorized reduction (the explicit reduction licenses the
// reassociation that -O3 alone may not do for floating point).
template <class T>
inline T dot(const T* __restrict a, const T* __restrict x, index_t d) {
  T s = 0;
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp simd reduction(+ : s)
#endif
  for (index_t j = 0; j < d; ++j) s += a[j] * x[j];
  return s;
}

template <class I>
inline bool row_span(const I* indptr, index_t i, index_t nnz, index_t& s, index_t& e) {
  s = static_cast<index_t>(indptr[i]);
  e = static_cast<index_t>(indptr[i + 1]);
  return s <= e && s >= 0 && e <= nnz;
}

// o[r_i, :] += v_i * A[i, :] for rows b..e of a CSR A. Blocks of kRowBlock rows:
// the block's (r, v) come in one fill (vectorized hashing, no per-row branch), and
// when the block holds at most kCsrMaxNnz nonzeros its nonzeros run as one flat
// loop whose row is a running maximum over end-of-row markers: no branch per row,
// which matters when rows hold a nonzero or two (or none). Same order of additions
// as a row-by-row loop.
template <class T, class I, class Src>
FASTLR_INLINE int countsketch_csr_rows(const I* indptr, const I* indices, const T* data, index_t nnz, index_t b,
                                index_t e, index_t d, const Src& src, T* o) {
  index_t r[kRowBlock];
  T v[kRowBlock];
  std::int32_t marker[kCsrMaxNnz + 1];
  for (index_t i0 = b; i0 < e; i0 += kRowBlock) {
    const index_t k = std::min(kRowBlock, e - i0);
    const index_t s0 = static_cast<index_t>(indptr[i0]);
    const index_t s1 = static_cast<index_t>(indptr[i0 + k]);
    if (!(s0 >= 0 && s0 <= s1 && s1 <= nnz)) return kBadIndptr;
    const index_t K = s1 - s0;
    if (K == 0) {  // still check the block's row pointers
      for (index_t j = 1; j < k; ++j)
        if (static_cast<index_t>(indptr[i0 + j]) != s0) return kBadIndptr;
      continue;
    }
    if (!src.fill(i0, k, r, v)) return kBadRow;
    if (K > kCsrMaxNnz) {  // long rows: per-row loops (their branches predict well)
      for (index_t j = 0; j < k; ++j) {
        index_t s, f;
        if (!row_span(indptr, i0 + j, nnz, s, f)) return kBadIndptr;
        T* __restrict orow = o + r[j] * d;
        const T vj = v[j];
        for (index_t p = s; p < f; ++p) {
          const index_t c = static_cast<index_t>(indices[p]);
          if (!in_range(c, d)) return kBadIndex;
          orow[c] += vj * data[p];
        }
      }
      continue;
    }
    // marker[q] = j + 1 where row j of the block ends at nonzero q (block-relative):
    // the row of nonzero p is the largest marker at or before p.
    std::fill(marker, marker + K + 1, 0);
    index_t prev = s0;
    bool mono = true;
    for (index_t j = 0; j < k; ++j) {
      const index_t q = static_cast<index_t>(indptr[i0 + j + 1]);
      mono &= q >= prev;
      prev = q;
      marker[std::min<index_t>(std::max<index_t>(q - s0, 0), K)] = static_cast<std::int32_t>(j + 1);
    }
    if (!mono) return kBadIndptr;
    const I* __restrict ind = indices + s0;
    const T* __restrict dat = data + s0;
    std::int32_t row = 0;
    for (index_t p = 0; p < K; ++p) {
      row = std::max(row, marker[p]);
      const index_t c = static_cast<index_t>(ind[p]);
      if (!in_range(c, d)) return kBadIndex;
      o[r[row] * d + c] += v[row] * dat[p];
    }
  }
  return 0;
}

}  // namespace detail

}  // namespace fastlr

// The kernels' ISA variants: detail::isa_v4 / isa_v3 / isa_base::countsketch_*_impl,
// gather_dot_*_impl and countsketch_hash_impl.
#define FASTLR_ISA_KERNELS "fastlr/countsketch_kernels.inc"
#include "fastlr/isa_variants.inc"
#undef FASTLR_ISA_KERNELS

namespace fastlr {

/// CountSketch columns start .. start + count - 1 for `seed`: rows[i] in [0, m) and
/// signs[i] = +-1 from a counter-based hash of (seed, start + i), the same values as
/// fastlr._kernels.reference.countsketch_hash (z = mix64(mix64(seed) + (column + 1) *
/// golden); row = Lemire's multiply-shift of z's top 32 bits onto [0, m); sign = z's
/// lowest bit), so the sketch is the same for every backend, thread count and split
/// of the columns. Requires 1 <= m <= 2^32. Threads: static chunks of the columns.
inline void countsketch_hash(std::uint64_t seed, index_t m, index_t start, index_t count, index_t* rows,
                             double* signs, int nthreads) {
  require(m >= 1 && m <= (index_t(1) << 32), "m: must lie in [1, 2**32]");
  require(start >= 0 && count >= 0, "start and count must be >= 0");
  FASTLR_ISA_CALL(countsketch_hash_impl, detail::mix64(seed), static_cast<std::uint64_t>(m),
                  static_cast<std::uint64_t>(start), count, rows, signs, useful_threads(nthreads, count / 4));
}

namespace detail {

// S A into out; with kEnergy and a row-major A also energy[i] = ||A[i, :]||^2 in the same pass (a column-major
// A leaves energy to the caller: row_squared_norms_dense's pass).
template <bool kEnergy = false, class T, class Src>
void countsketch_dense_src(const T* A, index_t n, index_t d, index_t ld, bool col_major, const Src& src,
                           index_t m, T* out, int nthreads, double* energy = nullptr) {
  const int chunks = col_major ? 1 : sum_chunks(n, n * d, m * d);
  const int want = std::min(useful_threads(nthreads, n * d), col_major ? nthreads : chunks);
  // Row-major: `chunks` accumulators (acc_layout), uninitialized, 64-byte aligned.
  detail::AlignedBuffer<T> acc;
  acc.allocate(col_major ? 0 : chunks * acc_layout(A, m, d, ld).stride);
  std::vector<T> work(col_major ? static_cast<size_t>(m * d) : 0);
  const bool hashed = col_major && !std::is_same_v<Src, ArraySketch<T>>;
  const size_t blocks = hashed ? static_cast<size_t>(want) * kColBlock : 0;
  std::unique_ptr<index_t[]> rbuf(new index_t[blocks]);  // uninitialized: filled before use
  std::unique_ptr<T[]> vbuf(new T[blocks]);
  // Column-major: each thread's run flags for one block (countsketch_cols).
  const index_t segs = run_segments(std::is_same_v<Src, ArraySketch<T>> ? std::max<index_t>(n, 1) : kColBlock);
  std::unique_ptr<unsigned char[]> fbuf(new unsigned char[col_major ? static_cast<size_t>(want * segs) : 0]);
  throw_kernel_error(FASTLR_ISA_CALL(countsketch_dense_impl, A, n, d, ld, col_major, src, m, out, want, chunks,
                                     col_major ? work.data() : acc.data, rbuf.get(), vbuf.get(), fbuf.get(),
                                     segs, dense_prefetch_bytes(variant_level()),
                                     dense_strip_bytes(d * static_cast<index_t>(sizeof(T)), m * d * static_cast<index_t>(sizeof(T))),
                                     dense_bucket_row_bytes(variant_level(), m), energy,
                                     std::bool_constant<kEnergy>{}));
}

template <class T, class I, class Src>
void countsketch_csr_src(const I* indptr, const I* indices, const T* data, index_t nnz, index_t n, index_t d,
                         const Src& src, index_t m, T* out, int nthreads) {
  check_indptr_ends(indptr, n, nnz);
  const int chunks = sum_chunks(n, nnz + n, m * d);
  const int want = std::min(useful_threads(nthreads, nnz + n / 4), chunks);
  std::vector<T> work(static_cast<size_t>(chunks - 1) * m * d);
  throw_kernel_error(FASTLR_ISA_CALL(countsketch_csr_impl, indptr, indices, data, nnz, n, d, src, m, out, want,
                                     chunks, work.data()));
}

template <class T, class I, class Src>
void countsketch_csc_src(const I* indptr, const I* indices, const T* data, index_t nnz, index_t n, index_t d,
                         const Src& src, index_t m, T* out, int nthreads) {
  check_indptr_ends(indptr, d, nnz);
  const int want = useful_threads(nthreads, nnz + d * m / 4);
  std::vector<T> work(static_cast<size_t>(want) * m);
  throw_kernel_error(
      FASTLR_ISA_CALL(countsketch_csc_impl, indptr, indices, data, nnz, n, d, src, m, out, want, work.data()));
}

template <class T>
HashSketch<T> hash_sketch(std::uint64_t seed, index_t m, index_t start) {
  require(m >= 1 && m <= (index_t(1) << 32), "m: must lie in [1, 2**32]");
  require(start >= 0, "start: must be >= 0");
  return {mix64(seed), static_cast<std::uint64_t>(m), static_cast<std::uint64_t>(start)};
}

}  // namespace detail

/// S A for a dense n x d matrix A.
/// Layout: row-major (A[i*ld + j]) or, when col_major, column-major (A[i + j*ld]).
/// out: m x d row-major, caller-allocated, overwritten.
/// Threads: row-major A is split into sum_chunks(...) contiguous row chunks
/// (fixed by the problem, not the thread count) with m x d accumulators added
/// in chunk order; column-major A is split into column chunks (each output
/// column has one owner, no reduction). Either way S A is bit-identical at
/// every thread count.
/// Throws std::invalid_argument when a row index lies outside [0, m).
template <class T>
void countsketch_dense(const T* A, index_t n, index_t d, index_t ld, bool col_major, const index_t* rows,
                       const T* values, index_t m, T* out, int nthreads) {
  detail::countsketch_dense_src(A, n, d, ld, col_major, detail::ArraySketch<T>{rows, values, m}, m, out, nthreads);
}

/// S A for a CSR matrix A (n x d, nnz stored entries in indices/data;
/// duplicates are summed, column indices need not be sorted).
/// out: m x d row-major, overwritten.
/// Threads: sum_chunks(...) row chunks balanced by nonzeros (fixed by the
/// problem, not the thread count), accumulators added in chunk order:
/// bit-identical at every thread count.
template <class T, class I>
void countsketch_csr(const I* indptr, const I* indices, const T* data, index_t nnz, index_t n, index_t d,
                     const index_t* rows, const T* values, index_t m, T* out, int nthreads) {
  detail::countsketch_csr_src(indptr, indices, data, nnz, n, d, detail::ArraySketch<T>{rows, values, m}, m, out,
                              nthreads);
}

/// S A for a CSC matrix A (n x d; indptr has d + 1 entries, indices are row
/// indices). out: m x d row-major, overwritten.
/// Threads: column chunks balanced by nonzeros; each output column has one owner.
template <class T, class I>
void countsketch_csc(const I* indptr, const I* indices, const T* data, index_t nnz, index_t n, index_t d,
                     const index_t* rows, const T* values, index_t m, T* out, int nthreads) {
  detail::countsketch_csc_src(indptr, indices, data, nnz, n, d, detail::ArraySketch<T>{rows, values, m}, m, out,
                              nthreads);
}

/// S A for the seeded CountSketch (m, seed) restricted to columns start .. start + n - 1:
/// countsketch_dense with (rows, values) = countsketch_hash(seed, m, start, start + n)
/// (values cast to T), bit for bit at every thread count, without reading or storing
/// them: each block of columns is hashed on the fly. Layout, out and threads as
/// countsketch_dense. Requires 1 <= m <= 2^32 and start >= 0.
template <class T>
void countsketch_seeded_dense(const T* A, index_t n, index_t d, index_t ld, bool col_major, std::uint64_t seed,
                              index_t m, index_t start, T* out, int nthreads) {
  detail::countsketch_dense_src(A, n, d, ld, col_major, detail::hash_sketch<T>(seed, m, start), m, out, nthreads);
}

/// countsketch_csr for the seeded sketch (as countsketch_seeded_dense), bit for bit.
template <class T, class I>
void countsketch_seeded_csr(const I* indptr, const I* indices, const T* data, index_t nnz, index_t n, index_t d,
                            std::uint64_t seed, index_t m, index_t start, T* out, int nthreads) {
  detail::countsketch_csr_src(indptr, indices, data, nnz, n, d, detail::hash_sketch<T>(seed, m, start), m, out,
                              nthreads);
}

/// countsketch_csc for the seeded sketch (as countsketch_seeded_dense), bit for bit.
template <class T, class I>
void countsketch_seeded_csc(const I* indptr, const I* indices, const T* data, index_t nnz, index_t n, index_t d,
                            std::uint64_t seed, index_t m, index_t start, T* out, int nthreads) {
  detail::countsketch_csc_src(indptr, indices, data, nnz, n, d, detail::hash_sketch<T>(seed, m, start), m, out,
                              nthreads);
}

/// g[i] = <A[i, :], D[rows[i], :]> for dense A (n x d, row- or column-major as in
/// countsketch_dense) and row-major D (m x d): the backward pass of S A with
/// respect to the sketch values. Threads: row chunks, no shared writes.
template <class T>
void countsketch_gather_dot(const T* A, index_t n, index_t d, index_t ld, bool col_major, const index_t* rows,
                            const T* D, index_t m, T* g, int nthreads) {
  const int want = useful_threads(nthreads, n * d);
  std::vector<T> Dt;
  if (col_major) {
    Dt.resize(static_cast<size_t>(m * d));
    for (index_t r = 0; r < m; ++r)
      for (index_t j = 0; j < d; ++j) Dt[j * m + r] = D[r * d + j];
  }
  throw_kernel_error(FASTLR_ISA_CALL(gather_dot_impl, A, n, d, ld, col_major, rows, D, Dt.data(), m, g, want));
}

/// g[i] = <A[i, :], D[rows[i], :]> for CSR A (n x d); D row-major m x d.
/// Threads: row chunks balanced by nonzeros.
template <class T, class I>
void countsketch_gather_dot_csr(const I* indptr, const I* indices, const T* data, index_t nnz, index_t n,
                                index_t d, const index_t* rows, const T* D, index_t m, T* g, int nthreads) {
  detail::check_indptr_ends(indptr, n, nnz);
  const int want = useful_threads(nthreads, nnz + n / 4);
  throw_kernel_error(FASTLR_ISA_CALL(gather_dot_csr_impl, indptr, indices, data, nnz, n, d, rows, D, m, g, want));
}


}  // namespace fastlr
