#!/usr/bin/env python3
"""A vectorised numpy polytomous CAT: the Python baseline lectern is timed against.

Samejima's graded response model (logistic metric, D = 1). Each simulated
examinee (true theta ~ N(0, 1)) takes a fixed-length test: start at theta = 0;
at every step pick the not-yet-administered item with the largest exact GRM
Fisher information at the current estimate (computed for the whole bank at
once), draw the response from the GRM category probabilities at the true
theta, and update the estimate by EAP on 61 even nodes in [-6, 6] with a
N(0, 1) prior (the posterior is a running product over the nodes).

    pip install numpy
    python3 shared/reference/poly_cat.py BANK.json [--examinees 1000] [--length 20] [--seed 1]

BANK.json is a JSON array of items such as
{"id": "i1", "model": "grm", "a": 1.3, "b": [-1.2, -0.3, 0.5, 1.4], "concepts": []};
items may have different numbers of categories. Prints one JSON line: examinees,
length, bank_items, wall_s (the simulation only, not reading the bank), bias,
rmse (of the final estimate against the true theta) and mean_se (posterior SD).
"""
import argparse
import json
import sys
import time

import numpy as np

NODES = np.linspace(-6, 6, 61)
PRIOR = np.exp(-NODES**2 / 2)


def load_bank(path):
    """Discriminations a (n,) and thresholds b (n, m), padded with +inf.

    A +inf threshold makes P(X >= k) = 0, so an item with fewer categories has
    probability 0 (and no information) in the padded ones."""
    with open(path) as f:
        items = json.load(f)
    for it in items:
        if it.get("model") != "grm":
            sys.exit(f"poly_cat.py: item {it.get('id')!r} has model {it.get('model')!r}; only \"grm\" is supported")
        if list(it["b"]) != sorted(it["b"]):
            sys.exit(f"poly_cat.py: item {it.get('id')!r}: GRM thresholds must be increasing")
    m = max(len(it["b"]) for it in items)
    a = np.array([float(it["a"]) for it in items])
    b = np.full((len(items), m), np.inf)
    for i, it in enumerate(items):
        b[i, : len(it["b"])] = it["b"]
    return a, b


def cumulative(a, b, theta):
    """P(X >= k) for k = 0..m+1 (1 and 0 at the ends), along the last axis.
    a, b broadcast against theta: items x thresholds, or nodes x thresholds."""
    star = 1 / (1 + np.exp(-a[..., None] * (theta[..., None] - b)))
    ones, zeros = np.ones(star.shape[:-1] + (1,)), np.zeros(star.shape[:-1] + (1,))
    return np.concatenate([ones, star, zeros], axis=-1)


def information(a, b, theta):
    """Exact GRM Fisher information sum_k P_k'^2 / P_k of every item at theta."""
    star = cumulative(a, b, np.full(a.shape, theta))
    dstar = a[:, None] * star * (1 - star)  # d/dtheta P(X >= k); 0 at the ends
    p = star[:, :-1] - star[:, 1:]
    dp = dstar[:, :-1] - dstar[:, 1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, dp**2 / p, 0.0).sum(axis=1)


def simulate(a, b, examinees, length, rng):
    true = rng.standard_normal(examinees)
    est, se = np.empty(examinees), np.empty(examinees)
    for e in range(examinees):
        theta, posterior = 0.0, PRIOR.copy()
        free = np.ones(len(a), dtype=bool)
        for _ in range(length):
            # Maximum information among the items not yet administered.
            i = np.argmax(np.where(free, information(a, b, theta), -np.inf))
            free[i] = False
            # Response by inverse CDF: X = #{k : u < P(X >= k | true theta)}.
            star = cumulative(a[i], b[i], np.array(true[e]))[1:-1]
            x = int(np.sum(rng.random() < star))
            # Posterior *= P(X = x | node); renormalised to stay away from underflow.
            star_nodes = cumulative(a[i], b[i], NODES)
            posterior *= star_nodes[:, x] - star_nodes[:, x + 1]
            posterior /= posterior.sum()
            theta = posterior @ NODES
        est[e], se[e] = theta, np.sqrt(posterior @ (NODES - theta) ** 2)
    return true, est, se


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bank")
    parser.add_argument("--examinees", type=int, default=1000)
    parser.add_argument("--length", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    a, b = load_bank(args.bank)
    if args.length > len(a):
        sys.exit(f"poly_cat.py: --length {args.length} exceeds the bank's {len(a)} items")

    started = time.perf_counter()
    true, est, se = simulate(a, b, args.examinees, args.length, np.random.default_rng(args.seed))
    wall = time.perf_counter() - started

    err = est - true
    print(json.dumps({"examinees": args.examinees, "length": args.length, "bank_items": len(a),
                      "wall_s": round(wall, 3), "bias": float(err.mean()),
                      "rmse": float(np.sqrt((err**2).mean())), "mean_se": float(se.mean())}))


if __name__ == "__main__":
    main()
