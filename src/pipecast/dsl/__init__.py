"""The pipecast Python DSL: decorators and context managers that build the pipeline IR.

::

    from pipecast.dsl import Dataset, Input, Model, Output, for_each, pipeline, step, when

    @step(output="rows")
    def ingest(uri: str, table: Output[Dataset]) -> int: ...

    @pipeline(name="churn-training")
    def churn(data_uri: str = "s3://example/churn.csv", min_auc: float = 0.8):
        ing = ingest(uri=data_uri)
        ...

``load_python_pipeline(path)`` imports such a file and returns ``(Pipeline, SourceMap)``;
see docs/dsl.md.
"""

from pipecast.dsl.components import ComponentStep, component
from pipecast.dsl.groups import ForEach, When, for_each, otherwise, when
from pipecast.dsl.loading import load_python_pipeline
from pipecast.dsl.pipelines import PipelineDef, finally_, pipeline
from pipecast.dsl.refs import PIPELINE, Cond, Value, pipeline_status
from pipecast.dsl.steps import (
    IN,
    OUT,
    ContainerStep,
    StepFunction,
    StepHandle,
    container_step,
    import_artifact,
    step,
)
from pipecast.dsl.types import Artifact, Dataset, Input, Metrics, Model, Output, Param
from pipecast.ir.models import Defaults, Resources, Retry, Schedule

__all__ = [
    "IN",
    "OUT",
    "PIPELINE",
    "Artifact",
    "ComponentStep",
    "Cond",
    "ContainerStep",
    "Dataset",
    "Defaults",
    "ForEach",
    "Input",
    "Metrics",
    "Model",
    "Output",
    "Param",
    "PipelineDef",
    "Resources",
    "Retry",
    "Schedule",
    "StepFunction",
    "StepHandle",
    "Value",
    "When",
    "component",
    "container_step",
    "finally_",
    "for_each",
    "import_artifact",
    "load_python_pipeline",
    "otherwise",
    "pipeline",
    "pipeline_status",
    "step",
    "when",
]
