// Shared building blocks for fastlr kernels: index type, argument checks,
// static work partitioning and OpenMP guards. No Python here.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(FASTLR_HAVE_OPENMP)
#include <omp.h>
#endif

// Run-time ISA dispatch on x86-64 with GCC/Clang (wheels stay portable):
// - FASTLR_X86_DISPATCH: the register-tiled product kernels (products_*.hpp) are
//   compiled for each level with target attributes and picked by cpu_level().
// - FASTLR_ISA_DISPATCH: the CountSketch and gradient-descent kernels
//   (countsketch_kernels.inc, gd_kernels.inc) are compiled three times, for
//   x86-64-v4 (AVX-512), x86-64-v3 (AVX2/FMA) and the baseline, in namespaces
//   detail::isa_v4 / isa_v3 / isa_base (isa_variants.inc), and FASTLR_ISA_CALL
//   picks one by cpu_level() too, so the ISA cap (isa_cap) reaches every kernel.
// Without them (FASTLR_NO_DISPATCH, FASTLR_NATIVE's -march=native, other CPUs
// and compilers) one variant, isa_base, is compiled for the compiler's target.
#if !defined(FASTLR_NO_DISPATCH) && defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FASTLR_X86_DISPATCH 1  // run-time choice of the register-tiled product kernels
#endif
// GCC 11 / Clang 12 know the x86-64-vN names. Linux and Clang >= 14 as the
// former target_clones build (which needed the loader's ifunc): explicit target
// attributes need none, but other platforms are untested.
#if defined(FASTLR_DISPATCH) && defined(FASTLR_X86_DISPATCH) && defined(__linux__) && \
    ((defined(__clang__) && __clang_major__ >= 14) || (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11))
#define FASTLR_ISA_DISPATCH 1
#define FASTLR_ISA_TARGETS "x86-64-v4 (AVX-512), x86-64-v3 (AVX2/FMA), baseline"
#else
#define FASTLR_ISA_TARGETS ""
#endif

// Helpers an ISA variant of a kernel calls must be inlined into it to be compiled
// for its ISA (an out-of-line helper is compiled for the baseline only).
#if defined(__GNUC__) || defined(__clang__)
#define FASTLR_INLINE inline __attribute__((always_inline))
#else
#define FASTLR_INLINE inline
#endif

namespace fastlr {

/// x86-64 vector ISA levels the kernels are compiled for: the ISA variants of the
/// CountSketch and gd kernels (FASTLR_ISA_CALL) and the register-tiled product
/// kernels (products.hpp) all follow this one detection, within isa_cap().
enum IsaLevel : int { kIsaBaseline = 0, kIsaAvx2 = 1, kIsaAvx512 = 2 };

/// The widest ISA level this CPU runs (detected once); baseline when dispatch is off.
inline int cpu_isa_level() {
#if defined(FASTLR_X86_DISPATCH)
  static const int level = [] {
    __builtin_cpu_init();
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
      return static_cast<int>(kIsaAvx512);
    return static_cast<int>(avx2 ? kIsaAvx2 : kIsaBaseline);
  }();
  return level;
#else
  return kIsaBaseline;
#endif
}

/// Name of an IsaLevel.
inline const char* isa_name(int level) {
  return level == kIsaAvx512 ? "x86-64-v4" : level == kIsaAvx2 ? "x86-64-v3" : "baseline";
}

/// The instruction set the dispatched kernels can run with on this CPU (cap aside).
inline const char* dispatched_isa() {
#if defined(FASTLR_X86_DISPATCH)
  return isa_name(cpu_isa_level());
#else
  return "compile-time";
#endif
}

namespace detail {

/// Cap on the ISA level every dispatched kernel runs at (tests and benchmarks set
/// it to run the AVX2 and baseline code on an AVX-512 machine; _core._cap_isa).
inline std::atomic<int>& isa_cap() {
  static std::atomic<int> cap{kIsaAvx512};
  return cap;
}

/// The ISA level the dispatched kernels run at: this CPU's widest, within the cap.
inline int cpu_level() { return std::min(cpu_isa_level(), isa_cap().load(std::memory_order_relaxed)); }

/// This CPU's L2 (per core) and L3 sizes in bytes, which some kernels' bounds scale with
/// (products_csr.hpp). Python sets them from sysfs when it loads the module
/// (_core._set_cache_sizes, from _caches.read_cache_sizes()); until then 512 KiB / 16 MiB, its
/// fallback. (glibc's sysconf gave 256 MiB of L3 on a 16 MiB Zen 2 VM.)
inline std::atomic<std::int64_t>& cache_l2_bytes() {
  static std::atomic<std::int64_t> bytes{std::int64_t(512) << 10};
  return bytes;
}
inline std::atomic<std::int64_t>& cache_l3_bytes() {
  static std::atomic<std::int64_t> bytes{std::int64_t(16) << 20};
  return bytes;
}

/// The level the last FASTLR_ISA_CALL ran (-1: none yet); a testing hook that shows
/// the cap reaches the CountSketch and gd kernels (_core._last_kernel_isa).
inline std::atomic<int>& last_kernel_isa() {
  static std::atomic<int> level{-1};
  return level;
}

/// The variant FASTLR_ISA_CALL runs: cpu_level() with dispatch, else isa_base alone.
inline int variant_level() {
#if defined(FASTLR_ISA_DISPATCH)
  return cpu_level();
#else
  return kIsaBaseline;
#endif
}

/// variant_level(), recorded in last_kernel_isa().
inline int kernel_level() {
  const int level = variant_level();
  last_kernel_isa().store(level, std::memory_order_relaxed);
  return level;
}

}  // namespace detail

// detail::isa_v4::fn(args...), isa_v3::fn or isa_base::fn (isa_variants.inc) by
// detail::kernel_level(). fn may carry template arguments (fn<T>).
#if defined(FASTLR_ISA_DISPATCH)
#define FASTLR_ISA_CALL(fn, ...)                                                              \
  [&] {                                                                                       \
    switch (::fastlr::detail::kernel_level()) {                                               \
      case ::fastlr::kIsaAvx512: return ::fastlr::detail::isa_v4::fn(__VA_ARGS__);            \
      case ::fastlr::kIsaAvx2: return ::fastlr::detail::isa_v3::fn(__VA_ARGS__);              \
      default: return ::fastlr::detail::isa_base::fn(__VA_ARGS__);                            \
    }                                                                                         \
  }()
#else
#define FASTLR_ISA_CALL(fn, ...) \
  ((void)::fastlr::detail::kernel_level(), ::fastlr::detail::isa_base::fn(__VA_ARGS__))
#endif

using index_t = std::int64_t;

/// Throw std::invalid_argument (ValueError in Python) unless `ok`.
inline void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument(what);
}

/// require() that builds its message only on failure: argument checks run on
/// every kernel call, and formatting a dtype name costs microseconds.
#define FASTLR_REQUIRE(ok, what)                             \
  do {                                                       \
    if (!(ok)) throw std::invalid_argument(what);            \
  } while (0)

/// Id of the calling thread inside a parallel region (0 without OpenMP).
inline int thread_id() {
#if defined(FASTLR_HAVE_OPENMP)
  return omp_get_thread_num();
#else
  return 0;
#endif
}

/// Size of the current OpenMP team (1 outside a parallel region or without OpenMP).
inline int omp_threads_in_team() {
#if defined(FASTLR_HAVE_OPENMP)
  return omp_get_num_threads();
#else
  return 1;
#endif
}

/// Threads actually worth using for `work` units (about one cache line of
/// arithmetic each): tiny problems run serially, so threading never slows
/// a small call down.
inline int useful_threads(int nthreads, index_t work, index_t min_work_per_thread = 16384) {
#if defined(FASTLR_HAVE_OPENMP)
  if (nthreads < 1) nthreads = 1;
  index_t cap = std::max<index_t>(1, work / min_work_per_thread);
  return static_cast<int>(std::min<index_t>(nthreads, cap));
#else
  (void)work; (void)min_work_per_thread;
  (void)nthreads;
  return 1;
#endif
}

/// Number of row chunks whose partial sums (accumulators of `acc_size` entries)
/// a reduction adds in a fixed order: a function of the problem only, never of the
/// thread count, so such sums are bit-identical at every thread count. Up to 8
/// chunks, each of at least 1024 of the n rows and at least 8 accumulators' worth
/// of the `entries` read (so zeroing and adding the accumulators stays small).
inline int sum_chunks(index_t n, index_t entries, index_t acc_size) {
  const index_t v = std::min<index_t>(n / 1024, entries / (8 * std::max<index_t>(acc_size, 1)));
  return static_cast<int>(std::max<index_t>(1, std::min<index_t>(v, 8)));
}

/// [begin, end) of chunk t of `n` items split into `parts` contiguous chunks.
/// Static, so results are deterministic for a given thread count.
inline void chunk_range(index_t n, int parts, int t, index_t& begin, index_t& end) {
  begin = n * t / parts;
  end = n * (t + 1) / parts;
}

/// Chunk t of the rows of a compressed (CSR/CSC) matrix, balanced by nonzeros:
/// chunk boundaries are where the running nnz crosses t * nnz / parts.
template <class I>
inline void nnz_chunk_range(const I* indptr, index_t n, int parts, int t, index_t& begin, index_t& end) {
  const index_t nnz = static_cast<index_t>(indptr[n]) - static_cast<index_t>(indptr[0]);
  auto boundary = [&](int k) -> index_t {
    if (k <= 0) return 0;
    if (k >= parts) return n;
    const index_t target = static_cast<index_t>(indptr[0]) + nnz * k / parts;
    // first row whose start is >= target
    return static_cast<index_t>(std::lower_bound(indptr, indptr + n, target,
        [](I a, index_t b) { return static_cast<index_t>(a) < b; }) - indptr);
  };
  begin = boundary(t);
  end = boundary(t + 1);
}

namespace detail {

/// A compressed matrix's indptr (outer + 1 entries) starts at 0 and ends at nnz (the kernels check that it
/// does not decrease as they read it).
template <class I>
inline void check_indptr_ends(const I* indptr, index_t outer, index_t nnz) {
  require(static_cast<index_t>(indptr[0]) == 0 && static_cast<index_t>(indptr[outer]) == nnz,
          "A: sparse indptr must start at 0 and end at nnz (the length of indices and data)");
}

}  // namespace detail

/// Sum per-thread accumulators into out; thread t handles a slice.
template <class T>
inline void reduce_slices(T* out, const T* acc, index_t size, int nacc, int parts, int t) {
  index_t b, e;
  chunk_range(size, parts, t, b, e);
  for (int s = 0; s < nacc; ++s) {
    const T* __restrict src = acc + s * size;
    for (index_t k = b; k < e; ++k) out[k] += src[k];
  }
}

/// True when `i` is a valid index into [0, n) (one unsigned compare).
inline bool in_range(index_t i, index_t n) {
  return static_cast<std::uint64_t>(i) < static_cast<std::uint64_t>(n);
}

/// Reasons a kernel rejects its input, for every kernel (CountSketch, products, gd).
/// ISA variants return one of these (or record it in an ErrorFlag) rather than throw
/// inside a parallel region, and the outer function calls throw_kernel_error.
/// fastlr/_kernels/_errors.py mirrors these codes and messages for the Python backends.
enum KernelError : int { kOk = 0, kBadRow = 1, kBadIndex = 2, kBadIndptr = 3 };

/// Throw the std::invalid_argument (ValueError in Python) a KernelError stands for; 0: no error.
inline void throw_kernel_error(int code) {
  switch (code) {
    case kOk: return;
    case kBadRow: throw std::invalid_argument("rows: every entry must lie in [0, m)");
    case kBadIndex: throw std::invalid_argument("A: a sparse column/row index lies outside the matrix");
    case kBadIndptr:
      throw std::invalid_argument("A: sparse indptr must start at 0, be non-decreasing and end at nnz");
    default: throw std::invalid_argument("invalid kernel input");
  }
}

/// Kernels validate indices inline, while they stream the data, and record a
/// failure here instead of throwing inside a parallel region.
struct ErrorFlag {
  int code = kOk;  // else a KernelError
  void set(int c) {
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp atomic write
#endif
    code = c;
  }
};

namespace detail {

constexpr index_t kLine = 64;  // bytes in a cache line (and in an AVX-512 vector)

inline bool cache_aligned(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % kLine == 0; }

/// n entries starting on a cache-line boundary: ``assign`` zeroes them, ``allocate`` leaves
/// them uninitialized (buffers that every use writes before it reads).
template <class T>
struct AlignedBuffer {
  std::unique_ptr<T[]> storage;
  T* data = nullptr;
  void allocate(index_t n) {
    const index_t slack = kLine / index_t(sizeof(T));
    storage.reset(new T[static_cast<size_t>(n + slack)]);
    const auto misalign = reinterpret_cast<std::uintptr_t>(storage.get()) % kLine;
    data = storage.get() + (misalign == 0 ? 0 : (kLine - misalign) / sizeof(T));
  }
  void assign(index_t n) {
    allocate(n);
    std::fill(data, data + n, T(0));
  }
};

}  // namespace detail

}  // namespace fastlr
