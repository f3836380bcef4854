"""Step code of the viz-demo pipeline (standard library only)."""

import time


def prep(n: int, data: str) -> list:
    with open(data, "w") as fh:
        fh.write("x\n" + "\n".join(str(i) for i in range(n)) + "\n")
    print(f"prepared {n} items")
    return list(range(n))


def work(x: int, data: str) -> int:
    time.sleep(0.05)
    print(f"work on {x} with {data}")
    return x * 2


def notify(status: str) -> None:
    print(f"pipeline {status}")
