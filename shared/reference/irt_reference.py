#!/usr/bin/env python3
"""Independent reference values for lectern's estimators, in 50-digit arithmetic.

A plain, formula-by-formula implementation (mpmath, no shared code with the Rust
engine) of the 4PL model, MLE, MAP, EAP and Warm's WLE on the logistic metric
(D = 1). It first reproduces the published catR values the engine tests carry
(MLE/MAP/EAP), which validates it, then prints the WLE values
`engine/src/estimate.rs` checks against.

The second half does the same for polytomous items (Samejima's GRM, Muraki's
GPCM, the PCM), mixable with 1PL-4PL items in one pattern: category
probabilities and their derivatives in closed form (checked against mp.diff),
item information sum_k P_k'^2 / P_k, and EAP, MAP, MLE and WLE on [-6, 6]. It
asserts its own consistency (GRM and GPCM with one threshold are the 2PL,
probabilities sum to 1, GPCM information is a^2 Var(X), the generic code gives
the dichotomous values above) before printing anything.

    pip install mpmath && python3 shared/reference/irt_reference.py
    python3 shared/reference/irt_reference.py --json > shared/reference/poly_reference.json
"""
import json
import sys

from mpmath import mp, mpf, exp, log, sqrt, findroot, quad, inf

mp.dps = 50


def p4(it, t):
    a, b, c, d = map(mpf, it)  # exact binary values; a * (d - c) on floats would round
    return c + (d - c) / (1 + exp(-a * (t - b)))


def dp(it, t):
    a, b, c, d = map(mpf, it)  # exact binary values; a * (d - c) on floats would round
    s = 1 / (1 + exp(-a * (t - b)))
    return a * (d - c) * s * (1 - s)


def d2p(it, t):
    a, b, c, d = map(mpf, it)  # exact binary values; a * (d - c) on floats would round
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
    """Every root of f in [lo, hi] where f goes from + to - (a maximum of f's
    antiderivative), found by a sign-change scan on an n-step grid."""
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

# --- Polytomous items -------------------------------------------------------
#
# An item is ("grm", a, [b_1..b_m]), ("gpcm", a, [b_1..b_m]), ("pcm", 1, [b_1..b_m])
# or ("4pl", a, b, c, d); its scores are 0..m (0..1 for the 4PL). 1PL-3PL items
# are 4PL items with c = 0 and/or d = 1.


def logistic(z):
    return 1 / (1 + exp(-z))


def cat_probs(it, t):
    """P(X = k | t) for k = 0..m."""
    if it[0] == "grm":  # P(X = k) = P*(k) - P*(k+1), P*(k) = P(X >= k), P*(0) = 1, P*(m+1) = 0
        a, bs = mpf(it[1]), [mpf(b) for b in it[2]]
        star = [mpf(1)] + [logistic(a * (t - b)) for b in bs] + [mpf(0)]
        return [star[k] - star[k + 1] for k in range(len(bs) + 1)]
    if it[0] in ("gpcm", "pcm"):  # P(X = k) proportional to exp(sum_{v <= k} a (t - b_v))
        a, bs = mpf(it[1]), [mpf(b) for b in it[2]]
        z = [sum((a * (t - b) for b in bs[:k]), mpf(0)) for k in range(len(bs) + 1)]
        total = sum(exp(zk) for zk in z)
        return [exp(zk) / total for zk in z]
    if it[0] == "4pl":
        p = p4(it[1:], t)
        return [1 - p, p]
    raise ValueError(f"unknown model {it[0]!r}")


def cat_derivs(it, t):
    """(P_k', P_k'') for k = 0..m, in closed form."""
    if it[0] == "grm":  # d/dt P*(k) = a P*(1 - P*), d2/dt2 P*(k) = a^2 P*(1 - P*)(1 - 2 P*); 0 at the ends
        a, bs = mpf(it[1]), [mpf(b) for b in it[2]]
        star = [logistic(a * (t - b)) for b in bs]
        d1 = [mpf(0)] + [a * s * (1 - s) for s in star] + [mpf(0)]
        d2 = [mpf(0)] + [a * a * s * (1 - s) * (1 - 2 * s) for s in star] + [mpf(0)]
        m = len(bs)
        return [d1[k] - d1[k + 1] for k in range(m + 1)], [d2[k] - d2[k + 1] for k in range(m + 1)]
    if it[0] in ("gpcm", "pcm"):  # P_k' = a P_k (k - E), P_k'' = a^2 P_k ((k - E)^2 - Var)
        a = mpf(it[1])
        p = cat_probs(it, t)
        mean = sum(k * pk for k, pk in enumerate(p))
        var = sum((k - mean) ** 2 * pk for k, pk in enumerate(p))
        return ([a * pk * (k - mean) for k, pk in enumerate(p)],
                [a * a * pk * ((k - mean) ** 2 - var) for k, pk in enumerate(p)])
    if it[0] == "4pl":
        return [-dp(it[1:], t), dp(it[1:], t)], [-d2p(it[1:], t), d2p(it[1:], t)]
    raise ValueError(f"unknown model {it[0]!r}")


def item_info(it, t):
    p, (d1, _) = cat_probs(it, t), cat_derivs(it, t)
    return sum(d ** 2 / pk for d, pk in zip(d1, p))


def poly_info(items, t):
    return sum(item_info(it, t) for it in items)


def poly_score(items, x, t):
    """l'(t) = sum_i P_{x_i}' / P_{x_i}."""
    return sum(cat_derivs(it, t)[0][u] / cat_probs(it, t)[u] for it, u in zip(items, x))


def poly_j(items, t):
    """Warm's J(t) = sum_i sum_k P_k' P_k'' / P_k."""
    total = mpf(0)
    for it in items:
        p, (d1, d2) = cat_probs(it, t), cat_derivs(it, t)
        total += sum(f * s / pk for f, s, pk in zip(d1, d2, p))
    return total


def poly_loglik(items, x, t):
    return sum(log(cat_probs(it, t)[u]) for it, u in zip(items, x))


LO, HI = mpf(-6), mpf(6)
no_root = []  # (estimator, items, pattern) whose estimating equation had no root in [LO, HI]


def best_root(f, objective, what):
    """The root of f (a + to - crossing) maximising objective; with none, the
    bound f points to (-6 if f <= 0 throughout, +6 if f >= 0), i.e. the bound
    with the larger objective."""
    roots = root(f, LO, HI)
    if roots:
        return max(roots, key=objective)
    no_root.append(what)
    return max([LO, HI], key=objective)


def poly_eap(items, x, points=61):
    """Posterior mean and SD on `points` nodes in [-6, 6], prior N(0, 1)."""
    nodes = [LO + (HI - LO) * k / (points - 1) for k in range(points)]
    w = [exp(-t * t / 2 + poly_loglik(items, x, t)) for t in nodes]
    m = sum(wi * t for wi, t in zip(w, nodes)) / sum(w)
    v = sum(wi * (t - m) ** 2 for wi, t in zip(w, nodes)) / sum(w)
    return m, sqrt(v)


def poly_map(items, x):
    """Root of l'(t) - t (prior N(0, 1)); SE = 1 / sqrt(I + 1)."""
    t = best_root(lambda t: poly_score(items, x, t) - t,
                  lambda t: poly_loglik(items, x, t) - t * t / 2, ("map", items, x))
    return t, 1 / sqrt(poly_info(items, t) + 1)


def poly_mle(items, x):
    """Root of l'(t); all lowest categories -> -6, all highest -> +6. SE = 1 / sqrt(I), at most 6."""
    if all(u == 0 for u in x):
        t = LO
    elif all(u == (1 if it[0] == "4pl" else len(it[2])) for it, u in zip(items, x)):
        t = HI
    else:
        t = best_root(lambda t: poly_score(items, x, t),
                      lambda t: poly_loglik(items, x, t), ("mle", items, x))
    return t, min(1 / sqrt(poly_info(items, t)), mpf(6))


def poly_wle(items, x):
    """Warm: root of l'(t) + J / (2 I); SE = 1 / sqrt(I), at most 6. For GRM, GPCM,
    PCM and 2PL items J = dI/dt, so this is the maximum of ln L + ln(I) / 2; with
    3PL/4PL items it is not (that objective then only picks among several roots)."""
    t = best_root(lambda t: poly_score(items, x, t) + poly_j(items, t) / (2 * poly_info(items, t)),
                  lambda t: poly_loglik(items, x, t) + log(poly_info(items, t)) / 2, ("wle", items, x))
    return t, min(1 / sqrt(poly_info(items, t)), mpf(6))


BANKS = {
    "GRM": [("grm", 1.2, [-1.5, -0.5, 0.4, 1.3]), ("grm", 0.8, [-2.0, 0.0, 1.0]),
            ("grm", 1.7, [-0.8, 0.2, 0.9, 2.1]), ("grm", 1.0, [0.5])],
    "GPCM": [("gpcm", 1.1, [-1.0, 0.2, 0.8]), ("gpcm", 0.7, [0.5, -0.3, 1.2, 1.8]),
             ("gpcm", 1.5, [-0.4, 0.6])],
    "PCM": [("pcm", 1, [-1.2, 0.3, 1.0]), ("pcm", 1, [-0.5, 0.5]), ("pcm", 1, [0.0, 0.9, 1.4, 2.0])],
    "MIXED": [("grm", 1.2, [-1.5, -0.5, 0.4, 1.3]), ("4pl", 1.07, 0.18, 0.10, 1.0),
              ("gpcm", 1.1, [-1.0, 0.2, 0.8]), ("4pl", 1.32, -0.63, 0.17, 0.87), ("pcm", 1, [-0.5, 0.5])],
}
PATTERNS = {
    "GRM": [[2, 1, 3, 0], [0, 0, 0, 0], [4, 3, 4, 1], [3, 2, 1, 1]],
    "GPCM": [[2, 1, 1], [0, 0, 0], [3, 4, 2], [1, 3, 0]],
    "PCM": [[2, 1, 3], [1, 2, 0], [0, 0, 0], [3, 2, 4]],
    "MIXED": [[3, 1, 2, 0, 1], [0, 0, 0, 0, 0], [4, 1, 3, 1, 2], [1, 0, 1, 1, 0]],
}
CURVE_THETAS = [-2.5, 0.3, 1.7]


def close(x, y, tol=mpf(10) ** -40):
    return abs(x - y) <= tol * max(1, abs(y))


def validate():
    """The polytomous code's own checks (AssertionError if any fails)."""
    thetas = [mpf(-4), mpf(-1.3), mpf(0), mpf(0.7), mpf(3.2)]
    for t in thetas:
        # GRM and GPCM with one threshold are the 2PL with the same a and b.
        for a, b in [(0.6, -1.1), (1.3, 0.4), (2.2, 1.9)]:
            two_pl = (a, b, 0, 1)
            for it in [("grm", a, [b]), ("gpcm", a, [b])]:
                assert close(cat_probs(it, t)[1], p4(two_pl, t)) and close(cat_probs(it, t)[0], 1 - p4(two_pl, t))
                assert close(cat_derivs(it, t)[0][1], dp(two_pl, t)) and close(cat_derivs(it, t)[1][1], d2p(two_pl, t))
                assert close(item_info(it, t), info([two_pl], t))
        for it in [it for bank in BANKS.values() for it in bank]:
            p = cat_probs(it, t)
            assert close(sum(p), mpf(1)) and all(pk > 0 for pk in p)
            # The closed-form derivatives agree with mpmath's numerical ones.
            for k, (d1, d2) in enumerate(zip(*cat_derivs(it, t))):
                assert abs(d1 - mp.diff(lambda s: cat_probs(it, s)[k], t)) < mpf(10) ** -40
                assert abs(d2 - mp.diff(lambda s: cat_probs(it, s)[k], t, 2)) < mpf(10) ** -40
            if it[0] in ("gpcm", "pcm"):  # GPCM information is a^2 Var(X)
                mean = sum(k * pk for k, pk in enumerate(p))
                var = sum((k - mean) ** 2 * pk for k, pk in enumerate(p))
                assert close(item_info(it, t), mpf(it[1]) ** 2 * var)
    # J = dI/dt for GRM and GPCM items (not for 3PL/4PL ones, see poly_wle).
    for it in BANKS["GRM"] + BANKS["GPCM"]:
        assert abs(poly_j([it], mpf(0.3)) - mp.diff(lambda s: poly_info([it], s), mpf(0.3))) < mpf(10) ** -40
    # The generic code reproduces the dichotomous estimators on 4PL items.
    as_4pl = [("4pl",) + it for it in FOUR_PL]
    assert close(poly_mle(as_4pl, [0, 1, 0])[0], mle(FOUR_PL, [0, 1, 0])[0])
    assert close(poly_map(as_4pl, [0, 1, 0])[0], map_(FOUR_PL, [0, 1, 0])[0])
    assert close(poly_wle(as_4pl, [0, 1, 0])[0], wle(FOUR_PL, [0, 1, 0])[0])
    assert all(close(u, v) for u, v in zip(poly_eap(as_4pl, [0, 1, 0]), eap(FOUR_PL, [0, 1, 0])))


def f64(x):
    """The double nearest to x."""
    return float(mp.nstr(x, 40))


def reference():
    cases = []
    for bank, items in BANKS.items():
        for x in PATTERNS[bank]:
            case = {"bank": bank, "pattern": x}
            for name, est in [("eap", poly_eap), ("map", poly_map), ("mle", poly_mle), ("wle", poly_wle)]:
                t, se = est(items, x)
                case[name] = {"theta": f64(t), "se": f64(se)}
            cases.append(case)
    curves = [{"bank": bank, "item": i, "theta": t,
               "probs": [f64(p) for p in cat_probs(it, mpf(t))], "info": f64(item_info(it, mpf(t)))}
              for bank, items in BANKS.items() for i, it in enumerate(items) for t in CURVE_THETAS]
    note = ("Generated by shared/reference/irt_reference.py --json: mpmath, 50 digits, logistic metric "
            "(D = 1), theta in [-6, 6]. EAP: 61 even nodes, N(0,1) prior, se = posterior SD. "
            "MAP: root of l' - theta, se = 1/sqrt(I + 1). MLE: root of l', all lowest categories -> -6, "
            "all highest -> +6, se = min(1/sqrt(I), 6). WLE (Warm): root of l' + J/(2I) "
            "(several: the one maximising ln L + ln(I)/2; none: the bound it points to), "
            "se = min(1/sqrt(I), 6). info = sum_k P_k'^2 / P_k. Values rounded to the nearest double.")
    items = {bank: [[it[0], float(it[1]), [float(b) for b in it[2]]] if it[0] != "4pl"
                    else ["4pl"] + [float(v) for v in it[1:]] for it in items]
             for bank, items in BANKS.items()}
    return {"note": note, "items": items, "cases": cases, "curves": curves}


def dumps(doc):
    """The document as JSON, one bank, case or curve a line."""
    lines = ['{"note": ' + json.dumps(doc["note"]) + ",", ' "items": {']
    lines.append(",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in doc["items"].items()) + "},")
    lines.append(' "cases": [')
    lines.append(",\n".join("  " + json.dumps(c) for c in doc["cases"]) + "],")
    lines.append(' "curves": [')
    lines.append(",\n".join("  " + json.dumps(c) for c in doc["curves"]) + "]}")
    text = "\n".join(lines)
    assert json.loads(text) == doc
    return text


if __name__ == "__main__":
    validate()
    if "--json" in sys.argv[1:]:
        print(dumps(reference()))
        sys.exit(0)

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

    print("polytomous (theta, se), EAP / MAP / MLE / WLE:")
    for case in reference()["cases"]:
        print(f"  {case['bank']:5} {str(case['pattern']):15}",
              " / ".join(f"{case[e]['theta']:+.9f} ({case[e]['se']:.9f})" for e in ("eap", "map", "mle", "wle")))
    for est, items, x in no_root:
        print(f"  no root of the {est.upper()} equation in [-6, 6] for {x}: took the bound")
