#!/usr/bin/env python3
"""lectern-cat calibrate against girth and a numpy/BLAS EM (mml_em.py), same data, same run.

    pip install numpy scipy girth==0.8.0
    cargo build --release -p lectern-cat
    python3 shared/reference/calibrate_compare.py [--lectern target/release/lectern-cat]
        [--quadrature 41] [--workdir DIR] [--datasets A,A2,B] [--repeat 3]
        [--skip-lectern] [--skip-girth] [--json]

(--lectern defaults to /work/main/target/release/lectern-cat; about 80 s in
all on 2 cores, almost all of it girth on A and A2.)

Data (fixed seed, generated here, written to --workdir as long CSV
`person,item,score` with the true parameters beside it as JSON):
  A   "2PL sparse adaptive": 10,000 persons, 200 items, 20 responses each.
      a ~ U(0.8, 2.0), b ~ N(0, 1) clipped to [-2.5, 2.5], theta ~ N(0, 1).
      Each person gets 3 random routing items, then 17 items each drawn at
      random among the 5 most informative not-yet-given items at the person's
      running EAP (answers so far, true item parameters, N(0, 1) prior, 81
      points on [-5, 5]); selection never looks at the true theta, so the
      missingness is ignorable for MML.
  A2  the same 200 items, 2,000 new persons, every item answered (a check
      that every tool recovers the truth on full data).
  AR  (optional, --datasets A,A2,AR,B) the same 200 items, 10,000 new
      persons, 20 items each drawn completely at random: sparse but not
      adaptive, to separate "sparse" from "adaptive" in girth's behaviour.
  B   "GRM full": 5,000 persons x 30 items, 5 categories, a ~ U(0.8, 2.2),
      thresholds = location N(0, 1) + offsets evenly spaced on [-1.5, 1.5] +
      N(0, 0.1) jitter, sorted; everyone answers everything.

Fits, each timed with time.perf_counter around the fit call only (no data
generation, no file I/O for the Python tools):
  girth    girth.twopl_mml / girth.grm_mml on an items x persons int array,
           unanswered cells set to girth.INVALID_RESPONSE (-99999). Options:
           quadrature_n = Q, quadrature_bounds = (-6, 6) (girth integrates
           with Gauss-Legendre nodes, not evenly spaced ones; its defaults are
           41 points on (-4.5, 4.5)), max_iteration 25 (its default), its own
           stopping rule (max |change in a| < 1e-3). Its iterations are
           counted by wrapping its LatentPDF (called once per cycle).
           How girth treats missing cells (girth/unidimensional/polytomous/
           grm_mml.py, which twopl_mml calls): in the marginal likelihood a
           missing cell's factor is set to 1 (correct), but girth is not EM:
           it cycles over items, maximising each item's marginal likelihood
           over a alone (fminbound on [0.2, 5]) with the difficulties tied to
           a by a moment equation, integral of P(X >= k | t) phi(t) dt =
           observed proportion among the persons who answered the item
           (_solve_for_constants + a look-up table). Under adaptive
           administration those proportions are pulled towards 1/2 whatever
           the item's difficulty (10th-90th percentile 0.35-0.69 in A), and
           the ability of the persons who answered is ignored, so girth is
           badly biased on data set A
           (it is fine on full data and on data missing completely at random,
           see A2 and AR).
  numpy    mml_em.fit_2pl / fit_grm: Bock-Aitkin EM, Q evenly spaced points
           on [-6, 6], tol 1e-4 on max |change| in (a, d), max 500 cycles.
  lectern  LECTERN calibrate --responses A.csv --model 2pl|grm --quadrature Q
           --out OUT.json; its fit time is the "wall_seconds" of the JSON it
           prints (the process wall time is shown too). Skipped if the binary
           is missing or with --skip-lectern.

numpy and lectern are fitted --repeat times (default 3) and the fastest time
is reported; girth (up to tens of seconds a fit) once. Run on an idle machine:
with 2 cores, any other load slows the multithreaded BLAS products badly.

Prints, per data set: fit seconds, iterations, RMSE and mean bias of a and of
b (GRM: over all thresholds), the marginal log-likelihood where the tool
reports one, and the speed ratios girth/lectern and numpy/lectern.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from scipy.special import expit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mml_em  # noqa: E402

SEED = 20240611


# ------------------------------------------------------------------- data

def items_2pl(rng, n_items):
    a = rng.uniform(0.8, 2.0, n_items)
    b = np.clip(rng.normal(0.0, 1.0, n_items), -2.5, 2.5)
    return a, b


def simulate_adaptive(a, b, n_persons, length, rng, routing=3, randomesque=5):
    """Vectorised CAT: `routing` random items, then randomesque max-information
    at the running EAP. Returns theta, X (persons x items, 0/1), M (mask)."""
    n_items = a.size
    theta = rng.normal(0.0, 1.0, n_persons)
    grid = np.linspace(-5, 5, 81)
    zg = a[:, None] * (grid - b[:, None])          # items x grid
    log1, log0 = -np.logaddexp(0, -zg), -np.logaddexp(0, zg)
    logpost = np.tile(-0.5 * grid**2, (n_persons, 1))
    X = np.zeros((n_persons, n_items), dtype=np.int64)
    M = np.zeros((n_persons, n_items), dtype=bool)
    rows = np.arange(n_persons)
    route = np.argsort(rng.random((n_persons, n_items)), axis=1)[:, :routing]
    for step in range(length):
        if step < routing:
            item = route[:, step]
        else:
            post = np.exp(logpost - logpost.max(axis=1, keepdims=True))
            eap = (post @ grid) / post.sum(axis=1)
            p = expit(a * (eap[:, None] - b))
            info = a**2 * p * (1 - p)
            info[M] = -np.inf
            top = np.argpartition(-info, randomesque, axis=1)[:, :randomesque]
            item = top[rows, rng.integers(0, randomesque, n_persons)]
        x = rng.random(n_persons) < expit(a[item] * (theta - b[item]))
        X[rows, item] = x
        M[rows, item] = True
        logpost += np.where(x[:, None], log1[item], log0[item])
    return theta, X, M


def simulate_full_2pl(a, b, n_persons, rng):
    theta = rng.normal(0.0, 1.0, n_persons)
    X = (rng.random((n_persons, a.size)) < expit(a * (theta[:, None] - b))).astype(np.int64)
    return theta, X, np.ones(X.shape, dtype=bool)


def simulate_grm(n_persons, n_items, n_cat, rng):
    a = rng.uniform(0.8, 2.2, n_items)
    loc = rng.normal(0.0, 1.0, n_items)
    b = loc[:, None] + np.linspace(-1.5, 1.5, n_cat - 1) + rng.normal(0, 0.1, (n_items, n_cat - 1))
    b = np.sort(b, axis=1)
    theta = rng.normal(0.0, 1.0, n_persons)
    pstar = expit(a[None, :, None] * (theta[:, None, None] - b[None]))
    X = (rng.random((n_persons, n_items))[:, :, None] < pstar).sum(axis=2).astype(np.int64)
    return a, b, theta, X, np.ones(X.shape, dtype=bool)


def item_ids(n):
    return [f"i{j + 1:03d}" for j in range(n)]


def write_dataset(workdir, name, X, M, a, b, model):
    """Long CSV person,item,score (administered cells only) and true params JSON."""
    n, j = X.shape
    ids = item_ids(j)
    pw = max(5, len(str(n)))
    path = os.path.join(workdir, f"{name}.csv")
    rr, cc = np.nonzero(M)
    with open(path, "w") as f:
        f.write("person,item,score\n")
        f.writelines(f"p{r + 1:0{pw}d},{ids[c]},{X[r, c]}\n" for r, c in zip(rr, cc))
    truth = [{"id": ids[k], "model": model, "a": float(a[k]),
              "b": float(b[k]) if model == "2pl" else [float(v) for v in b[k]]}
             for k in range(j)]
    with open(os.path.join(workdir, f"{name}_true.json"), "w") as f:
        json.dump(truth, f, indent=1)
    return path


# ------------------------------------------------------------------- fits

def girth_fit(X, M, model, q, max_iter):
    import girth
    counter = {"n": 0}
    g = girth.grm_mml.__globals__
    base = g["LatentPDF"]

    class Counting(base):
        def __call__(self, *args, **kw):
            counter["n"] += 1
            return super().__call__(*args, **kw)

    data = np.where(M, X, girth.INVALID_RESPONSE).T.astype(np.int64).copy()  # items x persons
    options = {"quadrature_n": q, "quadrature_bounds": (-6.0, 6.0), "max_iteration": max_iter}
    g["LatentPDF"] = Counting
    try:
        started = time.perf_counter()
        res = (girth.twopl_mml if model == "2pl" else girth.grm_mml)(data, options)
        wall = time.perf_counter() - started
    finally:
        g["LatentPDF"] = base
    return {"seconds": wall, "iterations": counter["n"], "a": np.asarray(res["Discrimination"]),
            "b": np.asarray(res["Difficulty"]), "loglik": None,
            "note": f"Gauss-Legendre {q} pts on (-6, 6), max_iteration {max_iter}"}


def numpy_fit(X, M, model, q):
    fit = mml_em.fit_2pl if model == "2pl" else mml_em.fit_grm
    started = time.perf_counter()
    res = fit(X, M, q=q)
    wall = time.perf_counter() - started
    return {"seconds": wall, "iterations": res["iterations"], "a": res["a"], "b": res["b"],
            "loglik": res["loglik"], "converged": res["converged"]}


def lectern_fit(binary, csv_path, model, q, n_items):
    out = csv_path[:-4] + f"_lectern_{model}.json"
    cmd = [binary, "calibrate", "--responses", csv_path, "--model", model,
           "--quadrature", str(q), "--out", out]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    process_wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    report = json.loads(proc.stdout)
    with open(out) as f:
        fitted = {it["id"]: it for it in json.load(f)}
    ids = item_ids(n_items)
    a = np.array([fitted[i]["a"] for i in ids], dtype=float)
    b = np.array([fitted[i]["b"] for i in ids], dtype=float)
    return {"seconds": float(report["wall_seconds"]), "process_seconds": process_wall,
            "iterations": report.get("iterations"), "a": a, "b": b,
            "loglik": report.get("loglik", report.get("log_likelihood")), "report": report}


def accuracy(res, a, b):
    ea = res["a"] - a
    eb = np.asarray(res["b"], dtype=float).reshape(b.shape) - b
    return {"rmse_a": math.sqrt(np.mean(ea**2)), "bias_a": float(np.mean(ea)),
            "rmse_b": math.sqrt(np.mean(eb**2)), "bias_b": float(np.mean(eb)),
            "max_abs_err_b": float(np.max(np.abs(eb)))}


# ------------------------------------------------------------------- main

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lectern", default="/work/main/target/release/lectern-cat")
    parser.add_argument("--skip-lectern", action="store_true")
    parser.add_argument("--skip-girth", action="store_true")
    parser.add_argument("--quadrature", type=int, default=41)
    parser.add_argument("--girth-max-iter", type=int, default=25,
                        help="girth's max_iteration option (its default is 25)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="fit numpy and lectern this many times, report the fastest (girth: once)")
    parser.add_argument("--datasets", default="A,A2,B", help="comma list among A, A2, AR, B")
    parser.add_argument("--workdir", help="keep the CSVs and fits here (default: a temp dir, removed)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = parser.parse_args()
    wanted = [s.strip() for s in args.datasets.split(",") if s.strip()]
    q = args.quadrature

    use_lectern = not args.skip_lectern
    if use_lectern and not (os.path.isfile(args.lectern) and os.access(args.lectern, os.X_OK)):
        print(f"note: {args.lectern} not found, skipping lectern", file=sys.stderr)
        use_lectern = False

    tmp = None
    if args.workdir:
        workdir = args.workdir
        os.makedirs(workdir, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="calibrate_compare_")
        workdir = tmp.name

    rng = np.random.default_rng(args.seed)
    a2, b2 = items_2pl(rng, 200)
    specs = {}
    if "A" in wanted:
        _, X, M = simulate_adaptive(a2, b2, 10_000, 20, np.random.default_rng([args.seed, 1]))
        specs["A"] = ("2PL sparse adaptive: 10,000 persons x 200 items, 20 responses each",
                      "2pl", X, M, a2, b2)
    if "A2" in wanted:
        _, X, M = simulate_full_2pl(a2, b2, 2_000, np.random.default_rng([args.seed, 2]))
        specs["A2"] = ("2PL full: the same 200 items, 2,000 persons, every item answered",
                       "2pl", X, M, a2, b2)
    if "AR" in wanted:
        r = np.random.default_rng([args.seed, 4])
        theta = r.normal(0.0, 1.0, 10_000)
        X = (r.random((10_000, 200)) < expit(a2 * (theta[:, None] - b2))).astype(np.int64)
        M = np.zeros(X.shape, dtype=bool)
        M[np.arange(10_000)[:, None], np.argsort(r.random((10_000, 200)), axis=1)[:, :20]] = True
        specs["AR"] = ("2PL sparse random: the same 200 items, 10,000 persons, 20 random items each",
                       "2pl", X, M, a2, b2)
    if "B" in wanted:
        ag, bg, _, X, M = simulate_grm(5_000, 30, 5, np.random.default_rng([args.seed, 3]))
        specs["B"] = ("GRM full: 5,000 persons x 30 items, 5 categories", "grm", X, M, ag, bg)

    out = {"quadrature": q, "workdir": workdir if tmp is None else None,
           "numpy_blas_threads_hint": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
           "cpu_count": os.cpu_count(), "datasets": {}}
    try:
        for name, (desc, model, X, M, a, b) in specs.items():
            path = write_dataset(workdir, name, X, M, a, b, model)
            exposure = M.sum(axis=0)
            entry = {"description": desc, "model": model, "persons": X.shape[0],
                     "items": X.shape[1], "responses": int(M.sum()),
                     "item_exposure_min_median_max": [int(exposure.min()),
                                                      int(np.median(exposure)),
                                                      int(exposure.max())],
                     "csv": path if tmp is None else None, "results": {}}
            if not args.json:
                print(f"\n[{name}] {desc}  ({entry['responses']:,} responses; responses per "
                      f"item min/median/max {entry['item_exposure_min_median_max']})",
                      flush=True)
            runs = []
            if not args.skip_girth:
                runs.append(("girth", lambda: girth_fit(X, M, model, q, args.girth_max_iter)))
            runs.append(("numpy", lambda: numpy_fit(X, M, model, q)))
            if use_lectern:
                runs.append(("lectern", lambda: lectern_fit(args.lectern, path, model, q, X.shape[1])))
            if not args.json:
                print(f"  {'tool':8} {'fit s':>9} {'iter':>5} {'RMSE a':>8} {'bias a':>8} "
                      f"{'RMSE b':>8} {'bias b':>8} {'loglik':>14}")
            for tool, run in runs:
                try:
                    times = []
                    for _ in range(1 if tool == "girth" else max(1, args.repeat)):
                        res = run()
                        times.append(res["seconds"])
                    res["seconds"] = min(times)
                except Exception as e:  # report and go on with the other tools
                    entry["results"][tool] = {"error": str(e)}
                    if not args.json:
                        print(f"  {tool:8} FAILED: {e}", flush=True)
                    continue
                row = {"seconds": res["seconds"], "iterations": res["iterations"],
                       "loglik": res["loglik"], **accuracy(res, a, b)}
                if len(times) > 1:
                    row["all_seconds"] = times
                for k in ("process_seconds", "converged", "note"):
                    if k in res:
                        row[k] = res[k]
                entry["results"][tool] = row
                if not args.json:
                    ll = f"{row['loglik']:.3f}" if row["loglik"] is not None else "-"
                    it = row["iterations"] if row["iterations"] is not None else "-"
                    extra = (f"  (process {row['process_seconds']:.3f} s)"
                             if "process_seconds" in row else "")
                    print(f"  {tool:8} {row['seconds']:9.3f} {it:>5} {row['rmse_a']:8.4f} "
                          f"{row['bias_a']:+8.4f} {row['rmse_b']:8.4f} {row['bias_b']:+8.4f} "
                          f"{ll:>14}{extra}", flush=True)
            res = entry["results"]
            lec = res.get("lectern", {}).get("seconds")
            ratios = {}
            if lec:
                for tool in ("girth", "numpy"):
                    if res.get(tool, {}).get("seconds"):
                        ratios[f"{tool}/lectern"] = res[tool]["seconds"] / lec
            if res.get("girth", {}).get("seconds") and res.get("numpy", {}).get("seconds"):
                ratios["girth/numpy"] = res["girth"]["seconds"] / res["numpy"]["seconds"]
            entry["speed_ratios"] = ratios
            if not args.json and ratios:
                print("  speed ratios: " + ", ".join(f"{k} {v:.1f}x" for k, v in ratios.items()))
            out["datasets"][name] = entry
    finally:
        if tmp is not None:
            tmp.cleanup()
    if args.json:
        print(json.dumps(out, indent=1))
    elif tmp is None:
        print(f"\ndata and fits in {workdir}")


if __name__ == "__main__":
    main()
