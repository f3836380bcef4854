"""The sweep example written with the pipecast Python DSL (the twin of pipeline.yaml)."""

from typing import Annotated

from sweep.steps import discard, fit, keep, make_data, pick_best

from pipecast.dsl import Param, for_each, pipeline, when


@pipeline(
    name="poly-sweep",
    description="Sweep learning rate and polynomial degree; keep good cells, pick the best.",
    defaults={"image": "python:3.11-slim", "timeout": "2m", "resources": {"cpu": 1, "memory": "512Mi"}},
)
def poly_sweep(
    seed: int = 7,
    learning_rates: list = Param([0.03, 0.3, 1.5], description="1.5 diverges on purpose"),
    depths: list = Param([1, 3]),
    min_score: Annotated[float, "R² a cell needs to be kept"] = 0.8,
):
    data = make_data(seed=seed)

    by_lr = for_each(learning_rates, as_="lr", parallelism=2, name="by_lr")
    with by_lr as lr:
        by_depth = for_each(depths, as_="depth", name="by_depth")
        with by_depth as depth:
            cell = fit(train=data.outputs.train, test=data.outputs.test, lr=lr, depth=depth)
            score, config = cell.outputs.score, cell.outputs.config

            verdict = when(score >= min_score, name="verdict")
            with verdict:
                verdict.outputs(note=keep(config=config, score=score).output)
            with verdict.otherwise():
                verdict.outputs(note=discard(config=config, score=score).output)

            by_depth.outputs(scores=score, configs=config, notes=verdict.outputs.note)
        by_lr.outputs(
            scores=by_depth.outputs.scores, configs=by_depth.outputs.configs, notes=by_depth.outputs.notes
        )

    best = pick_best(
        scores=by_lr.outputs.scores, configs=by_lr.outputs.configs, notes=by_lr.outputs.notes, name="best"
    )
    return {"best_score": best.outputs.score, "best_config": best.outputs.config}
