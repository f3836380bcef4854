"""The step image Dockerfile (templates/step-image/Dockerfile.j2)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipecast.diagnostics import UserError
from pipecast.runtime.image import render_dockerfile, render_for_file

PIPELINE = """\
pipecast: 1
name: img-test
defaults: {image: "registry.example.com/ml/base:1.2"}
steps:
  a: {run: {python: "mod:f"}}
"""


def test_render_for_a_pipeline_with_requirements(tmp_path):
    (tmp_path / "p.yaml").write_text(PIPELINE)
    (tmp_path / "requirements.txt").write_text("numpy\n")
    text = render_for_file(tmp_path / "p.yaml", pipecast_spec="pipecast==9.9", extra_requirements=["boto3"])
    lines = text.splitlines()
    assert "FROM registry.example.com/ml/base:1.2" in lines
    assert 'RUN ["python", "-m", "pip", "install", "pipecast==9.9", "boto3"]' in lines
    assert "COPY requirements.txt /app/requirements.txt" in lines
    assert "COPY . /app" in lines and "PIPECAST_PYTHON_PATH=/app" in text
    assert text == render_for_file(
        tmp_path / "p.yaml", pipecast_spec="pipecast==9.9", extra_requirements=["boto3"]
    )


def test_no_requirements_and_default_base(tmp_path):
    (tmp_path / "p.yaml").write_text(
        PIPELINE.replace('defaults: {image: "registry.example.com/ml/base:1.2"}\n', "")
    )
    text = render_for_file(tmp_path / "p.yaml")
    assert "FROM python:3.11-slim" in text and "requirements.txt" not in text
    assert '"pipecast==' in text or '"pipecast"' in text


def test_values_cannot_inject_instructions():
    with pytest.raises(UserError, match="not a container image reference"):
        render_dockerfile(pipeline="p", base_image="python\nRUN rm -rf /", has_requirements=False)
    text = render_dockerfile(
        pipeline="p", base_image="python:3", has_requirements=False, pipecast_spec='pipecast"] && evil ["'
    )
    assert '"pipecast\\"] && evil [\\""' in text  # stays one JSON string inside the exec form


def test_cli_writes_the_file(tmp_path):
    (tmp_path / "p.yaml").write_text(PIPELINE)
    out = tmp_path / "Dockerfile"
    p = subprocess.run(
        [sys.executable, "-m", "pipecast.runtime", "image", str(tmp_path / "p.yaml"), "-o", str(out)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert out.read_text().startswith('# Step image for pipeline "img-test"')
