// One-pass products of a matrix A (n x d) with thin factors (k columns):
//   matmul       Y = A V                      V: d x k
//   rmatmul      Z = A^T W                    W: n x k
//   gd_products  (A V, A^T U) in one pass     U: n x k, V: d x k
//   power_step   Y = A Q, Z = A^T Y in one pass
// for dense A (row- or column-major) and CSR A. Every kernel is one "row pass":
// for each row a_i, optionally y_i = a_i V (forward) and Z += a_i^T w_i
// (backward), where w_i is a given row or the y_i just computed.
// The code is split by concern: products_simd.hpp (RowPass, SIMD register tiles,
// ISA levels, shared buffers), products_dense.hpp (dense_row_pass) and
// products_csr.hpp (csr_row_pass).
#pragma once

#include "fastlr/products_csr.hpp"
#include "fastlr/products_dense.hpp"
#include "fastlr/products_simd.hpp"
