// When libgomp's sleeping worker joins a two-thread region after the caller paused, and what that costs a pass
// shaped like countsketch_dense_impl's row-major path (5 chunks of a 5760 x 1080 float32 array scattered into
// m = 20 rows, schedule(dynamic, 1), one accumulator per chunk at two threads, then the rows of the sum split
// between the threads). For each pause (0: right after a call of the same variant), rounds of the pass at 1 and
// 2 threads alternated: wall time min / median (us), when the worker entered the region (us after the caller),
// in how many rounds it ran on the caller's vCPU then, and in how many other tasks were runnable (/proc/loadavg)
// before the pass. bench/README.md, twenty-second session (HT): the busy-thread check's cold-pool rule.
//
//     g++ -O3 -march=native -fopenmp bench/omp_wake_probe.cpp -o /tmp/omp_wake_probe
//     GOMP_SPINCOUNT=1000 /tmp/omp_wake_probe 20 0 1 5 10 20 30 50     (1000: fastlr's setting, _backend.py)
#include <omp.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
constexpr long kRows = 5760, kCols = 1080, kM = 20;
constexpr int kChunks = 5;

struct Probe {
  std::vector<float> a = std::vector<float>(kRows * kCols);
  std::vector<int> bucket = std::vector<int>(kRows);
  std::vector<float> sign = std::vector<float>(kRows);
  double worker_us = -1;  // when thread 1 entered the last region, after the caller did
  bool same_cpu = false;  // whether it ran on the caller's vCPU then

  Probe() {
    for (long i = 0; i < kRows * kCols; ++i) a[i] = static_cast<float>(i % 7) * 0.1f;
    for (long i = 0; i < kRows; ++i) {
      bucket[i] = static_cast<int>(i * 7919 % kM);
      sign[i] = i % 2 ? 1.f : -1.f;
    }
  }

  // One pass at `nt` threads; its wall time in us.
  double pass(int nt) {
    std::vector<float> out(kM * kCols), work(kChunks * kM * kCols);
    int caller_cpu = -1, worker_cpu = -2;
    const auto start = Clock::now();
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
      const int parts = omp_get_num_threads(), t = omp_get_thread_num();
      if (t == 0) caller_cpu = sched_getcpu();
      if (t == 1) {
        worker_us = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
        worker_cpu = sched_getcpu();
      }
#pragma omp for schedule(dynamic, 1)
      for (int c = 0; c < kChunks; ++c) {
        float* acc = work.data() + (parts == 1 ? 0 : c) * kM * kCols;
        std::fill(acc, acc + kM * kCols, 0.f);
        for (long i = kRows * c / kChunks; i < kRows * (c + 1) / kChunks; ++i) {
          float* dst = acc + bucket[i] * kCols;
          const float* src = a.data() + i * kCols;
#pragma omp simd
          for (long j = 0; j < kCols; ++j) dst[j] += sign[i] * src[j];
        }
        if (parts == 1)
          for (long j = 0; j < kM * kCols; ++j) out[j] = c == 0 ? acc[j] : out[j] + acc[j];
      }
      if (parts > 1)
        for (int c = 0; c < kChunks; ++c)
          for (long j = kM * t / parts * kCols; j < kM * (t + 1) / parts * kCols; ++j)
            out[j] = c == 0 ? work[c * kM * kCols + j] : out[j] + work[c * kM * kCols + j];
    }
    same_cpu = caller_cpu == worker_cpu;
    return std::chrono::duration<double, std::micro>(Clock::now() - start).count();
  }
};

int runnable_tasks() {  // /proc/loadavg's running count, this thread included
  int running = -1, total = 0;
  double l1, l5, l15;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf %lf %lf %d/%d", &l1, &l5, &l15, &running, &total) != 5) running = -1;
    std::fclose(f);
  }
  return running;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s rounds pause_ms...\n", argv[0]);
    return 2;
  }
  const int rounds = std::atoi(argv[1]);
  Probe probe;
  probe.pass(2);
  std::printf("| pause ms | 1 thread us, min (median) | 2 threads | 2/1 min (median) | worker enters, us, min / median / "
              "max | on the caller's vCPU | other tasks runnable |\n|---|---|---|---|---|---|---|\n");
  for (int k = 2; k < argc; ++k) {
    const double pause = std::atof(argv[k]);
    std::vector<double> one, two, enters;
    int same = 0, crowded = 0;
    for (int r = 0; r < rounds; ++r)
      for (int nt : r % 2 ? std::vector<int>{1, 2} : std::vector<int>{2, 1}) {
        if (pause > 0)
          std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(pause));
        else
          probe.pass(nt);
        const int others = runnable_tasks() - 1;
        const double us = probe.pass(nt);
        (nt == 1 ? one : two).push_back(us);
        if (nt == 2) {
          enters.push_back(probe.worker_us);
          same += probe.same_cpu;
          crowded += others > 0;
        }
      }
    const double min1 = *std::min_element(one.begin(), one.end()), min2 = *std::min_element(two.begin(), two.end());
    std::printf("| %g | %.0f (%.0f) | %.0f (%.0f) | %.2f (%.2f) | %.0f / %.0f / %.0f | %d / %d | %d / %d |\n", pause,
                min1, median(one), min2, median(two), min2 / min1, median(two) / median(one),
                *std::min_element(enters.begin(), enters.end()), median(enters),
                *std::max_element(enters.begin(), enters.end()), same, rounds, crowded, rounds);
  }
  return 0;
}
