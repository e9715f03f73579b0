#!/usr/bin/env python3
"""lectern against the vectorised numpy GRM CAT (poly_cat.py), same bank, same run.

    pip install numpy
    cargo build --release -p lectern-cat
    python3 shared/reference/poly_compare.py [--lectern target/release/lectern-cat]

1. `lectern-cat simulate` generates a 500-item, 5-category GRM bank and runs
   1,000 examinees x 20 items (maximum information, EAP on 61 points, N(0, 1)
   prior, start at 0), once on one thread and once on every core; its report
   writes the bank it used.
2. poly_cat.py runs the same design on that bank (exact GRM information of the
   whole bank at every step, EAP on the same 61 points).
3. Prints the wall times (the simulations only), bias and RMSE of each, and
   the speed-up.
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import poly_cat  # noqa: E402


def lectern(binary, report, threads, args):
    cmd = [binary, "simulate", "--generate", str(args.items), "--model", "grm",
           "--categories", "5", "--examinees", str(args.examinees), "--max-items",
           str(args.length), "--seed", "7", "--threads", str(threads), "--report", report]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def bank_from_report(report):
    """(a, b) as poly_cat.load_bank returns them, from the report's bank.csv."""
    with open(os.path.join(report, "bank.csv")) as f:
        rows = list(csv.DictReader(f))
    items = []
    for r in rows:
        b = [float(r[k]) for k in sorted((k for k in r if k[:1] == "b" and k[1:].isdigit()),
                                          key=lambda k: int(k[1:])) if r[k]]
        items.append({"id": r["id"], "model": r["model"], "a": float(r["a"]), "b": b})
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(items, f)
    try:
        return poly_cat.load_bank(f.name)
    finally:
        os.unlink(f.name)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lectern", default="target/release/lectern-cat")
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--examinees", type=int, default=1000)
    parser.add_argument("--length", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as report:
        one = lectern(args.lectern, report, 1, args)
        every = lectern(args.lectern, report, 0, args)
        a, b = bank_from_report(report)
    started = time.perf_counter()
    true, est, se = poly_cat.simulate(a, b, args.examinees, args.length, np.random.default_rng(1))
    numpy_wall = time.perf_counter() - started
    err = est - true
    rows = [
        ("lectern, 1 thread", one["wall_seconds"], one["bias"], one["rmse"]),
        (f"lectern, {os.cpu_count()} threads", every["wall_seconds"], every["bias"], every["rmse"]),
        ("numpy (poly_cat.py)", numpy_wall, float(err.mean()), float(np.sqrt((err**2).mean()))),
    ]
    print(f"{args.examinees} examinees x {args.length} items, {args.items}-item 5-category GRM bank")
    for name, wall, bias, rmse in rows:
        print(f"  {name:24} {wall * 1e3:9.1f} ms   bias {bias:+.4f}   RMSE {rmse:.4f}")
    print(f"  speed-up, one thread: {numpy_wall / one['wall_seconds']:.0f}x")


if __name__ == "__main__":
    main()
