"""Steps of the sweep example: polynomial regression fitted by gradient descent.

A sweep cell fits ``y ≈ sin(3x)`` with a polynomial of degree ``depth`` using learning rate
``lr``; too large a rate diverges, which the pipeline's ``when`` turns into a "discarded"
note. Standard library only; each step runs in milliseconds.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import TypedDict

from pipecast.dsl import Dataset, Input, Output, step

EPOCHS = 300


class Split(TypedDict):
    train_rows: int
    test_rows: int


@step
def make_data(seed: int, train: Output[Dataset], test: Output[Dataset]) -> Split:
    """Write noisy samples of sin(3x) on [-1, 1] as two JSON files."""
    rng = random.Random(seed)
    points = [(x, math.sin(3 * x) + rng.gauss(0, 0.1)) for x in (rng.uniform(-1, 1) for _ in range(120))]
    Path(train).write_text(json.dumps(points[:90]))
    Path(test).write_text(json.dumps(points[90:]))
    return {"train_rows": 90, "test_rows": 30}


class Fit(TypedDict):
    score: float
    config: dict


@step
def fit(train: Input[Dataset], test: Input[Dataset], lr: float, depth: int) -> Fit:
    """Fit a degree-``depth`` polynomial with gradient descent; score is R² on the test set."""
    data = json.loads(Path(train).read_text())
    w = [0.0] * (depth + 1)
    for _ in range(EPOCHS):
        grad = [0.0] * len(w)
        for x, y in data:
            err = sum(c * x**k for k, c in enumerate(w)) - y
            for k in range(len(w)):
                grad[k] += 2 * err * x**k / len(data)
        w = [c - lr * g for c, g in zip(w, grad, strict=True)]
        if any(not math.isfinite(c) or abs(c) > 1e6 for c in w):
            break  # diverged: too large a learning rate for this degree
    held = json.loads(Path(test).read_text())
    mean = sum(y for _, y in held) / len(held)
    total = sum((y - mean) ** 2 for _, y in held)
    try:
        resid = sum((sum(c * x**k for k, c in enumerate(w)) - y) ** 2 for x, y in held)
        score = 1.0 - resid / total
    except OverflowError:
        score = -1.0
    score = round(max(score, -1.0) if math.isfinite(score) else -1.0, 4)
    return {"score": score, "config": {"lr": lr, "depth": depth}}


@step(output="line")
def keep(config: dict, score: float) -> str:
    """A good cell: describe it."""
    return f"kept lr={config['lr']} depth={config['depth']}: r2={score}"


@step(output="line")
def discard(config: dict, score: float) -> str:
    """A poor cell: say why it was dropped."""
    return f"discarded lr={config['lr']} depth={config['depth']}: r2={score}"


class Best(TypedDict):
    score: float
    config: dict


@step
def pick_best(scores: list, configs: list, notes: list) -> Best:
    """Flatten the nested sweep results (one list per learning rate) and take the best cell."""
    flat = [
        (s, c)
        for row_scores, row_configs in zip(scores, configs, strict=True)
        for s, c in zip(row_scores, row_configs, strict=True)
    ]
    for row in notes:
        for line in row:
            print(line)
    score, config = max(flat, key=lambda sc: sc[0])
    return {"score": score, "config": config}
