"""Worst case over 100 seeds (argv[1]): fastlr.randomized_svd per storage (C, F, strided view, CSR, CSC,
transposed view) vs scikit-learn's randomized_svd; excess error (||A - U S Vt|| - ||A - A_k||) / ||A||_F.
Seventh-session audit (bench/README.md). Run: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/worst_case_storage.py 100"""
import numpy as np, fastlr, warnings, scipy.sparse as sp, sys
from sklearn.utils.extmath import randomized_svd as skr
warnings.simplefilter("ignore")
rng = np.random.default_rng(5)
def lowrank(n, d, r, decay, noise=0.0):
    U = np.linalg.qr(rng.standard_normal((n, r)))[0]; V = np.linalg.qr(rng.standard_normal((d, r)))[0]
    return (U * np.geomspace(1, decay, r)) @ V.T + noise / np.sqrt(max(n, d)) * rng.standard_normal((n, d))
fams = {
 "f32_spec1e3_noise1e-5_300x80": (lowrank(300, 80, 10, 1e-3, 1e-5), 10, np.float32),
 "f32_spec1e3_noise1e-5_80x300": (lowrank(80, 300, 10, 1e-3, 1e-5), 10, np.float32),
 "f32_spec1e4_noise1e-6_400x100": (lowrank(400, 100, 10, 1e-4, 1e-6), 10, np.float32),
 "f32_exact_r10_k12_200x150": (lowrank(200, 150, 10, 1e-2), 12, np.float32),
 "f64_spec1e8_noise1e-10_300x80": (lowrank(300, 80, 10, 1e-8, 1e-10), 10, np.float64),
 "f64_exact_r10_k10_200x150": (lowrank(200, 150, 10, 1e-6), 10, np.float64),
 "f64_exact_r5_k10_120x90": (lowrank(120, 90, 5, 1e-3), 10, np.float64),
 "f64_repeated_200x60": ((lambda Q, W: (Q * np.r_[np.ones(8), 1e-3 * np.ones(52)]) @ W.T)(np.linalg.qr(rng.standard_normal((200, 60)))[0], np.linalg.qr(rng.standard_normal((60, 60)))[0]), 5, np.float64),
}
def variants(A):
    yield "C", A
    yield "F", np.asfortranarray(A)
    yield "view", np.repeat(A, 2, axis=1)[:, ::2]
    yield "csr", sp.csr_matrix(A)
    yield "csc", sp.csc_matrix(A)
    yield "Tview", np.ascontiguousarray(A.T).T
def err(A, U, s, Vt):
    return np.linalg.norm(A - (U.astype(float) * s.astype(float)) @ Vt.astype(float))
seeds = range(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
print(f"{'family':34s} {'variant':6s} {'fastlr':>9s} {'sklearn':>9s} {'ratio':>6s}")
for name, (A0, k, dt) in fams.items():
    A = A0.astype(dt); A64 = A.astype(float)
    sv = np.linalg.svd(A64, compute_uv=False); opt = np.sqrt(np.sum(sv[k:]**2)); nrm = np.linalg.norm(A64)
    sk = max((err(A64, *skr(A, k, random_state=s)) - opt) / nrm for s in seeds)
    eps = np.finfo(dt).eps
    for vname, X in variants(A):
        worst = 0
        for s in seeds:
            U, S, Vt = fastlr.randomized_svd(X, k, random_state=s)
            assert U.dtype == dt and S.dtype == dt, (U.dtype, dt)
            worst = max(worst, (err(A64, U, S, Vt) - opt) / nrm)
        flag = "  <--" if worst > 1.5 * sk + 4 * eps else ""
        print(f"{name:34s} {vname:6s} {worst:9.2e} {sk:9.2e} {worst/max(sk,1e-300):6.2f}{flag}")
        sys.stdout.flush()
