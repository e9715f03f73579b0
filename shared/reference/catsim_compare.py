#!/usr/bin/env python3
"""Head-to-head with catsim (pip install catsim==0.21.*) on the same bank.

    lectern-cat simulate --generate 500 --examinees 1000 --seed 7 --max-items 20 \
        --se-target 0.3 --estimator mle --report /tmp/simrep
    python3 shared/reference/catsim_compare.py /tmp/simrep

Reads the bank and every simulated response pattern the report wrote, then
1. re-estimates each pattern's MLE with catsim's NumericalSearchEstimator and
   reports the largest difference from lectern's (mixed patterns only: for
   constant ones catsim applies Dodd's heuristic, lectern the ±6 bound);
2. times catsim's own 1,000-examinee × 20-item simulation on the bank
   (max-information selection, its numerical MLE);
3. times one catsim max-information selection on a 5,000-item bank.
"""
import csv
import json
import sys
import time

import numpy
from catsim.estimation import NumericalSearchEstimator
from catsim.initialization import FixedPointInitializer
from catsim.item_bank import ItemBank
from catsim.selection import MaxInfoSelector
from catsim.simulation import Simulator
from catsim.stopping import TestLengthStopper

report = sys.argv[1] if len(sys.argv) > 1 else "/tmp/simrep"
with open(f"{report}/bank.csv") as f:
    rows = list(csv.DictReader(f))
ids = {r["id"]: i for i, r in enumerate(rows)}
params = numpy.array([[float(r["a"]), float(r["b"]), float(r["c"]), float(r["d"])] for r in rows])
bank = ItemBank(params)

estimator = NumericalSearchEstimator()
with open(f"{report}/examinees.csv") as f:
    ours = [float(r["theta"]) for r in csv.DictReader(f)]
worst, compared = 0.0, 0
with open(f"{report}/responses.jsonl") as f:
    for k, line in enumerate(f):
        pattern = json.loads(line)
        answers = [bool(u) for u in pattern["answers"]]
        if all(answers) or not any(answers):
            continue
        items = [ids[i] for i in pattern["items"]]
        theirs = estimator.estimate(item_bank=bank, administered_items=items,
                                    response_vector=answers, est_theta=0.0)
        worst = max(worst, abs(theirs - ours[k]))
        compared += 1
print(f"MLE, {compared} mixed patterns: largest |catsim - lectern| = {worst:.2e}")

started = time.perf_counter()
Simulator(bank, 1000, FixedPointInitializer(0.0), MaxInfoSelector(), NumericalSearchEstimator(),
          TestLengthStopper(max_items=20), seed=7).simulate()
print(f"catsim simulation, 1,000 x 20 items on {len(rows)} items: {time.perf_counter() - started:.1f} s")

big = ItemBank.generate_item_bank(5000, "3PL", rng=numpy.random.default_rng(1))
selector = MaxInfoSelector()
administered = list(range(0, 5000, 250))
started = time.perf_counter()
for _ in range(200):
    selector.select(item_bank=big, administered_items=administered, est_theta=0.37)
print(f"catsim selection, 5,000 items: {(time.perf_counter() - started) / 200 * 1e3:.2f} ms")
