#!/usr/bin/env python3
"""Independent reference values for lectern's estimators, in 50-digit arithmetic.

A plain, formula-by-formula implementation (mpmath, no shared code with the Rust
engine) of the 4PL model, MLE, MAP, EAP and Warm's WLE on the logistic metric
(D = 1). It first reproduces the published catR values the engine tests carry
(MLE/MAP/EAP), which validates it, then prints the WLE values
`shared/src/engine/estimate.rs` checks against.

    pip install mpmath && python3 shared/reference/irt_reference.py
"""
from mpmath import mp, mpf, exp, log, sqrt, findroot, quad, inf

mp.dps = 50


def p4(it, t):
    a, b, c, d = it
    return c + (d - c) / (1 + exp(-a * (t - b)))


def dp(it, t):
    a, b, c, d = it
    s = 1 / (1 + exp(-a * (t - b)))
    return a * (d - c) * s * (1 - s)


def d2p(it, t):
    a, b, c, d = it
    s = 1 / (1 + exp(-a * (t - b)))
    return a * a * (d - c) * s * (1 - s) * (1 - 2 * s)


def info(items, t):
    return sum(dp(i, t) ** 2 / (p4(i, t) * (1 - p4(i, t))) for i in items)


def score(items, x, t):
    return sum(dp(i, t) * (u - p4(i, t)) / (p4(i, t) * (1 - p4(i, t))) for i, u in zip(items, x))


def warm_j(items, t):
    return sum(dp(i, t) * d2p(i, t) / (p4(i, t) * (1 - p4(i, t))) for i in items)


def loglik(items, x, t):
    return sum(log(p4(i, t)) if u else log(1 - p4(i, t)) for i, u in zip(items, x))


def root(f, lo=-6, hi=6, n=480):
    """The root of f in [lo, hi] where f goes from + to - with the largest ..."""
    grid = [mpf(lo) + (mpf(hi) - lo) * k / n for k in range(n + 1)]
    roots = []
    for x0, x1 in zip(grid, grid[1:]):
        if f(x0) > 0 and f(x1) <= 0:
            roots.append(findroot(f, (x0, x1), solver="anderson"))
    return roots


def mle(items, x):
    return root(lambda t: score(items, x, t))


def map_(items, x):
    return root(lambda t: score(items, x, t) - t)


def wle(items, x):
    return root(lambda t: score(items, x, t) + warm_j(items, t) / (2 * info(items, t)))


def eap(items, x, points=61):
    nodes = [mpf(-6) + mpf(12) * k / (points - 1) for k in range(points)]
    w = [exp(-t * t / 2) * exp(loglik(items, x, t)) for t in nodes]
    m = sum(wi * t for wi, t in zip(w, nodes)) / sum(w)
    v = sum(wi * (t - m) ** 2 for wi, t in zip(w, nodes)) / sum(w)
    return m, sqrt(v)


RASCH = [(1, -2.1851, 0, 1), (1, -0.2897194, 0, 1)]
FOUR_PL = [(1.32, -0.63, 0.17, 0.87), (1.07, 0.18, 0.10, 0.93), (0.84, -0.84, 0.19, 1.0)]
THREE_PL = [(2.225, -1.885, 0.21, 1), (1.174, -2.411, 0.212, 1), (2.104, -2.439, 0.192, 1)]
TWO_PL = [(0.8, -1.0, 0, 1), (1.2, 0.0, 0, 1), (1.6, 0.5, 0, 1), (1.0, 1.5, 0, 1), (2.0, -0.5, 0, 1)]

if __name__ == "__main__":
    def show(name, values):
        print(name, [mp.nstr(v, 12) for v in values])

    print("published (catR) values, reproduced:")
    show("  Rasch MLE (-1.237413)", mle(RASCH, [1, 0]))
    show("  4PL MLE (-1.793097)", mle(FOUR_PL, [0, 1, 0]))
    show("  4PL MAP (-0.4741753)", map_(FOUR_PL, [0, 1, 0]))
    show("  4PL EAP (-0.4567)", eap(FOUR_PL, [0, 1, 0]))
    show("  3PL MLE (-1.642307)", mle(THREE_PL, [1, 0, 1]))
    print("WLE:")
    show("  Rasch [1, 0]", wle(RASCH, [1, 0]))
    show("  Rasch [1, 1] (all correct)", wle(RASCH, [1, 1]))
    show("  Rasch [0, 0] (all wrong)", wle(RASCH, [0, 0]))
    show("  4PL [0, 1, 0]", wle(FOUR_PL, [0, 1, 0]))
    show("  3PL [1, 0, 1]", wle(THREE_PL, [1, 0, 1]))
    show("  2PL [1, 1, 0, 0, 1]", wle(TWO_PL, [1, 1, 0, 0, 1]))
    show("  2PL all correct", wle(TWO_PL, [1] * 5))
    t = wle(TWO_PL, [1, 1, 0, 0, 1])[0]
    show("  2PL [1, 1, 0, 0, 1] SE = 1/sqrt(I)", [1 / sqrt(info(TWO_PL, t))])
