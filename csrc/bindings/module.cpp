// The _core extension: thread settings, build information and every kernel.
#include <atomic>

#include "common.hpp"

namespace fastlr::bind {

namespace {
int default_threads() {
#if defined(FASTLR_HAVE_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}
std::atomic<int> g_threads{default_threads()};
thread_local int t_threads = 0;  // 0: follow g_threads
}  // namespace

int kernel_threads() { return t_threads > 0 ? t_threads : g_threads.load(); }

}  // namespace fastlr::bind

namespace py = pybind11;
using namespace fastlr::bind;

PYBIND11_MODULE(_core, m, py::mod_gil_not_used()) {
  m.doc() = "fastlr compiled kernels (C++17, OpenMP when available)";

  m.def("set_num_threads", [](int n) {
    FASTLR_REQUIRE(n >= 1, "n: number of threads must be >= 1, got " + std::to_string(n));
    g_threads.store(n);
  }, py::arg("n"), "Set the threads every kernel may use (process-wide).");
  m.def("set_local_num_threads", [](int n) {
    FASTLR_REQUIRE(n >= 0, "n: number of threads must be >= 0 (0 = process-wide setting)");
    t_threads = n;
  }, py::arg("n"), "Limit the threads of kernels called from this Python thread (0 lifts the limit).");
  m.def("get_num_threads", &kernel_threads, "Threads a kernel called from this Python thread may use.");
  m.def("_set_busy_check", &set_busy_check, py::arg("on"), py::arg("calls_per_check") = 0.0,
        py::arg("every_listed") = -1,
        "Turn the busy-thread check on or off, process-wide (fastlr sets it from FASTLR_BUSY_CHECK on loading "
        "the module); returns the previous setting. Testing hooks: calls_per_check > 0 sets how many times its "
        "own cost a call must be estimated to take for the check to run (200); every_listed 1 applies it to "
        "every thread-count-invariant kernel (_busy_checked_kernels(False)) whatever the call's length, 0 to "
        "the applied ones within the length bounds (-1 keeps the setting).");
  m.def("_busy_threads", [](int nt) {
    py::gil_scoped_release release;
    return busy_threads(nt, 1e300);
  }, py::arg("nt") = 2,
        "Testing hook: threads of this process, other than the caller and the workers of its OpenMP team of nt "
        "threads, running or runnable now (what the busy-thread check counts); -1 where it cannot tell "
        "(not Linux, no OpenMP).");
  m.def("_last_call_threads", &last_call_threads,
        "Testing hook: the thread count the last kernel call from this Python thread was given.");
  m.def("_busy_checked_kernels", [](bool applied_only) {
    py::list names;
    for (const auto& name : busy_checked_kernels(applied_only)) names.append(name);
    return names;
  }, py::arg("applied_only") = true,
        "Kernels the busy-thread check gives fewer threads (applied_only=False: every kernel it may, their "
        "results not depending on the count).");
  m.def("_spin_for", [](double seconds, long ticket) {
    py::gil_scoped_release release;
    spin_for(seconds, ticket);
  }, py::arg("seconds"), py::arg("ticket") = 0,
        "Testing hook: busy-wait `seconds` without the GIL (a running foreign thread), or until _stop_spins(t) "
        "with t >= ticket > 0 (called before or after).");
  m.def("_set_cold_pool", &set_cold_pool, py::arg("after_ms") = -1.0, py::arg("advance_ms") = 0.0,
        "Testing hook of the busy-thread check's cold-pool rule: after_ms >= 0 sets how long the calling thread "
        "must have made no kernel call for a short applied call to run on one thread (20; inf turns the rule "
        "off), advance_ms > 0 moves the rule's clock forward (process-wide) as if that long had passed; returns "
        "the previous after_ms.");
  m.def("_stop_spins", &stop_spins, py::arg("ticket"), "Testing hook: end the _spin_for calls of tickets <= ticket.");

  m.def("build_info", []() {
    py::dict info;
    info["compiler"] = FASTLR_COMPILER;
    info["compiler_version_string"] = __VERSION__;
    info["flags"] = FASTLR_CXX_FLAGS;
    info["build_type"] = FASTLR_BUILD_TYPE;
#if defined(FASTLR_HAVE_OPENMP)
    info["openmp"] = true;
    info["openmp_version"] = _OPENMP;
    info["openmp_max_threads"] = omp_get_max_threads();
#else
    info["openmp"] = false;
    info["openmp_version"] = py::none();
    info["openmp_max_threads"] = 1;
#endif
    info["num_threads"] = kernel_threads();
    // The busy-thread check (busy_threads.cpp): whether this build can run it, and whether it is on.
    info["busy_check_supported"] = busy_check_supported();
    info["busy_check"] = busy_check_supported() && busy_check_enabled();
    info["busy_check_min_call_ms"] = busy_check_min_ns() * 1e-6;
    info["busy_check_max_call_ms"] = busy_check_max_ns() * 1e-6;
    info["busy_check_cold_after_ms"] = cold_pool_after_ms();
    {
      py::list names;
      for (const auto& name : busy_checked_kernels(true)) names.append(name);
      info["busy_check_kernels"] = names;
    }
    info["dispatch_targets"] = FASTLR_ISA_TARGETS;
    info["isa"] = fastlr::dispatched_isa();
    // The level the kernels run at within _core._cap_isa's cap (isa when uncapped).
#if defined(FASTLR_X86_DISPATCH)
    info["kernel_isa"] = fastlr::isa_name(fastlr::detail::cpu_level());
#else
    info["kernel_isa"] = fastlr::dispatched_isa();
#endif
    return info;
  }, "Compiler, flags, OpenMP and thread count of this build.");

  bind_countsketch(m);
  bind_products(m);
  bind_gd(m);
  bind_vector(m);
  bind_row_norms(m);
}
