"""Worst case over 100 matrices per family: randomized_svd on a 3-D stack (the stacked path) vs one call
per matrix vs scikit-learn; excess error / ||A||_F, float64 and float32. Seventh-session audit (README.md)."""
import numpy as np, fastlr, sys, warnings
from sklearn.utils.extmath import randomized_svd as skr
warnings.simplefilter("ignore")
def err(A, U, s, Vt):
    A64 = A.astype(np.float64)
    return np.linalg.norm(A64 - (U.astype(np.float64) * s.astype(np.float64)) @ Vt.astype(np.float64))
def opt(A, k):
    s = np.linalg.svd(A.astype(np.float64), compute_uv=False)
    return np.sqrt(np.sum(s[k:] ** 2))
def fams(rng, dtype):
    out = {}
    def lowrank(n, d, r, decay=1e-3, scale=1.0):
        return scale * (rng.standard_normal((n, r)) * np.geomspace(1, decay, r)) @ rng.standard_normal((r, d))
    out["rand_30x20_k5"] = (lambda: rng.standard_normal((30, 20)), 5)
    out["rand_20x30_k5"] = (lambda: rng.standard_normal((20, 30)), 5)
    out["rank3_40x25_k5"] = (lambda: lowrank(40, 25, 3), 5)
    out["rank5_40x25_k5"] = (lambda: lowrank(40, 25, 5), 5)
    out["rank5_25x40_k5"] = (lambda: lowrank(25, 40, 5), 5)
    out["rank5n_40x25_k5"] = (lambda: lowrank(40, 25, 5) + 1e-6 * rng.standard_normal((40, 25)), 5)
    out["rank5n_25x40_k5"] = (lambda: lowrank(25, 40, 5) + 1e-6 * rng.standard_normal((25, 40)), 5)
    out["rank5n8_40x25_k5"] = (lambda: lowrank(40, 25, 5) + 1e-8 * rng.standard_normal((40, 25)), 5)
    out["spec1e6_40x25_k8"] = (lambda: lowrank(40, 25, 25, 1e-6), 8)
    out["spec1e3_40x25_k8"] = (lambda: lowrank(40, 25, 25, 1e-3), 8)
    out["spec1e3_25x40_k8"] = (lambda: lowrank(25, 40, 25, 1e-3), 8)
    out["repeated_40x25_k4"] = (lambda: (lambda Q1, Q2: (Q1 * np.r_[np.ones(6), 0.5*np.ones(19)]) @ Q2.T)(np.linalg.qr(rng.standard_normal((40, 25)))[0], np.linalg.qr(rng.standard_normal((25, 25)))[0]), 4)
    out["full_k_12x8_k8"] = (lambda: rng.standard_normal((12, 8)), 8)
    out["2x2_k2"] = (lambda: rng.standard_normal((2, 2)), 2)
    out["1x5_k1"] = (lambda: rng.standard_normal((1, 5)), 1)
    out["5x1_k1"] = (lambda: rng.standard_normal((5, 1)), 1)
    out["1x1"] = (lambda: rng.standard_normal((1, 1)), 1)
    out["scale_small"] = (lambda: lowrank(40, 25, 25, 1e-3, 1e-150 if dtype == np.float64 else 1e-20), 5)
    out["scale_big"] = (lambda: lowrank(40, 25, 25, 1e-3, 1e150 if dtype == np.float64 else 1e18), 5)
    out["scale_mid_small"] = (lambda: lowrank(40, 25, 25, 1e-3, 1e-140 if dtype == np.float64 else 1e-16), 5)
    out["spec_gap_40x25_k5"] = (lambda: lowrank(40, 25, 25, 1.0) * np.r_[np.ones(5), 1e-4*np.ones(20)][None, :25], 5)
    return out
def main(dtype, nmat=100):
    rng = np.random.default_rng(0)
    print(f"dtype={np.dtype(dtype).name}: name | stacked worst excess | one-call worst | sklearn worst | worst |stacked-onecall| | orth")
    for name, (gen, k) in fams(rng, dtype).items():
        B = np.stack([gen() for _ in range(nmat)]).astype(dtype)
        U, s, Vt = fastlr.randomized_svd(B, k, random_state=np.random.RandomState(1))
        ex_st, ex_one, ex_sk, orth = [], [], [], []
        for i in range(nmat):
            A = B[i]
            nrm = np.linalg.norm(A.astype(np.float64)); nrm = nrm if nrm > 0 else 1
            o = opt(A, k)
            ex_st.append((err(A, U[i], s[i], Vt[i]) - o) / nrm)
            u1, s1, v1 = fastlr.randomized_svd(A, k, random_state=i)
            ex_one.append((err(A, u1, s1, v1) - o) / nrm)
            u2, s2, v2 = skr(A.astype(np.float64) if dtype==np.float64 else A, k, random_state=i)
            ex_sk.append((err(A, u2, s2, v2) - o) / nrm)
            assert U.dtype == dtype and s.dtype == dtype
            kk = U.shape[2]
            orth.append(max(np.abs(U[i].T.astype(float) @ U[i] - np.eye(kk)).max(), np.abs(Vt[i].astype(float) @ Vt[i].T - np.eye(kk)).max()))
            if np.any(np.diff(s[i]) > 0) or np.any(s[i] < 0): print("  NOT DESCENDING", name, i, s[i])
        print(f"{name:22s} {max(ex_st):9.2e} {max(ex_one):9.2e} {max(ex_sk):9.2e} orth {max(orth):8.1e}")
        sys.stdout.flush()
if __name__ == "__main__":
    main(np.float64); main(np.float32)
