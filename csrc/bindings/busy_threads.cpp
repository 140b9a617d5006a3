// The busy-thread check: a kernel whose result does not depend on its thread count (kCheckedKernels,
// where `applied`) runs on fewer threads when another thread of this process is running right now (an OpenBLAS worker still
// spinning after the caller's own multi-threaded BLAS call, a thread of the user's), so that
// fastlr's second OpenMP thread does not share a core with it. Linux only (/proc/self/task);
// elsewhere the check never fires. Part of it, the cold-pool rule: such a call, if short, runs on one
// thread when the calling thread has made no kernel call for a while (kColdAfterNs), since its
// OpenMP worker, asleep that long, would start too late to help.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "common.hpp"

#if defined(__linux__)
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace fastlr::bind {

namespace {

/// A kernel whose results are bit-identical at every thread count, so that the check may give it
/// fewer threads (tests/test_busy_threads.py checks each one listed), with a lower bound of the time
/// one unit of its work (the `work` its binding passes to call_threads) takes at one thread, in ns
/// (the fastest of float32 and float64 on a Zen 2 at x86-64-v3), and whether the check applies to
/// it. Applied where measured to help (bench/README.md, eighteenth session, HW): right after a
/// two-thread BLAS call, countsketch_seeded_dense 5760 x 1080 float32 took 1.18-1.19x one
/// thread's time on two (0.72x in a third run), 1.00-1.03x with the check; matmul and matmul_csr
/// took 0.53-0.60x on two threads beside OpenBLAS's spinning worker, so dropping to one lost that.
/// Not listed: the A.T @ W passes (rmatmul, power_step, gram_product, gd_products and their _csr
/// forms) and gd_masked_grad, whose sums follow the thread count; list them once they do not.
struct CheckedKernel {
  const char* name;
  double ns_per_unit;
  bool applied;
};
constexpr CheckedKernel kCheckedKernels[] = {
    {"countsketch_dense", 0.25, true},           // rows * cols
    {"countsketch_seeded_dense", 0.25, true},    // rows * cols
    {"matmul", 0.016, false},                    // rows * cols * (k + 16)
    {"matmul_csr", 0.15, false},                 // nnz * k + 32 rows
    {"countsketch_gather_dot", 0.25, false},     // rows * cols
    {"countsketch_csr", 1.2, false},             // nnz + rows
    {"countsketch_csc", 1.2, false},             // nnz + columns
    {"countsketch_seeded_csr", 1.2, false},      // nnz + rows
    {"countsketch_seeded_csc", 1.2, false},      // nnz + columns
    {"countsketch_gather_dot_csr", 1.2, false},  // nnz + rows
    {"optimizer_step", 1.0, false},              // parameter entries (adam: 2.9 ns)
};

/// The check runs only for calls estimated to take at least this many times its own cost, so that
/// it stays below 0.5% of the call (tests lower it: _set_busy_check's calls_per_check).
constexpr double kCallsPerCheck = 200.0;
std::atomic<double> g_calls_per_check{kCallsPerCheck};
/// ... and at most this long: OpenBLAS's worker spins a bounded time after its call (24-50 ms of CPU
/// on the Zen 2), so a longer call has the core back for much of its run, and on two threads beside
/// it countsketch_seeded_dense 100000 x 200 float64 (9-26 ms) took 0.76-1.02x one thread's time,
/// 0.85-1.18x with the check.
constexpr double kMaxCallNs = 4e6;
/// A check's CPU time: listing /proc/self/task, then reading one thread's stat file per thread
/// (bench/busy_check_cost.py; upper ends measured on a Zen 2 under KVM).
constexpr double kCheckBaseNs = 1500.0;
constexpr double kCheckPerThreadNs = 2000.0;

/// The cold-pool rule: after this long without a kernel call from the calling thread, a call the check
/// applies to (applied, at most kMaxCallNs) runs on one thread. libgomp's worker, asleep since (it
/// spins GOMP_SPINCOUNT pauses, ~36 us at fastlr's setting, then waits on a futex), often reached the
/// region too late to take a share: on a 2-vCPU VM (AMD EPYC Zen 4 under KVM, Linux 6.18, other
/// processes running) the scheduler then put it on the caller's own vCPU, where it ran only once the
/// caller waited at the region's end barrier, so the pass took one thread's time plus the two-thread
/// path's reduction and the barrier. Two threads lost to one (min over 20 rounds, bench/omp_wake_probe.cpp)
/// after 50 ms pauses in 5 of 6 probe runs, after 30 ms in 2 of 3, after 5 ms in 2 of 6, after 10-20 ms
/// in none of 5: which pause makes the worker late moved with the machine's load.
/// CountSketch(20, 5760, seed) @ A, 5760 x 1080 float32, after a 50 ms sleep, six runs at load 3-10: two
/// threads 0.75-1.17x one thread's time, 0.97-1.03x with the rule, which gives up the runs where the
/// worker came in time (bench/README.md, twenty-second session, HT). Any call (one thread or more)
/// restarts the clock, so a loop of calls keeps its two threads.
constexpr double kColdAfterNs = 20e6;
std::atomic<double> g_cold_after_ns{kColdAfterNs};  // testing: _set_cold_pool
std::atomic<double> g_clock_offset_ns{0.0};          // testing: moves the rule's clock forward
thread_local double t_last_call_end_ns = -1e300;     // this thread's last kernel call's end (never: long ago)

double clock_ns() {
  const auto now = std::chrono::steady_clock::now().time_since_epoch();
  return std::chrono::duration<double, std::nano>(now).count() + g_clock_offset_ns.load(std::memory_order_relaxed);
}

std::atomic<bool> g_every_listed{false};  // testing: apply to every listed kernel, any call length
std::atomic<bool> g_enabled{true};
thread_local int t_last_threads = 0;  // the count the last checked call of this thread chose

const CheckedKernel* checked(const char* kernel) {
  for (const auto& k : kCheckedKernels)
    if (std::strcmp(k.name, kernel) == 0) return &k;
  return nullptr;
}

#if defined(__linux__) && defined(FASTLR_HAVE_OPENMP)

pid_t this_tid() { return static_cast<pid_t>(syscall(SYS_gettid)); }

std::mutex g_mutex;              // guards everything below
std::vector<pid_t> g_workers;    // thread ids of fastlr's OpenMP workers seen so far (never "foreign")
int g_task_dir = -1;             // /proc/<pid>/task, opened once (reset in a forked child)
thread_local int t_team_seen = 1;  // largest team whose workers this thread has recorded

/// An open /proc/self/task/<tid>/stat per thread seen: one pread a thread per check instead of
/// openat + read + close (the file is generated afresh at each read from offset 0).
struct StatFile {
  pid_t tid;
  int fd;
  bool seen;
};
std::vector<StatFile> g_stat_files;

void reset_after_fork() {
  // The child has one thread and its own /proc entry: forget the parent's (its descriptors too).
  if (g_task_dir >= 0) close(g_task_dir);
  g_task_dir = -1;
  for (const auto& f : g_stat_files)
    if (f.fd >= 0) close(f.fd);
  g_stat_files.clear();
  g_workers.clear();
  t_team_seen = 1;
}

/// Record the thread ids of the OpenMP team of `nt` threads this thread's parallel regions run on
/// (libgomp keeps one pool of workers per calling thread and reuses it): once per thread and size.
void record_workers(int nt) {
  if (nt <= t_team_seen) return;
  std::vector<pid_t> tids(static_cast<std::size_t>(nt), 0);
#pragma omp parallel num_threads(nt)
  tids[static_cast<std::size_t>(omp_get_thread_num())] = this_tid();
  const pid_t self = this_tid();
  std::lock_guard<std::mutex> lock(g_mutex);
  for (pid_t t : tids)
    if (t != 0 && t != self && std::find(g_workers.begin(), g_workers.end(), t) == g_workers.end())
      g_workers.push_back(t);
  t_team_seen = nt;
}

int open_stat(int dir, pid_t tid) {
  char path[32];
  std::snprintf(path, sizeof path, "%d/stat", static_cast<int>(tid));
  return openat(dir, path, O_RDONLY | O_CLOEXEC);
}

/// Scheduler state letter of thread `file.tid` ('R' running or runnable, 'S' sleeping, ...), 0 if gone.
char task_state(int dir, StatFile& file) {
  char buf[512];
  ssize_t got = file.fd >= 0 ? pread(file.fd, buf, sizeof buf - 1, 0) : -1;
  if (got <= 0) {  // a thread id reused since the file was opened (the old task is gone): open it afresh
    if (file.fd >= 0) close(file.fd);
    file.fd = open_stat(dir, file.tid);
    got = file.fd >= 0 ? pread(file.fd, buf, sizeof buf - 1, 0) : -1;
    if (got <= 0) return 0;
  }
  buf[got] = 0;
  const char* paren = std::strrchr(buf, ')');  // the name may hold spaces and parentheses
  return paren && paren[1] == ' ' ? paren[2] : 0;
}

StatFile& stat_file(int dir, pid_t tid) {
  for (auto& f : g_stat_files)
    if (f.tid == tid) return f;
  g_stat_files.push_back({tid, open_stat(dir, tid), false});
  return g_stat_files.back();
}

/// Ids of this process's threads other than `self` and fastlr's OpenMP workers, or false when
/// /proc cannot tell.
bool candidate_threads(pid_t self, std::vector<pid_t>& out) {
  out.clear();
  if (g_task_dir < 0) g_task_dir = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (g_task_dir < 0 || lseek(g_task_dir, 0, SEEK_SET) != 0) return false;
  alignas(8) char buf[4096];
  for (;;) {
    const long got = syscall(SYS_getdents64, g_task_dir, buf, sizeof buf);
    if (got < 0) return false;
    if (got == 0) return true;
    for (long at = 0; at < got;) {
      // struct linux_dirent64: d_ino (8 bytes), d_off (8), d_reclen (2), d_type (1), d_name
      unsigned short reclen;
      std::memcpy(&reclen, buf + at + 16, sizeof reclen);
      const char* name = buf + at + 19;
      at += reclen;
      if (name[0] < '0' || name[0] > '9') continue;
      const pid_t tid = static_cast<pid_t>(std::atoi(name));
      if (tid != self && std::find(g_workers.begin(), g_workers.end(), tid) == g_workers.end()) out.push_back(tid);
    }
  }
}

/// Threads of this process other than the caller and fastlr's OpenMP workers that are running or
/// runnable now (state R in /proc/self/task/<tid>/stat); -1 when /proc cannot tell, or when the
/// check would cost more than `budget_ns` (kCheckBaseNs + kCheckPerThreadNs a thread).
int foreign_running(double budget_ns) {
  static const bool at_fork = pthread_atfork(nullptr, nullptr, reset_after_fork) == 0;
  (void)at_fork;
  const pid_t self = this_tid();
  std::lock_guard<std::mutex> lock(g_mutex);
  static std::vector<pid_t> tids;
  if (!candidate_threads(self, tids)) return -1;
  if (kCheckBaseNs + kCheckPerThreadNs * static_cast<double>(tids.size()) > budget_ns) return -1;
  for (auto& f : g_stat_files) f.seen = false;
  int running = 0;
  for (pid_t tid : tids) {
    StatFile& f = stat_file(g_task_dir, tid);
    f.seen = true;
    running += task_state(g_task_dir, f) == 'R';
  }
  // Close the files of threads gone since the last check.
  auto gone = std::remove_if(g_stat_files.begin(), g_stat_files.end(), [](const StatFile& f) {
    if (!f.seen && f.fd >= 0) close(f.fd);
    return !f.seen;
  });
  g_stat_files.erase(gone, g_stat_files.end());
  return running;
}

int allowed_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  return std::max(1, CPU_COUNT(&set));
}

#else

void record_workers(int) {}
int foreign_running(double) { return -1; }
int allowed_cpus() { return 1; }

#endif

}  // namespace

int busy_threads(int nt, double budget_ns) {
  record_workers(std::max(1, nt));
  return foreign_running(budget_ns);
}

CallThreads::~CallThreads() { t_last_call_end_ns = clock_ns(); }

CallThreads call_threads(const char* kernel, index_t work) {
  const int nt = kernel_threads();
  int chosen = nt;
  if (nt > 1 && g_enabled.load(std::memory_order_relaxed)) {
    const CheckedKernel* k = checked(kernel);
    const bool every = g_every_listed.load(std::memory_order_relaxed);
    const bool listed = k != nullptr && (k->applied || every);
    const double call_ns = listed ? static_cast<double>(work) * k->ns_per_unit : 0.0;
    const double calls_per_check = g_calls_per_check.load(std::memory_order_relaxed);
    if (listed && (call_ns <= kMaxCallNs || every) &&
        clock_ns() - t_last_call_end_ns > g_cold_after_ns.load(std::memory_order_relaxed)) {
      chosen = 1;  // the cold-pool rule: a clock read, so it needs no lower bound on the call's length
    } else if (call_ns >= calls_per_check * kCheckBaseNs && (call_ns <= kMaxCallNs || every)) {
      const int busy = busy_threads(nt, call_ns / calls_per_check);
      // Each thread running beside the call takes a core: leave the call the rest (at least one).
      if (busy > 0) chosen = std::max(1, std::min(nt, allowed_cpus() - busy));
    }
  }
  t_last_threads = chosen;
  return CallThreads(chosen);
}

bool set_busy_check(bool on, double calls_per_check, int every_listed) {
  if (calls_per_check > 0) g_calls_per_check.store(calls_per_check);
  if (every_listed >= 0) g_every_listed.store(every_listed != 0);
  return g_enabled.exchange(on);
}

bool busy_check_enabled() { return g_enabled.load(); }

bool busy_check_supported() {
#if defined(__linux__) && defined(FASTLR_HAVE_OPENMP)
  return true;
#else
  return false;
#endif
}

int last_call_threads() { return t_last_threads; }

std::vector<std::string> busy_checked_kernels(bool applied_only) {
  std::vector<std::string> names;
  for (const auto& k : kCheckedKernels)
    if (k.applied || !applied_only) names.emplace_back(k.name);
  return names;
}

double busy_check_max_ns() { return kMaxCallNs; }

double set_cold_pool(double after_ms, double advance_ms) {
  const double previous = g_cold_after_ns.load() * 1e-6;
  if (after_ms >= 0) g_cold_after_ns.store(after_ms * 1e6);
  if (advance_ms > 0) g_clock_offset_ns.store(g_clock_offset_ns.load() + advance_ms * 1e6);
  return previous;
}

double cold_pool_after_ms() { return g_cold_after_ns.load() * 1e-6; }

double busy_check_min_ns() { return g_calls_per_check.load() * kCheckBaseNs; }

namespace {
std::atomic<long> g_spins_stopped{0};  // the highest ticket stop_spins was given
}

void spin_for(double seconds, long ticket) {
  // Testing hook: a thread that runs (state R) without fastlr's or the GIL's help, until `seconds`
  // have passed or stop_spins(t >= ticket) is called (before or after this starts; ticket > 0).
  const auto stop = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < stop && (ticket <= 0 || g_spins_stopped.load(std::memory_order_relaxed) < ticket)) {
  }
}

void stop_spins(long ticket) {
  long seen = g_spins_stopped.load();
  while (seen < ticket && !g_spins_stopped.compare_exchange_weak(seen, ticket)) {
  }
}

}  // namespace fastlr::bind
