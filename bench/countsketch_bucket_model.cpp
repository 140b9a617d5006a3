// Zen 4 model of the dense CountSketch (bench/README.md, twenty-third session): a read of A; the one-row scatter into
// an m x d accumulator; bucket passes over blocks of 64 / 128 / 256 rows with the next block prefetched in memory
// order (bk64, bk128, bk256) or not (bk128np, bk1024np). A on 2 MB pages, three matrices in turn.
//   g++ -O3 -march=native -fopenmp-simd bench/countsketch_bucket_model.cpp -o /tmp/cbm && /tmp/cbm 5760 1080 20 40
//   g++ -O3 -march=native -fopenmp-simd -DTY=float bench/countsketch_bucket_model.cpp -o /tmp/cbm32 && /tmp/cbm32 100000 200 50 20
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <chrono>
#include <vector>
#include <algorithm>
#include <sys/mman.h>
#ifndef TY
#define TY double
#endif
typedef TY T;
typedef long idx;
static double now(){return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();}
__attribute__((noinline)) T rd(const T* a, size_t n){ T s[16]={0}; size_t i=0; for(;i+16<=n;i+=16){
#pragma omp simd
for(int p=0;p<16;++p) s[p]+=a[i+p];} T t=0; for(int p=0;p<16;++p)t+=s[p]; return t;}
// acc one row at a time into m x d acc (row r_i) -- the plain scatter. GCC 12 vectorizes this loop badly on Zen 4:
// 1.6-2.0x the read at m = 1, where the same add in AVX-512 intrinsics runs at the read (bench/README.md,
// twenty-fourth session): compare the strategies with each other, not with the read.
__attribute__((noinline)) void scatter(const T* __restrict A, idx n, idx d, const int* r, const T* v, T* __restrict acc){
  for(idx i=0;i<n;++i){ const T* __restrict a=A+i*d; T* __restrict o=acc+r[i]*d; T w=v[i];
#pragma omp simd
    for(idx c=0;c<d;++c) o[c]+=w*a[c]; } }
// blocks of B rows: counting sort by bucket within block, then N rows/pass register accumulation;
// next block prefetched (prefetcht1) in memory order spread over the block's work
template<int N> static inline void passN(T* __restrict o, const T* const* a, const T* w, idx d){
#pragma omp simd
  for(idx c=0;c<d;++c){ T x=o[c]; for(int q=0;q<N;++q) x+=w[q]*a[q][c]; o[c]=x; } }
__attribute__((noinline)) void bucketpf(const T* __restrict A, idx n, idx d, const int* r, const T* v, T* __restrict acc, int m, idx B, int pfon){
  std::vector<int> order(B), end(m+1);
  for(idx i0=0;i0<n;i0+=B){ idx k=std::min(B,n-i0);
    std::fill(end.begin(),end.end(),0); for(idx j=0;j<k;++j) ++end[r[i0+j]+1]; for(int q=0;q<m;++q) end[q+1]+=end[q];
    for(idx j=0;j<k;++j) order[end[r[i0+j]]++]=j;
    const char* pf=(const char*)(A+(i0+k)*d); const char* pfe=(const char*)(A+std::min(n,i0+k+B)*d); if(!pfon) pfe=pf;
    idx lines=(pfe-pf)/64; idx per = lines/ (k>0?k:1) + 1;
    idx s=0;
    for(int b=0;b<m;++b){ idx f=end[b]; T* o=acc+(idx)b*d;
      while(s<f){ int N = f-s>=8?8: f-s>=4?4: f-s>=2?2:1; const T* a[8]; T w[8];
        for(int q=0;q<N;++q){ a[q]=A+(i0+order[s+q])*d; w[q]=v[i0+order[s+q]]; }
        for(idx p=0;p<per*N && pf<pfe;++p,pf+=64) __builtin_prefetch(pf,0,2);
        if(N==8) passN<8>(o,a,w,d); else if(N==4) passN<4>(o,a,w,d); else if(N==2) passN<2>(o,a,w,d); else passN<1>(o,a,w,d);
        s+=N; } }
  } }
int main(int argc,char**argv){
  idx n=atoi(argv[1]), d=atoi(argv[2]); int m=atoi(argv[3]); int R=atoi(argv[4]);
  std::vector<T*> Ms; for(int k=0;k<3;++k){ size_t by=((n*d*sizeof(T))+(2<<20))&~size_t((2<<20)-1); T* p=(T*)aligned_alloc(2<<20, by); madvise(p,by,MADV_HUGEPAGE); for(idx i=0;i<n*d;++i)p[i]=(i%7)*0.1; Ms.push_back(p);}
  T* acc=(T*)aligned_alloc(64, m*d*sizeof(T)+64); memset(acc,0,m*d*sizeof(T));
  std::vector<int> r(n); std::vector<T> v(n); unsigned s=1; for(idx i=0;i<n;++i){ s=s*1103515245+12345; r[i]=(s>>8)%m; v[i]=(s>>4)&1?1:-1;}
  const char* names[]={"read","scatter","bk64","bk128","bk256","bk128np","bk1024np"}; const int F=7;
  double best[F]; for(int f=0;f<F;++f)best[f]=1e9; volatile T sink=0; int k=0;
  for(int rr=0;rr<R;++rr){ for(int f=0;f<F;++f){ T* A=Ms[k]; k=(k+1)%3; double t0=now();
      switch(f){case 0: sink+=rd(A,n*d);break; case 1: scatter(A,n,d,r.data(),v.data(),acc);break;
        case 2: bucketpf(A,n,d,r.data(),v.data(),acc,m,64,1);break; case 3: bucketpf(A,n,d,r.data(),v.data(),acc,m,128,1);break;
        case 4: bucketpf(A,n,d,r.data(),v.data(),acc,m,256,1);break; case 5: bucketpf(A,n,d,r.data(),v.data(),acc,m,128,0);break;
        case 6: bucketpf(A,n,d,r.data(),v.data(),acc,m,1024,0);break;}
      best[f]=std::min(best[f],now()-t0);} }
  printf("%ldx%ld m=%d %s:", n,d,m, sizeof(T)==8?"f64":"f32"); for(int f=0;f<F;++f) printf(" %s %.3f(%.2f)",names[f],best[f]*1e3,best[f]/best[0]); printf("\n");
}
