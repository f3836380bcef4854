"""Pictures of pipelines and runs: ``pipecast graph`` (Mermaid, DOT, HTML) and ``pipecast report``.

Renderers share one model (:mod:`pipecast.viz.model`) built from the pipeline's index.
"""
