"""Turn what a target's local executor reports into a SPEC §12 run record.

Executors report tasks only (kfp.local's trace, Airflow task instances); the expectations
also name groups and steps that never started. :func:`complete` adds those entries from the
pipeline's own structure, the same way for every target, so :func:`catalogue.compare` sees
one shape. It is the product's own (``pipecast verify`` completes records the same way).
"""

from __future__ import annotations

from pipecast.verify.records import base_name, complete, restore_inlined_groups

__all__ = ["base_name", "complete", "restore_inlined_groups"]
