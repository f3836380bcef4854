"""Steps of the data-engineering example: two extracts, three joins, one report.

The data is generated from the run's ``day`` (no downloads) with the standard library.
Every step reads and writes small CSV files and takes milliseconds.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from collections import Counter, defaultdict
from pathlib import Path

from pipecast.dsl import Artifact, Dataset, Input, Output, step

SEGMENTS = ("retail", "smb", "enterprise")


def _rng(*parts: str) -> random.Random:
    return random.Random(int(hashlib.sha256("|".join(parts).encode()).hexdigest()[:16], 16))


def _write(path: str, header: tuple[str, ...], rows: list[tuple[object, ...]]) -> None:
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(header)
        out.writerows(rows)


def _read(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@step(output="rows")
def extract_orders(day: str, customers: int, orders: Output[Dataset]) -> int:
    """Source a: the day's orders."""
    rng = _rng("orders", day)
    rows = [
        (f"o{i:04d}", f"c{rng.randrange(customers):03d}", round(rng.uniform(5, 500), 2), rng.choice("ABC"))
        for i in range(400)
    ]
    _write(orders, ("order_id", "customer_id", "amount", "channel"), rows)
    return len(rows)


@step(output="rows")
def extract_customers(count: int, customers: Output[Dataset]) -> int:
    """Source b: the customer master data (a few ids have no orders, some orders no customer)."""
    rng = _rng("customers", str(count))
    rows = [(f"c{i:03d}", rng.choice(SEGMENTS), rng.choice(("eu", "us"))) for i in range(count - 5)]
    _write(customers, ("customer_id", "segment", "region"), rows)
    return len(rows)


@step(output="total")
def daily_revenue(orders: Input[Dataset], revenue: Output[Dataset]) -> float:
    """Join 1 (a): revenue per channel."""
    per_channel: dict[str, float] = defaultdict(float)
    for row in _read(orders):
        per_channel[row["channel"]] += float(row["amount"])
    _write(revenue, ("channel", "revenue"), [(k, round(v, 2)) for k, v in sorted(per_channel.items())])
    return round(sum(per_channel.values()), 2)


@step(output="unmatched")
def enrich(orders: Input[Dataset], customers: Input[Dataset], enriched: Output[Dataset]) -> int:
    """Join 2 (a, b): orders with their customer's segment and region."""
    known = {row["customer_id"]: row for row in _read(customers)}
    rows, unmatched = [], 0
    for row in _read(orders):
        cust = known.get(row["customer_id"])
        if cust is None:
            unmatched += 1
            continue
        rows.append((row["order_id"], row["customer_id"], row["amount"], cust["segment"], cust["region"]))
    _write(enriched, ("order_id", "customer_id", "amount", "segment", "region"), rows)
    return unmatched


@step(output="sizes")
def segment_sizes(customers: Input[Dataset]) -> dict:
    """Join 3 (b): how many customers each segment has."""
    return dict(sorted(Counter(row["segment"] for row in _read(customers)).items()))


@step(output="summary")
def report(
    revenue: Input[Dataset],
    enriched: Input[Dataset],
    total: float,
    unmatched: int,
    sizes: dict,
    out: Output[Artifact],
) -> str:
    """Combine the three joins into a JSON report; return a one-line summary."""
    by_segment: dict[str, float] = defaultdict(float)
    for row in _read(enriched):
        by_segment[row["segment"]] += float(row["amount"])
    doc = {
        "revenue_by_channel": {r["channel"]: float(r["revenue"]) for r in _read(revenue)},
        "revenue_by_segment": {k: round(v, 2) for k, v in sorted(by_segment.items())},
        "customers_by_segment": sizes,
        "total": total,
        "unmatched_orders": unmatched,
    }
    Path(out).write_text(json.dumps(doc, indent=2, sort_keys=True))
    return (
        f"total {total} over {len(doc['revenue_by_channel'])} channels; {unmatched} orders without customer"
    )


@step
def audit(orders_rows: int, customer_rows: int) -> None:
    """Record the extract sizes (an audit log line)."""
    print(f"audit: {orders_rows} orders, {customer_rows} customers")


@step
def notify(status: str, run_id: str) -> None:
    """The finally step."""
    print(f"dataeng run {run_id} finished: {status}")
