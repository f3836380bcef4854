"""How attempts start: for real (the shared step runtime's warm executor pool, one thread
per running attempt) or in a dry run (virtual time, outputs made from types or mocks)."""

from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pipecast.ir import values as irvalues
from pipecast.passes.analysis import PipelineIndex, StepNode
from pipecast.simulator.engine import AttemptOutcome, Engine, Inst
from pipecast.simulator.values import Art, to_local


def safe_key(key: str) -> str:
    """A run key as a file name: ``train[1]`` → ``train.1``."""
    return key.replace("][", ".").replace("[", ".").replace("]", "")


def _engine_problem(engine: str) -> str | None:
    """Why a container engine cannot run containers now (``None``: it can). Installed is
    not enough: ``docker`` without a reachable daemon fails every step with exit code 125."""
    if shutil.which(engine) is None:
        return f"{engine!r} is not installed or not on PATH"
    try:
        res = subprocess.run([engine, "info"], capture_output=True, text=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"'{engine} info' failed: {exc}"
    if res.returncode != 0:
        lines = [ln.strip() for ln in (res.stderr or res.stdout).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "error" in ln.lower() or "cannot" in ln.lower()), None)
        return f"{engine!r} is installed but cannot run containers: " + (
            detail or (lines[-1] if lines else f"'{engine} info' exited with {res.returncode}")
        )
    return None


def detect_containers(requested: str | None, needed: bool, file: str | None = None) -> str:
    """The container mode: the one asked for, else a working docker/podman.

    Engines are only probed when the pipeline has container steps.

    Raises:
        UserError: container steps exist and no engine can run them (offers ``host``).
    """
    from pipecast.diagnostics import Diagnostic, UserError

    host_hint = (
        "or pass --containers host to run the container commands on this machine (the image is ignored)"
    )
    if requested:
        if requested not in ("docker", "podman", "host"):
            raise UserError(Diagnostic(f"--containers {requested}: use docker, podman or host", file=file))
        if requested != "host" and needed:
            problem = _engine_problem(requested)
            if problem is not None:
                raise UserError(
                    Diagnostic(
                        f"--containers {requested}: {problem}",
                        hint=f"fix that, {host_hint}",
                        code="no-container-engine",
                        file=file,
                    )
                )
        return requested
    if not needed:
        return "host"
    problems = []
    for engine in ("docker", "podman"):
        if shutil.which(engine) is None:
            continue
        problem = _engine_problem(engine)
        if problem is None:
            return engine
        problems.append(problem)
    if problems:
        raise UserError(
            Diagnostic(
                "this pipeline has container steps, but no container engine can run them: "
                + "; ".join(problems),
                hint=f"start the engine (e.g. the docker daemon), {host_hint}",
                code="no-container-engine",
                file=file,
            )
        )
    raise UserError(
        Diagnostic(
            "this pipeline has container steps, but neither docker nor podman is installed",
            hint=f"install docker or podman, {host_hint}",
            code="no-container-engine",
            file=file,
        )
    )


class RealLauncher:
    """Runs attempts with :class:`pipecast.runtime.executor.ExecutorPool` in worker threads."""

    def __init__(
        self,
        index: PipelineIndex,
        run_folder: Path,
        python_path: list[str],
        max_parallel: int,
        containers: str,
        secret_values: dict[str, str],
    ) -> None:
        from pipecast.runtime.executor import ExecutorPool

        self.index = index
        self.folder = run_folder
        self.pool = ExecutorPool(size=max_parallel, python_path=python_path, containers=containers)  # type: ignore[arg-type]
        self.threads = ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="pipecast-step")
        self.secret_values = secret_values
        from pipecast.simulator.secrets import Masker

        # Logs: only secrets long enough to mask inside text (short ones would mangle them).
        self.mask = Masker(secret_values.values()).long
        self._specs: dict[int, Any] = {}
        (run_folder / "logs").mkdir(parents=True, exist_ok=True)

    def spec(self, node: StepNode) -> Any:
        spec = self._specs.get(id(node))
        if spec is None:
            from pipecast.runtime.spec import step_spec

            spec = self._specs[id(node)] = step_spec(self.index, node)
        return spec

    def __call__(self, engine: Engine, inst: Inst, attempt: int) -> None:
        if engine.injected(inst, attempt):
            engine.clock.post(
                (
                    "done",
                    inst,
                    attempt,
                    AttemptOutcome(False, error=f"injected failure (--fail), attempt {attempt}"),
                )
            )
            return
        node = inst.node
        eff = engine.effective(node)
        key = safe_key(inst.key)
        log = self.folder / "logs" / f"{key}.{attempt}.log"
        inst.extra.setdefault("logs", []).append(str(log.relative_to(self.folder)))
        artifacts = {
            name: self.folder / "artifacts" / key / name
            for name, t in node.task.outputs.items()
            if irvalues.is_artifact(t)
        }
        env = dict(eff.env)
        for var, secret in eff.secrets.items():
            env[var] = self.secret_values[secret]
        inputs = {name: to_local(v) for name, v in (inst.inputs or {}).items()}
        self.threads.submit(
            self._run,
            engine,
            inst,
            attempt,
            inputs,
            self.folder / "steps" / key,
            log,
            env,
            eff.timeout,
            artifacts,
        )

    def _run(
        self,
        engine: Engine,
        inst: Inst,
        attempt: int,
        inputs: dict[str, Any],
        workdir: Path,
        log: Path,
        env: dict[str, str],
        timeout: float | None,
        artifacts: dict[str, Path],
    ) -> None:
        try:
            r = self.pool.run_attempt(
                self.spec(inst.node),
                inputs,
                workdir,
                timeout=timeout,
                log_path=log,
                env=env,
                output_paths=artifacts,
                mask=self.mask,
            )
            outcome = AttemptOutcome(r.ok, r.outputs, r.error, r.timed_out)
        except Exception as exc:  # an executor bug must fail the step, not hang the run
            outcome = AttemptOutcome(False, error=f"internal error running the step: {exc!r}")
        engine.clock.post(("done", inst, attempt, outcome))

    def close(self) -> None:
        self.threads.shutdown(wait=True)
        self.pool.close()


_DEFAULTS: dict[str, Any] = {"int": 0, "float": 0.0, "bool": False, "list": [], "dict": {}}


class VirtualLauncher:
    """Dry-run attempts: each takes ``duration`` virtual seconds (``--mock``, default 1 s)."""

    def __init__(self, index: PipelineIndex, mock: dict[str, Any], run_folder: Path) -> None:
        self.index = index
        self.mock = mock
        self.folder = run_folder

    def __call__(self, engine: Engine, inst: Inst, attempt: int) -> None:
        m = self.mock.get(inst.key) or self.mock.get(inst.node.name) or {}
        duration = irvalues.parse_duration(m.get("duration", 1.0))
        timeout = engine.retry_timeout(inst.node)[1]
        fail = m.get("fail", 0)
        fails = fail is True or (isinstance(fail, int) and not isinstance(fail, bool) and attempt <= fail)
        if engine.injected(inst, attempt) or fails:
            outcome = AttemptOutcome(False, error=f"injected failure, attempt {attempt}")
        elif timeout is not None and duration > timeout:
            duration = timeout
            outcome = AttemptOutcome(False, error=f"timed out after {timeout:g}s", timed_out=True)
        else:
            outcome = AttemptOutcome(True, self._outputs(inst, m.get("outputs") or {}))
        engine.clock.at(engine.clock.now() + duration, ("done", inst, attempt, outcome))

    def _outputs(self, inst: Inst, given: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, type_name in inst.node.task.outputs.items():
            if irvalues.is_artifact(type_name):
                out[name] = str(self.folder / "artifacts" / safe_key(inst.key) / name)
            elif name in given:
                out[name] = given[name]
            elif type_name == "str":
                out[name] = f"{inst.key}.{name}"
            else:
                out[name] = _DEFAULTS[type_name]
        return out

    def close(self) -> None:
        pass


__all__ = ["Art", "RealLauncher", "VirtualLauncher", "detect_containers", "os", "safe_key"]
