"""DSL twin of the sub-pipeline and component conformance cases (SPEC §16-§17)."""

from pipecast.dsl import Retry, component, for_each, pipeline, step

plus = component("plus.yaml")


def add(a: int, b: int) -> int:
    """The plus component's function."""
    return a + b


@step
def double(x: int) -> int:
    return 2 * x


@step
def total(values: list) -> float:
    return float(sum(values))


@pipeline(name="prep")
def prep(x: int, offset: int = 100):
    clean = double(x=x, name="clean")
    shift = plus(a=clean.output, b=offset, name="shift")
    return {"value": shift.outputs.output}


@pipeline(name="dsl-subpipeline")
def main(xs: list = [1, 2, 3]):  # noqa: B006 - a parameter default, never mutated
    first = prep(x=5, name="first")
    slow = plus.options(retry=Retry(attempts=3))
    bumped = slow(a=first.outputs.value, name="bumped")
    each = for_each(xs, as_="x", name="each")
    with each as x:
        inner = prep(x=x, offset=0)
        each.outputs(values=inner.outputs.value)
    done = total(values=each.outputs.values)
    return {"bumped": bumped.outputs.output, "total": done.output}


pipeline = main
