"""Steps of the components example: an orders table, cleaned, a tiny model trained and used.

Standard library only (plus pipecast.dsl for ``load_orders``, which pipeline.py calls as a DSL
step); each step runs in milliseconds and is deterministic.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from pipecast.dsl import Dataset, Output, step


@step(output="count")
def load_orders(rows: int, table: Output[Dataset]) -> int:
    """Write ``rows`` synthetic orders (id, amount, returned) as CSV; return the row count."""
    with Path(table).open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "amount", "returned"])
        for i in range(rows):
            amount = round(5 + (i * 37 % 100) * 0.9, 2)
            out.writerow([i, amount, int((i * 7) % 10 < 3 and amount > 40)])
    return rows


def _read(path: str) -> list[dict[str, str]]:
    with Path(path).open(newline="") as fh:
        return list(csv.DictReader(fh))


def clean(raw: str, min_amount: float, table: str) -> int:
    """Keep the orders of at least ``min_amount``; return how many were kept."""
    kept = [r for r in _read(raw) if float(r["amount"]) >= min_amount]
    with Path(table).open("w", newline="") as fh:
        out = csv.DictWriter(fh, fieldnames=["id", "amount", "returned"])
        out.writeheader()
        out.writerows(kept)
    return len(kept)


def train(table: str, lr: float, epochs: int, model: str) -> float:
    """Fit a one-feature logistic model of ``returned`` on ``amount``; write it, return its AUC."""
    rows = [(float(r["amount"]) / 100, int(r["returned"])) for r in _read(table)]
    w = b = 0.0
    for _ in range(epochs):
        for x, y in rows:
            p = 1 / (1 + math.exp(-(w * x + b)))
            w -= lr * (p - y) * x
            b -= lr * (p - y)
    Path(model).write_text(json.dumps({"w": w, "b": b}))
    return round(_auc([(w * x + b, y) for x, y in rows]), 6)


def _auc(scored: list[tuple[float, int]]) -> float:
    pos = [s for s, y in scored if y]
    neg = [s for s, y in scored if not y]
    if not pos or not neg:
        return 0.5
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def score(model: str, table: str, scores: str) -> int:
    """Write the predicted return probability of every order; return how many were scored."""
    m = json.loads(Path(model).read_text())
    rows = _read(table)
    with Path(scores).open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "p_return"])
        for r in rows:
            out.writerow(
                [r["id"], round(1 / (1 + math.exp(-(m["w"] * float(r["amount"]) / 100 + m["b"]))), 4)]
            )
    return len(rows)


def best(aucs: list) -> float:
    """The best AUC of the sweep."""
    return max(aucs)
