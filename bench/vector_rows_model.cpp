// Zen 4 model of the one-column products' loops (bench/README.md, twenty-third session): a read of A, the axpys
// z += w_i A_i one row at a time (ax1) or eight rows a block (ax8, the kernel's block_axpy), the dots one row at a
// time with one chain (dot1) or four (dot1x4, the kernel's row_dot now), eight rows a block (dot8), and the Gram pair
// (y = A x, z = A^T y) one row at a time (gram1) or in blocks (gram8). A on 2 MB pages, three matrices in turn.
//   g++ -O3 -mavx2 -mfma -fopenmp-simd bench/vector_rows_model.cpp -o /tmp/vrm && /tmp/vrm 7 80000000  # A from memory
//   /tmp/vrm 31 4000000                                                                               # A in cache
#include <immintrin.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <chrono>
#include <vector>
#include <algorithm>
#include <sys/mman.h>
typedef long index_t;
static double now(){return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();}
template <class T> struct Avx2;
template <> struct Avx2<float> { using V=__m256; static constexpr int L=8;
 static inline V zero(){return _mm256_setzero_ps();} static inline V load(const float*p){return _mm256_loadu_ps(p);}
 static inline void store(float*p,V v){_mm256_storeu_ps(p,v);} static inline V set1(float x){return _mm256_set1_ps(x);}
 static inline V fma(V a,V b,V c){return _mm256_fmadd_ps(a,b,c);} static inline V add(V a,V b){return _mm256_add_ps(a,b);}
 static inline float sum1(V a){alignas(32) float t[8]; _mm256_store_ps(t,a); return ((t[0]+t[4])+(t[1]+t[5]))+((t[2]+t[6])+(t[3]+t[7]));}};
template <> struct Avx2<double> { using V=__m256d; static constexpr int L=4;
 static inline V zero(){return _mm256_setzero_pd();} static inline V load(const double*p){return _mm256_loadu_pd(p);}
 static inline void store(double*p,V v){_mm256_storeu_pd(p,v);} static inline V set1(double x){return _mm256_set1_pd(x);}
 static inline V fma(V a,V b,V c){return _mm256_fmadd_pd(a,b,c);} static inline V add(V a,V b){return _mm256_add_pd(a,b);}
 static inline double sum1(V a){alignas(32) double t[4]; _mm256_store_pd(t,a); return (t[0]+t[2])+(t[1]+t[3]);}};
// c multiple of L assumed (200, 64, 100 ok for both)
template <class T,int N> static inline void block_axpy(const T* b0,index_t c,const T* w,T* z){
 using S=Avx2<T>; using V=typename S::V; V wv[N]; for(int q=0;q<N;++q) wv[q]=S::set1(w[q]);
 for(index_t j=0;j<c;j+=S::L){ V s=S::load(z+j); if constexpr(N==1){ s=S::fma(S::load(b0+j),wv[0],s);} else { V t=S::zero();
   for(int q=0;q+1<N;q+=2){ s=S::fma(S::load(b0+q*c+j),wv[q],s); t=S::fma(S::load(b0+(q+1)*c+j),wv[q+1],t);} s=S::add(s,t);} S::store(z+j,s);} }
template <class T,int N> __attribute__((noinline)) void axpys(const T* B,index_t r,index_t c,const T* w,T* z,int pf,int hint){
 std::fill(z,z+c,T(0)); index_t i=0; const index_t bytes=N*c*sizeof(T);
 for(;i+N<=r;i+=N){ if(pf){ const char* p=(const char*)(B+(i+pf*N)*c); const char* e=std::min(p+bytes,(const char*)(B+r*c)); for(;p<e;p+=64) if(hint==3) __builtin_prefetch(p,0,3); else __builtin_prefetch(p,0,1);} block_axpy<T,N>(B+i*c,c,w+i,z);} 
 for(;i<r;++i) block_axpy<T,1>(B+i*c,c,w+i,z); }
template <class T> __attribute__((noinline)) void axpys_plain(const T* B,index_t r,index_t c,const T* w,T* z){
 std::fill(z,z+c,T(0)); for(index_t i=0;i<r;++i){ const T* b=B+i*c; const T ww=w[i]; for(index_t j=0;j<c;++j) z[j]+=b[j]*ww; } }
template <class T,int N> static inline void block_dots(const T* b0,index_t c,const T* x,T* y){
 using S=Avx2<T>; using V=typename S::V; V s[N]; for(int q=0;q<N;++q) s[q]=S::zero();
 for(index_t j=0;j<c;j+=S::L){ const V xv=S::load(x+j); for(int q=0;q<N;++q) s[q]=S::fma(S::load(b0+q*c+j),xv,s[q]); }
 for(int q=0;q<N;++q) y[q]=S::sum1(s[q]); }
template <class T> static inline T row_dot4(const T* b,index_t c,const T* x){
 using S=Avx2<T>; using V=typename S::V; V s0=S::zero(),s1=s0,s2=s0,s3=s0; index_t j=0;
 for(;j+4*S::L<=c;j+=4*S::L){ s0=S::fma(S::load(b+j),S::load(x+j),s0); s1=S::fma(S::load(b+j+S::L),S::load(x+j+S::L),s1);
   s2=S::fma(S::load(b+j+2*S::L),S::load(x+j+2*S::L),s2); s3=S::fma(S::load(b+j+3*S::L),S::load(x+j+3*S::L),s3);}
 for(;j<c;j+=S::L) s0=S::fma(S::load(b+j),S::load(x+j),s0);
 return S::sum1(S::add(S::add(s0,s1),S::add(s2,s3))); }
template <class T> __attribute__((noinline)) void dots14(const T* B,index_t r,index_t c,const T* x,T* y){ for(index_t i=0;i<r;++i) y[i]=row_dot4(B+i*c,c,x);}
template <class T> __attribute__((noinline)) void gram1(const T* B,index_t r,index_t c,const T* x,T* y,T* z){ std::fill(z,z+c,T(0)); for(index_t i=0;i<r;++i){ y[i]=row_dot4(B+i*c,c,x); block_axpy<T,1>(B+i*c,c,y+i,z);} }
template <class T> __attribute__((noinline)) void gram8(const T* B,index_t r,index_t c,const T* x,T* y,T* z){ std::fill(z,z+c,T(0)); index_t i=0; for(;i+8<=r;i+=8){ block_dots<T,4>(B+i*c,c,x,y+i); block_dots<T,4>(B+(i+4)*c,c,x,y+i+4); block_axpy<T,8>(B+i*c,c,y+i,z);} }
template <class T,int N> __attribute__((noinline)) void dots(const T* B,index_t r,index_t c,const T* x,T* y){
 index_t i=0; for(;i+N<=r;i+=N) block_dots<T,N>(B+i*c,c,x,y+i); for(;i<r;++i) block_dots<T,1>(B+i*c,c,x,y+i);}
template <class T> T rd(const T* a,size_t n){ T s[16]={0}; size_t i=0; for(;i+16<=n;i+=16){
#pragma omp simd
for(int p=0;p<16;++p) s[p]+=a[i+p];} T t=0; for(int p=0;p<16;++p)t+=s[p]; return t;}
template <class T> void run(index_t n,index_t c,int R){
 std::vector<T*> Ms; for(int k=0;k<3;++k){ size_t by=((n*c*sizeof(T))+(2<<20))&~size_t((2<<20)-1); T* p=(T*)aligned_alloc(2<<20,by); madvise(p,by,MADV_HUGEPAGE); for(index_t i=0;i<n*c;++i)p[i]=(i%7)*0.1; Ms.push_back(p);}
 std::vector<T> w(n,1.0),z(c),x(c,1.0),y(n);
 const char* names[]={"read","ax1","ax8","dot1","dot8","dot1x4","gram1","gram8"}; const int F=8; double best[F]; for(int f=0;f<F;++f)best[f]=1e9; volatile T sink=0; int k=0;
 for(int rr=0;rr<R;++rr) for(int f=0;f<F;++f){ T* A=Ms[k]; k=(k+1)%3; double t0=now();
  switch(f){case 0: sink+=rd(A,n*c);break; case 1: axpys<T,1>(A,n,c,w.data(),z.data(),0,3);break;
   case 2: axpys<T,8>(A,n,c,w.data(),z.data(),0,3);break;
   case 3: dots<T,1>(A,n,c,x.data(),y.data());break; case 4: dots<T,8>(A,n,c,x.data(),y.data());break; case 5: dots14<T>(A,n,c,x.data(),y.data());break;
   case 6: gram1<T>(A,n,c,x.data(),y.data(),z.data());break; case 7: gram8<T>(A,n,c,x.data(),y.data(),z.data());break;}
  best[f]=std::min(best[f],now()-t0);}
 printf("%ldx%ld %s (%ld B rows):",n,c,sizeof(T)==4?"f32":"f64",c*(long)sizeof(T)); for(int f=0;f<F;++f) printf(" %s %.2f(%.2f)",names[f],best[f]*1e3,best[f]/best[0]); printf("\n"); for(auto p:Ms) free(p);}
int main(int argc,char**argv){ int R=atoi(argv[1]); long bytes=atol(argv[2]);
 for(long c: {32L,64L,128L,200L,256L,384L,512L,768L,1024L,1080L,2048L}){ run<float>(bytes/(c*4),c,R); run<double>(bytes*2/(c*8),c,R);} }
