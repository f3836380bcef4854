"""The shared YAML writer: whatever it writes, YAML reads back unchanged, in both styles."""

from __future__ import annotations

import math

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pipecast import yamltext

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
data = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(min_size=1), inner, max_size=4),
    max_leaves=20,
)
STYLES = [{}, {"plain_strings": True, "literal_blocks": True}]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(min_size=1), data, max_size=5))
def test_round_trip_in_both_styles(value: dict) -> None:
    for style in STYLES:
        assert yaml.safe_load(yamltext.dump(value, **style)) == value


@pytest.mark.parametrize(
    "text",
    ["yes", "No", "0.8", "2024-01-31", "-x", "a: b", "x #y", "~", "", " a", ".inf", "${{parent.inputs.x}}",
     "it's \"q\"", "multi\nline", "tab\there", "nel\x85x", "ls\u2028x", "del\x7f", "end:", "trail "],
)  # fmt: skip
def test_tricky_strings(text: str) -> None:
    for style in STYLES:
        assert yaml.safe_load(yamltext.dump({"k": text, text or "e": [text]}, **style)) == {
            "k": text,
            text or "e": [text],
        }


def test_floats_read_back_as_floats() -> None:
    value = {"a": 1e-05, "b": 1e20, "c": 0.5, "inf": math.inf, "ninf": -math.inf}
    back = yaml.safe_load(yamltext.dump(value))
    assert back == value and all(isinstance(v, float) for v in back.values())
    assert math.isnan(yaml.safe_load(yamltext.dump({"n": math.nan}))["n"])


def test_styles_and_comments() -> None:
    data = {"cmd": "echo a\necho b", "name": "job", "after__x": "${{parent.jobs.x.outputs.done}}"}
    # Vertex style: every string value quoted, simple keys plain.
    assert yamltext.dump(data) == (
        'after__x: "${{parent.jobs.x.outputs.done}}"\ncmd: "echo a\\necho b"\nname: "job"\n'
    )
    readable = yamltext.dump(
        data,
        plain_strings=True,
        literal_blocks=True,
        comment=lambda k, v: "  # note" if k == "after__x" else "",
        header=("# head",),
    )
    assert readable == (
        "# head\nafter__x: ${{parent.jobs.x.outputs.done}}  # note\ncmd: |-\n  echo a\n  echo b\nname: job\n"
    )
