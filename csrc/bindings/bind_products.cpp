// Bindings for the one-pass product kernels (csrc/include/fastlr/products.hpp).
#include "common.hpp"

namespace fastlr::bind {

void bind_products(py::module_& m) { (void)m; }

}  // namespace fastlr::bind
