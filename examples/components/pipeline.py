"""The DSL twin of pipeline.yaml: the same component files, called like steps (SPEC §16)."""

from shop.steps import load_orders

from pipecast.dsl import component, pipeline

clean = component("components/clean.yaml")
train = component("components/train.yaml")
score = component("components/score.yaml")


@pipeline(
    name="components-scoring",
    description="Load, clean, train and score orders, built from the component library (components/).",
)
def scoring(rows: int = 120):
    orders = load_orders(rows=rows, name="load")
    cleaned = clean(raw=orders.outputs.table, min_amount=20)
    model = train(table=cleaned.outputs.table)
    scored = score(model=model.outputs.model, table=cleaned.outputs.table)
    return {"scored": scored.outputs.count}


pipeline = scoring
