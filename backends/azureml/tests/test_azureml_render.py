"""The YAML emitter writes what YAML reads back unchanged."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pipecast_azureml.render import dump, render_yaml

pytestmark = pytest.mark.azureml

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)
data = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(min_size=1), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1), data, max_size=5))
def test_round_trip(value):
    assert yaml.safe_load(dump(value)) == value
    assert yaml.safe_load(render_yaml(value, private=True)) == value


@pytest.mark.parametrize("text", ["yes", "No", "0.8", "2024-01-31", "-x", "a: b", "x #y", "<set image>", "~", "", " a",
                                  ".inf", "${{parent.inputs.x}}", "azureml:cpu", "it's \"q\"", "multi\nline"])  # fmt: skip
def test_tricky_strings(text):
    assert yaml.safe_load(dump({"k": text})) == {"k": text}
