"""Step code of the churn example (SPEC §1): ``churn.steps:ingest`` and friends."""
