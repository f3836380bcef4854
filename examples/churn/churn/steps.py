"""Steps of the churn pipeline: ingest, a pure-Python logistic regression, evaluation, registry.

Everything uses the standard library (and ``pipecast.metrics``) only and runs in well under a
second. The functions
are plain Python called with keyword arguments (SPEC §3.1); ``@step`` only adds the typing
the Python DSL twin (``pipeline.py``) reads, and leaves the functions callable as they are.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import random
from pathlib import Path

from pipecast.dsl import Dataset, Input, Metrics, Model, Output, Resources, step
from pipecast.metrics import annotate, log

FEATURES = ("tenure", "monthly_charges", "support_calls")
REGIONS = ("eu", "us", "apac")
ROWS = 1500


COLUMNS = ("customer_id", "region", *FEATURES, "churned")


def synthesize(path: str, seed: str = "s3://example/churn.csv", rows: int = ROWS) -> None:
    """Write a synthetic customer table (CSV): how ``data/customers.csv`` was made.

    ``python -c "from churn.steps import synthesize; synthesize('data/customers.csv')"``
    """
    rng = random.Random(int(hashlib.sha256(seed.encode()).hexdigest()[:16], 16))
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(COLUMNS)
        for i in range(rows):
            region = REGIONS[i % len(REGIONS)]
            tenure = rng.randint(1, 72)
            charges = round(rng.uniform(20.0, 120.0), 2)
            calls = min(int(rng.expovariate(0.7)), 9)
            logit = 0.5 - 0.06 * tenure + 0.03 * charges + 0.7 * calls - 2.0
            churned = int(rng.random() < 1.0 / (1.0 + math.exp(-logit)))
            out.writerow((f"c{i:05d}", region, tenure, charges, calls, churned))


@step(output="rows")
def ingest(base: Input[Dataset], table: Output[Dataset]) -> int:
    """Check the imported customer table (CSV) and write the rows fit for training.

    A row is kept when every feature is a number and ``churned`` is 0 or 1; the table's
    metadata records how many rows were read and kept.
    """
    read = kept = 0
    with open(base, newline="") as src, open(table, "w", newline="") as dst:
        reader = csv.DictReader(src)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{base}: the base dataset lacks the columns {', '.join(missing)}")
        out = csv.writer(dst, lineterminator="\n")
        out.writerow(COLUMNS)
        for rec in reader:
            read += 1
            try:
                [float(rec[f]) for f in FEATURES]
            except ValueError:
                continue
            if rec["churned"] not in ("0", "1"):
                continue
            out.writerow([rec[c] for c in COLUMNS])
            kept += 1
    annotate(table, rows_read=read, rows_kept=kept)
    return kept


def _sigmoid(z: float) -> float:
    if z < -60:
        return 0.0
    return 1.0 / (1.0 + math.exp(-z))


def auc_score(labels: list[int], scores: list[float]) -> float:
    """Area under the ROC curve (Mann-Whitney U with tied ranks averaged)."""
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    pos = sum(labels)
    neg = len(labels) - pos
    if pos == 0 or neg == 0:
        return 0.5
    rank_sum = sum(r for r, y in zip(ranks, labels, strict=True) if y)
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def _read(table: str, region: str) -> list[tuple[list[float], int]]:
    rows = []
    seen = set()
    with open(table, newline="") as fh:
        for rec in csv.DictReader(fh):
            seen.add(rec["region"])
            if rec["region"] == region:
                rows.append(([float(rec[f]) for f in FEATURES], int(rec["churned"])))
    if not rows:
        raise ValueError(f"no rows for region {region!r} (regions in the data: {', '.join(sorted(seen))})")
    return rows


@step(output="auc", resources=Resources(cpu=4, memory="16Gi", gpu=1, accelerator="nvidia-t4"))
def train(table: Input[Dataset], region: str, model: Output[Model]) -> float:
    """Fit a logistic regression on one region's rows; write the model, return the test AUC."""
    rows = _read(table, region)
    cut = len(rows) * 3 // 4
    fit, test = rows[:cut], rows[cut:]
    n = len(FEATURES)
    mean = [sum(x[k] for x, _ in fit) / len(fit) for k in range(n)]
    std = [math.sqrt(sum((x[k] - mean[k]) ** 2 for x, _ in fit) / len(fit)) or 1.0 for k in range(n)]
    data = [([(x[k] - mean[k]) / std[k] for k in range(n)], y) for x, y in fit]
    weights, bias, rate = [0.0] * n, 0.0, 0.5
    for _ in range(150):  # full-batch gradient descent
        grad, grad_b = [0.0] * n, 0.0
        for x, y in data:
            err = _sigmoid(bias + sum(w * v for w, v in zip(weights, x, strict=True))) - y
            grad_b += err
            for k in range(n):
                grad[k] += err * x[k]
        bias -= rate * grad_b / len(data)
        weights = [w - rate * g / len(data) for w, g in zip(weights, grad, strict=True)]

    def score(x: list[float]) -> float:
        return bias + sum(w * (v - m) / s for w, v, m, s in zip(weights, x, mean, std, strict=True))

    auc = round(auc_score([y for _, y in test], [score(x) for x, _ in test]), 4)
    Path(model).write_text(
        json.dumps(
            {
                "region": region,
                "features": FEATURES,
                "weights": weights,
                "bias": bias,
                "mean": mean,
                "std": std,
                "auc": auc,
                "n_train": len(fit),
            },
            indent=2,
            sort_keys=True,
        )
    )
    return auc


@step
def evaluate(aucs: list, regions: list, metrics: Output[Metrics]) -> None:
    """Report the regional models' test AUCs as metrics: the best (``auc``), the worst and
    one per region; the metadata names the best region."""
    if len(aucs) != len(regions) or not aucs:
        raise ValueError(f"{len(aucs)} AUCs for the {len(regions)} regions {regions}")
    log(
        metrics,
        auc=max(aucs),
        auc_min=min(aucs),
        **{f"auc_{r}": a for r, a in zip(regions, aucs, strict=True)},
    )
    best = max(range(len(aucs)), key=lambda i: aucs[i])
    annotate(metrics, best_region=regions[best], models=len(aucs))


@step
def register(models: list) -> None:
    """ "Register" the models: print one line per model (a real registry call goes here)."""
    for path in models:
        info = json.loads(Path(path).read_text())
        print(f"registered churn model for {info['region']}: auc={info['auc']} ({path})")


@step
def alert(best: float) -> None:
    """Tell someone that no model was good enough (or that registration was skipped)."""
    print(f"ALERT: best churn model AUC {best} did not qualify for registration")


@step
def notify(status: str) -> None:
    """The finally step: report how the run ended."""
    print(f"churn-training finished: {status}")
