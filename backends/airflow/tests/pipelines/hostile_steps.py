"""Step of the injection test: returns its inputs unchanged, as data."""


def echo(value, blob, fixed):
    return {"value": value, "blob": blob, "fixed": fixed}
