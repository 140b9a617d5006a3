// Bindings for the gradient-descent kernels (csrc/include/fastlr/gd.hpp).
#include "common.hpp"

namespace fastlr::bind {

void bind_gd(py::module_& m) { (void)m; }

}  // namespace fastlr::bind
