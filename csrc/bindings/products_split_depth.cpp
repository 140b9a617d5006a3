// Row passes over row-major A whose d x kp factor (V, or the accumulator Z) passes L2, on AVX2
// (products_dense.hpp's dense_row_pass picks them: depth_blocked): a translation unit of its own,
// compiled outside LTO and linked after products_split.cpp, so the split tiles keep their code's place
// (code placement moves AVX2 timings by 10-20% on Zen 2: fifteenth session, HS; with these functions
// inside products_split.cpp its float32 A @ V at 20 columns ran 5-9% slower). A few narrow widths of
// the LTO-compiled dense_rows_avx2 still moved by 4-17% (bench/README.md, nineteenth session, HK).
#include "fastlr/products_dense.hpp"

namespace fastlr::detail {

#if defined(FASTLR_X86_DISPATCH)
namespace {

// Columns of A per depth block at kp padded columns: the block's rows of the factor (V's, or Z's) take
// at most 3/8 of L2 (beside the group's rows of A swept through it), in whole cache lines of A's rows,
// the d columns shared out evenly. (Zen 2, 1080 x 5760 float64 at 22-56 columns: 1/4 and 1/2 of L2, and
// groups of 24, 96 or 144 rows, within 1-3% of this.)
template <class T>
index_t depth_columns(index_t d, index_t kp) {
  const index_t budget = cache_l2_bytes().load(std::memory_order_relaxed) * 3 / 8;
  const index_t line = kLine / index_t(sizeof(T));
  const index_t most = std::max<index_t>(line, budget / (kp * index_t(sizeof(T))) / line * line);
  const index_t blocks = (d + most - 1) / most;
  return round_up((d + blocks - 1) / blocks, line);
}

// Rows [b, e) of any pass over row-major A whose factor (V, or Z) passes L2 (depth_blocked), in groups
// of p.group_rows rows (whole tiles), each group's forward half, then its backward half, in depth blocks
// of A's columns: each block's rows of V (or Z) come into L2 once a group, not once a 6-row tile of
// dense_rows (whose sweeps then ran from L3, three or four times over for V's lines at 22, 28 and 30
// padded float64 columns, rows that start mid cache line). Every output entry gets the same additions
// in the same order as in dense_rows (the forward tiles carry their accumulators across blocks through
// Yb; the backward tiles add each row's term in row order), so the results are dense_rows's, bit for bit,
// at every thread count.
template <class T>
__attribute__((target("avx2,fma"), flatten)) void depth_rows(const DensePass<T>& p, index_t b, index_t e, T* Z,
                                                             T* buf) {
  constexpr int L = vector_lanes<T>(kAvx2);
  constexpr int R = kTileRowsAvx2;
  const bool fwd = has_forward(p.pass), bwd = has_backward(p.pass), use_y = backward_uses_y(p.pass);
  const index_t d = p.d, k = p.k, kp = p.kp, ldx = p.ld;
  const index_t G = p.group_rows;
  const index_t D = depth_columns<T>(d, kp);
  T* Yb = buf;
  T* Wb = buf + std::max<index_t>(G, scratch_rows(R)) * kp;
  for (index_t s0 = b; s0 < e; s0 += G) {
    const index_t s1 = std::min(e, s0 + G);
    if (fwd) {
      for (index_t j0 = 0; j0 < d; j0 += D) {
        const index_t dj = std::min(D, d - j0);
        const T* Vj = p.Vp + j0 * kp;
        for (index_t i0 = s0; i0 < s1; i0 += R) {
          const int rr = static_cast<int>(std::min<index_t>(R, s1 - i0));
          const T* Xr = p.A + i0 * ldx + j0;
          T* Yr = Yb + (i0 - s0) * kp;
          const T* pf = p.prefetch && i0 + 2 * R <= s1 ? Xr + R * ldx : nullptr;
          if (rr == R) {
            if (j0 == 0) {
              forward_rows<T, R, L>(Xr, ldx, dj, Vj, kp, Yr, pf);
            } else {
              forward_rows<T, R, L, true>(Xr, ldx, dj, Vj, kp, Yr, pf);
            }
          } else {
            for (int r = 0; r < rr; ++r) {
              if (j0 == 0) {
                forward_rows<T, 1, L>(Xr + r * ldx, ldx, dj, Vj, kp, Yr + r * kp);
              } else {
                forward_rows<T, 1, L, true>(Xr + r * ldx, ldx, dj, Vj, kp, Yr + r * kp);
              }
            }
          }
        }
      }
      if (p.Y != nullptr) copy_rows_unpadded(p.Y + s0 * k, k, Yb, kp, static_cast<int>(s1 - s0));
    }
    if (bwd) {
      const T* wrows = Yb;
      if (!use_y) {
        copy_rows_padded(Wb, kp, p.W + s0 * k, k, static_cast<int>(s1 - s0));
        wrows = Wb;
      }
      for (index_t j0 = 0; j0 < d; j0 += D) {
        const index_t dj = std::min(D, d - j0);
        T* Zj = Z + j0 * kp;
        for (index_t i0 = s0; i0 < s1; i0 += R) {
          const int rr = static_cast<int>(std::min<index_t>(R, s1 - i0));
          const T* Xr = p.A + i0 * ldx + j0;
          const T* Wr = wrows + (i0 - s0) * kp;
          const T* pf = p.prefetch && i0 + 2 * R <= s1 ? Xr + R * ldx : nullptr;
          if (rr == R) {
            backward_rows<T, R, L>(Xr, ldx, dj, Wr, kp, Zj, pf);
          } else {
            for (int r = 0; r < rr; ++r) backward_rows<T, 1, L>(Xr + r * ldx, ldx, dj, Wr + r * kp, kp, Zj);
          }
        }
      }
    }
  }
}

}  // namespace

void dense_depth_avx2(const DensePass<float>& p, index_t, index_t b, index_t e, float* Z, float* buf) {
  depth_rows<float>(p, b, e, Z, buf);
}
void dense_depth_avx2(const DensePass<double>& p, index_t, index_t b, index_t e, double* Z, double* buf) {
  depth_rows<double>(p, b, e, Z, buf);
}

#endif

}  // namespace fastlr::detail
