"""`axdnn run`: run an experiment file's steps in order, one JSON record per step under the run
folder, each cached by a hash of its inputs (settings, upstream steps, user files, code) so a
rerun after an edit or a kill runs only what changed or did not finish.

Layout of a run folder (what `axdnn.report` reads):
  experiment.json        name, file, seed, axdnn version, machine, step order, start/finish
  steps/<name>.json      {name, kind, config, inputs_hash, seconds, record}
  steps/<name>/          the step's own files (checkpoints, campaign store, plots)
  report.html
Records are written to a temporary file and renamed into place, so a kill never leaves a
half-written one; a step without its record simply runs again (a campaign resumes from its store).
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import axdnn
from axdnn.errors import ConfigError
from axdnn.experiment import steps as _steps  # noqa: F401  (registers the step kinds)
from axdnn.experiment.schema import (
    ExperimentHeader,
    load_experiment,
    reference,
    resolve_path,
)
from axdnn.experiment.steps import CheckpointStep, StepContext
from axdnn.runtime import trusting

Progress = Callable[[str], None]


@functools.cache
def code_version() -> str:
    """axdnn's version and a hash of its source files: any code change invalidates the cache."""
    digest = hashlib.sha256(axdnn.__version__.encode())
    root = Path(axdnn.__file__).parent
    for path in sorted(root.rglob("*")):
        if path.suffix in {".py", ".c", ".h", ".yaml"} and path.is_file():
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return f"{axdnn.__version__}+{digest.hexdigest()[:16]}"


def machine() -> dict:
    import torch

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
    }


def write_json_atomic(path: Path, record: dict) -> None:
    """Write JSON so that `path` holds either the old content or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as f:
        json.dump(record, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _default_checkpoint(step, earlier: list, header) -> str:
    trains = [s for s in earlier if s.kind == "train"]
    if trains:
        return f"${{{trains[-1].step_name}.checkpoint}}"
    if header.checkpoint is not None:
        return header.checkpoint
    raise ConfigError(
        f"step {step.step_name!r} needs a checkpoint: give it `checkpoint:`, put a train step "
        "before it, or set `checkpoint:` at the top of the file"
    )


def _resolve(step, earlier, header, file, *, done: dict[str, dict]):
    """(step with references replaced by values, its inputs for hashing)."""
    if isinstance(step, CheckpointStep) and step.checkpoint is None and step.wants_checkpoint():
        step = step.model_copy(update={"checkpoint": _default_checkpoint(step, earlier, header)})
    inputs = {"kind": step.kind, "config": step.model_dump(), "code": code_version()}
    shared = set(ExperimentHeader.model_fields) - {"name", "description"}
    inputs["experiment"] = header.model_dump(include=shared)
    updates, upstream, files = {}, {}, {}
    for field, value in step:
        target = reference(value)
        if target is not None:
            name, output = target
            updates[field] = done[name]["record"][output]
            upstream[name] = done[name]["inputs_hash"]
        elif field in step.PATHS and value is not None:
            for item in value if isinstance(value, list) else [value]:
                files[item] = _file_digest(resolve_path(file, item))
    inputs.update(upstream=upstream, files=files)
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode())
    return step.model_copy(update=updates), digest.hexdigest()


def _cached(path: Path, inputs_hash: str, step) -> dict | None:
    """The stored record when its inputs are the same and the files it offers still exist."""
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if stored.get("inputs_hash") != inputs_hash:
        return None
    offered = [stored["record"].get(key) for key in step.OUTPUTS if key == "checkpoint"]
    return stored if all(isinstance(p, str) and Path(p).exists() for p in offered) else None


def _run_step(step, inputs_hash, experiment, file, *, out_dir: Path, progress: bool) -> dict:
    step_dir = out_dir / "steps" / step.step_name
    step_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    record = step.run(StepContext(experiment, file, step_dir, progress))
    stored = {
        "name": step.step_name,
        "kind": step.kind,
        "config": step.model_dump(),
        "inputs_hash": inputs_hash,
        "seconds": time.perf_counter() - start,
        "record": record,
    }
    stored = json.loads(json.dumps(stored, default=str))  # plain JSON, as a rerun reads it
    write_json_atomic(out_dir / "steps" / f"{step.step_name}.json", stored)
    return stored


def run_experiment(
    file: Path,
    out_dir: Path,
    *,
    progress: bool = True,
    say: Progress = print,
    report: bool = True,
    device: str | None = None,
) -> dict:
    """Run (or resume) an experiment; returns {out, steps: [{name, kind, ran, seconds}], report}."""
    file = Path(file)
    experiment = load_experiment(file)
    if device is not None:  # the command line's --device wins over the file's
        experiment = experiment.model_copy(update={"device": device})
    out_dir = Path(out_dir).resolve()  # records name files absolutely: references stay valid
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"run folder {str(out_dir)!r} exists and is not a folder; pick --out")
    meta = {
        "name": experiment.name,
        "description": experiment.description,
        "file": str(file.resolve()),
        "seed": experiment.seed,
        "axdnn_version": axdnn.__version__,
        "code_version": code_version(),
        "machine": machine(),
        "steps": [{"name": s.step_name, "kind": s.kind} for s in experiment.steps],
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "finished": None,
    }
    write_json_atomic(out_dir / "experiment.json", meta)
    named = [experiment.model, *(getattr(s, "model", None) for s in experiment.steps)]
    with trusting(models=[m for m in named if m]):  # models the file names are the user's
        summary, done = _run_steps(experiment, file, out_dir, progress=progress, say=say)
    meta["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    write_json_atomic(out_dir / "experiment.json", meta)
    result = {"out": str(out_dir), "steps": summary, "report": None}
    if report:
        from axdnn.report import build_report

        result["report"] = str(build_report(out_dir))
    return result


def _run_steps(experiment, file: Path, out_dir: Path, *, progress: bool, say: Progress):
    done: dict[str, dict] = {}
    summary = []
    total = len(experiment.steps)
    for index, step in enumerate(experiment.steps, 1):
        earlier = experiment.steps[: index - 1]
        resolved, inputs_hash = _resolve(step, earlier, experiment, file, done=done)
        tag = f"[{index}/{total}] {step.step_name} ({step.kind})"
        stored = _cached(out_dir / "steps" / f"{step.step_name}.json", inputs_hash, step)
        ran = stored is None
        if ran:
            say(f"{tag} ...")
            stored = _run_step(
                resolved, inputs_hash, experiment, file, out_dir=out_dir, progress=progress
            )
        say(f"{tag} {'done' if ran else 'cached'}, {stored['seconds']:.1f} s")
        done[step.step_name] = stored
        summary.append(
            {"name": step.step_name, "kind": step.kind, "ran": ran, "seconds": stored["seconds"]}
        )
    return summary, done


def render_run(result: dict) -> str:
    """The run's steps (ran or cached, seconds) and where its records and report are."""
    lines = [f"{'step':<20}{'kind':<14}{'':<8}{'seconds':>8}"]
    for s in result["steps"]:
        state = "ran" if s["ran"] else "cached"
        lines.append(f"{s['name']:<20}{s['kind']:<14}{state:<8}{s['seconds']:>8.1f}")
    lines.append(f"records: {result['out']}")
    if result.get("report"):
        lines.append(f"report: {result['report']}")
    return "\n".join(lines)


def step_records(out_dir: Path) -> dict[str, dict]:
    """{step name: record} of a run folder's finished steps, in run order."""
    meta = json.loads((Path(out_dir) / "experiment.json").read_text())
    records = {}
    for step in meta["steps"]:
        path = Path(out_dir) / "steps" / f"{step['name']}.json"
        if path.is_file():
            records[step["name"]] = json.loads(path.read_text())["record"]
    return records
