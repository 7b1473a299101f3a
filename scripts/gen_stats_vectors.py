#!/usr/bin/env python3
"""Generate high-precision reference values for greenmark's `stats` module.

Writes crates/greenmark/tests/vectors/stats_tails.json, checked by
crates/greenmark/tests/stats_vectors.rs. Needs mpmath (`pip install mpmath`).

Every value is computed at 60 significant digits, independently of the Rust method:

* binomial upper tail ln P(X >= k): a direct high-precision sum of pmf terms (from k
  upward, or 1 - the lower sum from k-1 downward when k is below the mean, both summed
  until the terms fall below 1e-75 of the sum), cross-checked against
  mpmath.betainc(regularized=True) for n <= 1000;
* binomial pmf ln P(X = k): from mpmath.loggamma;
* gamma upper tail ln Q(a, x): mpmath.gammainc(a, x, inf, regularized=True), cross-checked
  at 90 digits and, for integer a <= 1e4, against the Poisson sum e^-x sum_{j<a} x^j/j!;
* normal upper tail ln P(Z >= z): ln(erfc(z / sqrt 2) / 2).

Inputs (p, a, x, z) are doubles written with repr(), so Rust parses exactly the double
that mpmath used (mpf(float) is exact). Logs are written as strings with 25 digits.

Usage: python3 scripts/gen_stats_vectors.py [output.json]
"""

import json
import math
import os
import sys
import time

import mpmath
from mpmath import mp, mpf

mp.dps = 60
REL_STOP = mpf("1e-75")
LN_DIGITS = 25

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(ROOT, "crates", "greenmark", "tests", "vectors", "stats_tails.json")


def s(x):
    """A log value as a decimal string."""
    return mpmath.nstr(x, LN_DIGITS, min_fixed=-5, max_fixed=12)


def ln_pmf(k, n, p):
    p = mpf(p)
    q = 1 - p
    return (
        mpmath.loggamma(n + 1)
        - mpmath.loggamma(k + 1)
        - mpmath.loggamma(n - k + 1)
        + k * mpmath.log(p)
        + (n - k) * mpmath.log(q)
    )


def ln_upper_sum(k, n, p):
    """ln sum_{j>=k} pmf(j), relative to pmf(k): returns ln pmf(k) + ln(sum of ratios)."""
    p = mpf(p)
    r = p / (1 - p)
    term = mpf(1)
    total = mpf(1)
    j = k
    while j < n:
        term = term * (n - j) / (j + 1) * r
        total += term
        j += 1
        if term < total * REL_STOP and (j - k) > 2:
            break
    return ln_pmf(k, n, p) + mpmath.log(total)


def ln_lower_sum(k_minus_1, n, p):
    """ln sum_{j<=k-1} pmf(j)."""
    p = mpf(p)
    r = (1 - p) / p
    term = mpf(1)
    total = mpf(1)
    j = k_minus_1
    while j > 0:
        term = term * j / (n - j + 1) * r
        total += term
        j -= 1
        if term < total * REL_STOP and (k_minus_1 - j) > 2:
            break
    return ln_pmf(k_minus_1, n, p) + mpmath.log(total)


def ln_binom_tail(k, n, p):
    if k <= 0:
        return mpf(0)
    if k > n:
        return mpf("-inf")
    if k < n * p:
        lower = mpmath.exp(ln_lower_sum(k - 1, n, p))
        return mpmath.log1p(-lower)
    return ln_upper_sum(k, n, p)


def binomial_ks(n, p, full):
    mean = n * p
    sd = math.sqrt(n * p * (1 - p))
    cands = {
        1,
        n,
        n - 1,
        math.floor(mean - sd),
        math.floor(mean),
        math.ceil(mean),
        round(mean + 2 * sd),
        round(mean + 70 * sd),  # p-value near 1e-1000 for large n
    }
    if full:
        cands |= {
            2,
            math.floor(mean - 3 * sd),
            math.ceil(mean + 0.5 * sd),
            round(mean + 10 * sd),
            round(mean + 0.5 * (n - mean)),  # far tail
            round(mean + 0.9 * (n - mean)),
        }
    return sorted(k for k in cands if 1 <= k <= n)


def binomial_entries():
    grid = [
        (n, [1e-6, 0.1, 0.25, 0.5, 0.9, 0.999, 0.999999], True)
        for n in [1, 10, 50, 200, 1000, 10**4, 10**5, 10**6, 10**7]
    ]
    # A few points at n = 1e9 (slow to sum: ~3e5 terms near the mean).
    grid.append((10**9, [1e-6, 0.25, 0.9], False))
    tails, pmfs = [], []
    for n, ps, full in grid:
        for p in ps:
            ks = binomial_ks(n, p, full)
            for k in ks:
                v = ln_binom_tail(k, n, p)
                if n <= 1000:
                    check = mpmath.log(mpmath.betainc(k, n - k + 1, 0, p, regularized=True))
                    err = abs(check - v) / max(1, abs(v))
                    assert err < mpf("1e-40"), (k, n, p, v, check)
                tails.append({"k": k, "n": n, "p": repr(p), "ln": s(v)})
            for k in sorted(set(ks) | {0}):
                pmfs.append({"k": k, "n": n, "p": repr(p), "ln": s(ln_pmf(k, n, p))})
    return tails, pmfs


def ln_gamma_q(a, x, dps=60):
    with mp.workdps(dps):
        return mpmath.log(mpmath.gammainc(mpf(a), mpf(x), mpmath.inf, regularized=True))


def ln_poisson_cdf(a, x):
    """ln Q(a, x) for integer a: P(Poisson(x) <= a-1)."""
    x = mpf(x)
    term = mpf(1)
    total = mpf(1)
    for j in range(1, int(a)):
        term = term * x / j
        total += term
    return -x + mpmath.log(total)


def gamma_entries():
    out = []
    for a in [1e-5, 0.01, 0.5, 0.999, 1.0, 1.5, 10.0, 200.0, 1e4, 1e6, 1e7]:
        sd = math.sqrt(a)
        cands = [
            1e-3,
            0.5,
            a / 100,
            a - 3 * sd,
            a - sd,
            a,
            a + 1,
            a + 2 * sd,
            a + 10 * sd,
            a + 75 * sd,
            5 * a + 2400,
        ]
        xs = sorted({float(x) for x in cands if x > 0})
        for x in xs:
            v = ln_gamma_q(a, x)
            hi = ln_gamma_q(a, x, dps=90)
            assert abs(hi - v) <= mpf("1e-45") * max(1, abs(v)), (a, x, v, hi)
            if a == int(a) and a <= 1e4:
                c = ln_poisson_cdf(a, x)
                assert abs(c - v) <= mpf("1e-40") * max(1, abs(v)), (a, x, v, c)
            out.append({"a": repr(a), "x": repr(x), "ln": s(v)})
    return out


def normal_entries():
    out = []
    zs = [-40.0, -10.0, -5.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.4, 1.5, 2.0, 3.0, 5.0,
          10.0, 20.0, 38.5, 40.0, 100.0, 1000.0, 1e5]
    for z in zs:
        v = mpmath.log(mpmath.erfc(mpf(z) / mpmath.sqrt(2)) / 2)
        out.append({"z": repr(z), "ln": s(v)})
    return out


def dump(doc):
    """JSON with one vector per line (readable diffs)."""
    lines = ["{"]
    keys = list(doc)
    for i, key in enumerate(keys):
        end = "," if i + 1 < len(keys) else ""
        value = doc[key]
        if isinstance(value, list):
            lines.append(f"  {json.dumps(key)}: [")
            for j, item in enumerate(value):
                sep = "," if j + 1 < len(value) else ""
                lines.append("    " + json.dumps(item, separators=(", ", ": ")) + sep)
            lines.append("  ]" + end)
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)}{end}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT
    t0 = time.time()
    tails, pmfs = binomial_entries()
    t1 = time.time()
    gammas = gamma_entries()
    normals = normal_entries()
    doc = {
        "description": "ln of tail probabilities at 60 digits (mpmath); "
        "generated by scripts/gen_stats_vectors.py",
        "mpmath_version": mpmath.__version__,
        "binomial_tail": tails,
        "binomial_pmf": pmfs,
        "gamma_upper": gammas,
        "normal_upper": normals,
    }
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as f:
        f.write(dump(doc))
    print(
        f"wrote {out_path}: {len(tails)} binomial tails, {len(pmfs)} pmfs, "
        f"{len(gammas)} gamma, {len(normals)} normal "
        f"(binomial {t1 - t0:.1f}s, total {time.time() - t0:.1f}s)"
    )


if __name__ == "__main__":
    main()
