"""The SPEC §1 churn pipeline written with the pipecast Python DSL.

It builds exactly the same IR as pipeline.yaml next to it (a test checks this):

    pipecast validate examples/churn/pipeline.py
    pipecast export examples/churn/pipeline.py -o /tmp/churn.yaml
"""

from typing import Annotated

from churn.steps import alert, evaluate, ingest, notify, register, train

from pipecast.dsl import (
    PIPELINE,
    Dataset,
    Param,
    finally_,
    for_each,
    otherwise,
    pipeline,
    when,
)


@pipeline(
    name="churn-training",
    description="Train, evaluate and conditionally register a churn model.",
    schedule={"cron": "0 2 * * *", "timezone": "UTC"},
    defaults={
        "image": "python:3.11-slim",
        "retry": {"attempts": 3, "delay": "10s", "backoff": 2.0, "max_delay": "5m", "jitter": True},
        "timeout": "1h",
        "resources": {"cpu": 1, "memory": "2Gi"},
    },
)
def churn_training(
    data_uri: Dataset = "https://example.blob.core.windows.net/churn/customers.csv",
    min_auc: float = 0.8,
    regions: list = Param(["eu", "us"]),
    dry: Annotated[bool, "skip registration"] = False,
):
    ingested = ingest(base=data_uri)

    per_region = for_each(regions, as_="region", parallelism=2, name="per_region")
    with per_region as region:
        trained = train(table=ingested.outputs.table, region=region)
        per_region.outputs(aucs=trained.outputs.auc, models=trained.outputs.model)

    auc = evaluate(aucs=per_region.outputs.aucs, regions=regions).outputs.metrics.auc

    with when((auc >= min_auc) & ~dry, name="publish"):
        register(models=per_region.outputs.models)
    with otherwise():
        alert(best=auc)

    finally_(notify, status=PIPELINE.status)
