// LD_PRELOAD shim counting GOMP_parallel regions (team of 1 / 2+) and their wall time, per outlined function,
// for bench/gd_thread_cpu.py. Build: gcc -O2 -shared -fPIC -fopenmp -o /tmp/gompcount.so bench/gompcount.c -ldl
// Preloading loads libgomp before fastlr does, so set GOMP_SPINCOUNT=1000 yourself to keep fastlr's idle spin.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <omp.h>

typedef void (*fn_t)(void*);
typedef void (*gp_t)(fn_t, void*, unsigned, unsigned);
static gp_t real_gp;
struct rec { fn_t fn; long calls[3]; double ns[3]; };
static struct rec recs[256];
static int nrec;
static int enabled = 0;
struct ctx { fn_t fn; void* data; int team; };
static void tramp(void* p) { struct ctx* c = p; if (omp_get_thread_num() == 0) c->team = omp_get_num_threads(); c->fn(c->data); }
static double now() { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec; }
void GOMP_parallel(fn_t fn, void* data, unsigned n, unsigned flags) {
  if (!real_gp) real_gp = (gp_t)dlsym(RTLD_NEXT, "GOMP_parallel");
  if (!enabled) { real_gp(fn, data, n, flags); return; }
  struct ctx c = {fn, data, 0};
  double t0 = now();
  real_gp(tramp, &c, n, flags);
  double dt = now() - t0;
  int i; for (i = 0; i < nrec && recs[i].fn != fn; ++i) {}
  if (i == nrec && nrec < 256) { recs[nrec].fn = fn; nrec++; }
  int slot = c.team >= 2 ? 2 : 1;
  recs[i].calls[slot]++; recs[i].ns[slot] += dt;
}
void gompcount_enable(int on) { enabled = on; }
void gompcount_reset(void) { memset(recs, 0, sizeof recs); nrec = 0; }
void gompcount_dump(void) {
  for (int i = 0; i < nrec; ++i) {
    Dl_info info; const char* name = "?";
    if (dladdr((void*)recs[i].fn, &info) && info.dli_sname) name = info.dli_sname;
    fprintf(stderr, "GOMP %-70.70s team1 %4ld %8.3f ms | team2 %4ld %8.3f ms\n", name, recs[i].calls[1], recs[i].ns[1]/1e6, recs[i].calls[2], recs[i].ns[2]/1e6);
  }
}
