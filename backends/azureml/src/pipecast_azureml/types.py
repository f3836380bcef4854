"""pipecast types → Azure ML input/output types, and the value encodings both sides agree on.

Input/output types: https://learn.microsoft.com/azure/machine-learning/reference-yaml-core-syntax

| pipecast type                         | Azure ML type | how the value travels                   |
|---------------------------------------|---------------|-----------------------------------------|
| ``str``                               | ``string``    | raw text                                |
| ``int``                               | ``integer``   | the number                              |
| ``float``                             | ``number``    | the number                              |
| ``bool``                              | ``boolean``   | ``True``/``False`` (the runtime parses) |
| ``list``, ``dict``, collected params  | ``string``    | JSON text                               |
| ``Dataset``/``Model``/``Metrics``/``Artifact`` | ``uri_folder`` | a mounted folder (a file artifact sits in it next to a marker) |
| collected artifacts (``list[Model]``) | ``mltable``   | what ``parallel_for`` aggregates         |

``parallel_for`` aggregates each body output: primitive outputs become a ``string`` (a JSON
list), ``uri_folder`` outputs become ``mltable`` (``ParallelFor.OUT_TYPE_MAPPING``).
"""

from __future__ import annotations

from pipecast.ir import values
from pipecast.passes.analysis import ANY, element_type, is_artifact_type
from pipecast.runtime.conventions.azureml import encode_text, item_text  # the runtime parses what we write

__all__ = ["PRIMITIVE", "azure_type", "item_text", "param_input_value"]

PRIMITIVE = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}


def azure_type(type_name: str) -> str:
    """The Azure ML type of a pipecast (static) type."""
    if type_name in PRIMITIVE:
        return PRIMITIVE[type_name]
    if values.is_artifact(type_name):
        return "uri_folder"
    if element_type(type_name) is not None and type_name not in ("list", ANY) and is_artifact_type(type_name):
        return "mltable"
    return "string"


def param_input_value(type_name: str, value: object) -> object:
    """A pipeline-level input value: plain scalars; lists and dicts as JSON text.

    Azure ML reads ``${{...}}``/``$[[...]]`` in a literal value as its own expression, so JSON
    text escapes ``$`` (``\\u0024``, the same JSON) and a string that holds one is encoded
    (:func:`~pipecast.runtime.conventions.azureml.encode_text`; the runtime decodes it).
    """
    import json

    if type_name in ("list", "dict") or (type_name == ANY and isinstance(value, list | dict)):
        return json.dumps(value, sort_keys=True, separators=(", ", ": ")).replace("$", "\\u0024")
    if isinstance(value, str):
        return encode_text(value)
    return value
