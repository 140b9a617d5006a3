// Microbenchmark: the dense CountSketch scatter against one read of A (the memory floor).
// Not part of the build. Single thread, CPU time, min over interleaved rounds; A on 2 MB
// pages, starting `aoff` bytes into a cache line (NumPy's large arrays start 16 bytes in).
//
//   g++ -O3 -std=c++17 -fopenmp -DFASTLR_HAVE_OPENMP -DFASTLR_DISPATCH=1 -Icsrc/include \
//       bench/countsketch_scatter_mb.cpp -o /tmp/cs_mb
//   /tmp/cs_mb n d m {d|f} rounds [aoff=16]
//
// Variants (all but `shipped` and `gather` sum each output entry in row order in one accumulator,
// checked bit for bit; `shipped` sums fixed row chunks separately, then adds them in order):
//   floor     tight read of A (four vectorized partial sums)
//   shipped   fastlr::countsketch_seeded_dense at one thread
//   plain     one accumulator, out[r_i] += v_i A[i] row after row (NumPy-aligned accumulator)
//   aligned   plain with a 64-byte aligned accumulator lined up with A's rows, stores aligned
//   gather    the read-only analogue: s += <A[i], acc[r_i]> (no stores at all)
//   tiles     row blocks of R rows, 512-byte column tiles (accumulator tile in L1), next block prefetched
//   buckets   row blocks of R rows taken in order of target row (stable), next block prefetched
#include <sys/mman.h>
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <string>

#include "fastlr/countsketch.hpp"

using namespace fastlr;
using detail::HashSketch;
#define V4 __attribute__((target("arch=x86-64-v4")))

static double cpu() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

template <class T>
V4 T read_sum(const T* a, size_t n) {
  T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
  for (size_t i = 0; i < n / 4 * 4; i += 4) {
    s0 += a[i]; s1 += a[i + 1]; s2 += a[i + 2]; s3 += a[i + 3];
  }
  return s0 + s1 + s2 + s3;
}

template <class T, class Body>
V4 void blocks(index_t n, index_t m, index_t R, Body body) {
  HashSketch<T> src{detail::mix64(1), static_cast<uint64_t>(m), 0};
  std::vector<index_t> r(R);
  std::vector<T> v(R);
  for (index_t i0 = 0; i0 < n; i0 += R) {
    const index_t k = std::min(R, n - i0);
    src.fill(i0, k, r.data(), v.data());
    body(i0, k, r.data(), v.data());
  }
}

template <class T>
V4 void plain(const T* A, index_t n, index_t d, index_t m, T* acc, index_t ldo) {
  std::fill(acc, acc + m * ldo, T(0));
  blocks<T>(n, m, 256, [&](index_t i0, index_t k, const index_t* r, const T* v) {
    for (index_t j = 0; j < k; ++j) {
      const T* __restrict a = A + (i0 + j) * d;
      T* __restrict o = acc + r[j] * ldo;
      for (index_t c = 0; c < d; ++c) o[c] += v[j] * a[c];
    }
  });
}

template <class T>
V4 void aligned(const T* A, index_t n, index_t d, index_t m, T* acc, index_t ldo) {
  std::fill(acc, acc + m * ldo, T(0));
  blocks<T>(n, m, 256, [&](index_t i0, index_t k, const index_t* r, const T* v) {
    for (index_t j = 0; j < k; ++j) detail::axpy_aligned_out(acc + r[j] * ldo, A + (i0 + j) * d, v[j], d);
  });
}

template <class T>
V4 T gather(const T* A, index_t n, index_t d, index_t m, const T* acc, index_t ldo) {
  T total = 0;
  blocks<T>(n, m, 256, [&](index_t i0, index_t k, const index_t* r, const T*) {
    for (index_t j = 0; j < k; ++j) {
      const T* __restrict a = A + (i0 + j) * d;
      const T* __restrict o = acc + r[j] * ldo;
      T s = 0;
#pragma omp simd reduction(+ : s)
      for (index_t c = 0; c < d; ++c) s += a[c] * o[c];
      total += s;
    }
  });
  return total;
}

template <class T>
V4 void prefetch_next(const char*& pf, const char* end, index_t lines) {
  for (index_t p = 0; p < lines && pf < end; ++p, pf += 64) __builtin_prefetch(pf, 0, 3);
}

template <class T>
V4 void tiles(const T* A, index_t n, index_t d, index_t m, T* acc, index_t ldo, index_t R) {
  constexpr index_t W = 512 / sizeof(T);
  std::fill(acc, acc + m * ldo, T(0));
  const char* Aend = reinterpret_cast<const char*>(A + n * d);
  blocks<T>(n, m, R, [&](index_t i0, index_t k, const index_t* r, const T* v) {
    const char* pf = reinterpret_cast<const char*>(A + (i0 + k) * d);
    const char* pfe = std::min(Aend, pf + k * d * sizeof(T));
    for (index_t c0 = 0; c0 < d; c0 += W) {
      const index_t w = std::min(W, d - c0);
      for (index_t j = 0; j < k; ++j) {
        prefetch_next<T>(pf, pfe, 8);
        T* __restrict o = acc + r[j] * ldo + c0;
        const T* __restrict a = A + (i0 + j) * d + c0;
        for (index_t c = 0; c < w; ++c) o[c] += v[j] * a[c];
      }
    }
  });
}

template <class T>
V4 void buckets(const T* A, index_t n, index_t d, index_t m, T* acc, index_t ldo, index_t R) {
  std::fill(acc, acc + m * ldo, T(0));
  std::vector<index_t> start(m + 1), order(R);
  const char* Aend = reinterpret_cast<const char*>(A + n * d);
  const index_t lines = (d * sizeof(T) + 63) / 64;
  blocks<T>(n, m, R, [&](index_t i0, index_t k, const index_t* r, const T* v) {
    std::fill(start.begin(), start.end(), 0);
    for (index_t j = 0; j < k; ++j) ++start[r[j] + 1];
    for (index_t t = 0; t < m; ++t) start[t + 1] += start[t];
    for (index_t j = 0; j < k; ++j) order[start[r[j]]++] = j;  // stable: rows stay in order per target
    const char* pf = reinterpret_cast<const char*>(A + (i0 + k) * d);
    const char* pfe = std::min(Aend, pf + k * d * sizeof(T));
    for (index_t q = 0; q < k; ++q) {
      prefetch_next<T>(pf, pfe, lines);
      const index_t j = order[q];
      detail::axpy_aligned_out(acc + r[j] * ldo, A + (i0 + j) * d, v[j], d);
    }
  });
}

template <class T>
void run(index_t n, index_t d, index_t m, int rounds, int aoff) {
  const size_t bytes = ((n * d * sizeof(T) + 128 + (2 << 20) - 1) >> 21) << 21;
  char* raw = static_cast<char*>(aligned_alloc(2 << 20, bytes));
  madvise(raw, bytes, MADV_HUGEPAGE);
  std::mt19937_64 g(1);
  std::normal_distribution<double> N;
  for (size_t i = 0; i < bytes / sizeof(T); ++i) reinterpret_cast<T*>(raw)[i] = static_cast<T>(N(g));
  const T* A = reinterpret_cast<const T*>(raw + aoff);
  // accumulator: rows of whole cache lines; lined up with A when A's rows are whole lines apart
  constexpr index_t line = 64 / sizeof(T);
  const bool same = (d * sizeof(T)) % 64 == 0;
  const index_t ldo = same ? d : (d + line - 1) / line * line;
  char* abuf = static_cast<char*>(aligned_alloc(64, (m * ldo + line) * sizeof(T)));
  T* acc = reinterpret_cast<T*>(abuf + (same ? aoff : 0));
  std::vector<T> np_acc(m * d + 2);  // malloc'd: 16-byte aligned, as NumPy's output
  std::vector<T> ref(m * d), got(m * d), chunked(m * d);
  auto extract = [&](const T* o, index_t ld) {
    for (index_t i = 0; i < m; ++i) std::memcpy(got.data() + i * d, o + i * ld, d * sizeof(T));
  };
  volatile T sink;
  std::map<std::string, std::function<void()>> calls;
  calls["floor"] = [&] { sink = read_sum(A, n * d); };
  calls["shipped"] = [&] { countsketch_seeded_dense<T>(A, n, d, d, false, 1, m, 0, chunked.data(), 1); };
  calls["plain"] = [&] { plain(A, n, d, m, np_acc.data() + 2, d); extract(np_acc.data() + 2, d); };
  calls["aligned"] = [&] { aligned(A, n, d, m, acc, ldo); extract(acc, ldo); };
  calls["gather"] = [&] { sink = gather(A, n, d, m, acc, ldo); };
  for (index_t R : {32, 64, 128, 256}) {
    if (R != 128) calls["tiles_R" + std::to_string(R)] = [&, R] { tiles(A, n, d, m, acc, ldo, R); extract(acc, ldo); };
    if (R * d * static_cast<index_t>(sizeof(T)) <= 600 * 1024)
      calls["buckets_R" + std::to_string(R)] = [&, R] { buckets(A, n, d, m, acc, ldo, R); extract(acc, ldo); };
  }
  plain(A, n, d, m, np_acc.data() + 2, d);  // the one-accumulator sums every variant must equal
  for (index_t i = 0; i < m; ++i) std::memcpy(ref.data() + i * d, np_acc.data() + 2 + i * d, d * sizeof(T));
  std::map<std::string, double> best;
  for (auto& c : calls) best[c.first] = 1e9;
  for (int round = 0; round < rounds; ++round)
    for (auto& c : calls) {
      const double t0 = cpu();
      c.second();
      best[c.first] = std::min(best[c.first], cpu() - t0);
      const bool checked = c.first != "floor" && c.first != "gather" && c.first != "shipped";
      if (checked && std::memcmp(ref.data(), got.data(), m * d * sizeof(T)) != 0)
        std::printf("MISMATCH %s\n", c.first.c_str());
    }
  for (auto& b : best)
    std::printf("%-12s %8.3f ms  %.2fx floor\n", b.first.c_str(), 1e3 * b.second, b.second / best["floor"]);
}

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: %s n d m {d|f} rounds [aoff]\n", argv[0]);
    return 2;
  }
  const index_t n = std::atol(argv[1]), d = std::atol(argv[2]), m = std::atol(argv[3]);
  const int rounds = std::atoi(argv[5]), aoff = argc > 6 ? std::atoi(argv[6]) : 16;
  if (argv[4][0] == 'f')
    run<float>(n, d, m, rounds, aoff);
  else
    run<double>(n, d, m, rounds, aoff);
  return 0;
}
