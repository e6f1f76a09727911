"""Building `meta.json` (`runs.meta.RunMeta`) for a sweep: at the start, as servers come up, at
the end. The notes say, in words, what rules the run's numbers follow."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from servingbench.environment import SERVER_LIBRARIES, git_commit, hardware_info, software_info
from servingbench.models.artifacts import load_metadata, model_version
from servingbench.paths import project_root
from servingbench.runs.calibration import CalibrationRecord
from servingbench.runs.meta import (
    ArtifactSummary,
    BackendRecord,
    Pinning,
    RunMeta,
    ServerRecord,
    SweepRecord,
)
from servingbench.servers import backends
from servingbench.stack.environments import environment_packages, environment_versions
from servingbench.sweep.servers import BenchServers
from servingbench.sweep.settings import BenchSettings

__all__ = [
    "NOTES",
    "artifact_summary",
    "backends_meta",
    "environments_meta",
    "initial_meta",
    "servers_meta",
]

NOTES = [
    "Latency percentiles come from per-request records (requests.npz), never from Locust's "
    "millisecond buckets. Latency counts the requests meant to start in the measured interval "
    "(end of warm-up to the stop), with their whole latency even when they end after the stop; "
    "throughput counts the requests completed in that interval. Requests still in flight after "
    "the stop's grace period are recorded as incomplete (their latency is a lower bound).",
    "Each point runs in windows until the last ones agree on req/s, p50 and p99 (or a cap is "
    "reached: the point is then flagged unstable); every point is repeated, and within each "
    "repeat and load level the order of the series is shuffled (seed in `sweep.seed`).",
    "Pinning: servers on `pinning.server` cores, Locust on `pinning.generator` cores (taskset), "
    "the sweep's own process on `pinning.harness`; CPU% is per process tree over the measured "
    "window, 100 = one core. Other processes' CPU on those cores is measured per point "
    "(`interference`).",
    "Fairness: every server loads the same artifact files (sha256 under `artifacts`) with the "
    "same library versions (checked per environment, see `environments`) and is pinned to the "
    "same core(s); every load request asks only for `predict_proba` (one model call per request "
    "on every backend; our /predict derives labels as its argmax); logging is off and no "
    "response is compressed. Metrics differ by design: each server keeps the metrics it "
    "ships with (a Prometheus middleware or interceptor costs something per request; our "
    "service counts plain integers and builds its metrics when scraped); a configuration "
    "that turns them off measures a server without them (see `servers` for what each ran).",
]


def _channel_note() -> str:
    """The gRPC channel policy the load generator will use (it reads the same environment)."""
    from servingbench.loadgen.settings import LoadSettings

    policy = LoadSettings().grpc_channel
    detail = {
        "per-user": "one channel, hence one TCP connection, per Locust user (like REST)",
        "shared": "one channel shared by all users of a Locust process",
    }[policy]
    return f"gRPC channel policy `{policy}`: {detail} (SERVINGBENCH_LOAD_GRPC_CHANNEL)."


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def artifact_summary(model: str) -> ArtifactSummary:
    """Which artifact was served: hash, framework, accuracy, when and how it was trained."""
    meta = load_metadata(model)
    return ArtifactSummary(
        artifact_file=meta.artifact_file,
        sha256=meta.sha256,
        framework=meta.framework,
        description=meta.description,
        version=model_version(model),
        test_accuracy=meta.test_accuracy,
        seed=meta.seed,
        trained_at=meta.trained_at,
        n_features=meta.n_features,
        held_out_rows=len(meta.held_out.rows),
        library_versions=meta.library_versions,
        source=meta.source,
        inputs=meta.inputs,
    )


def servers_meta(servers: BenchServers) -> dict[str, ServerRecord]:
    doc: dict[str, ServerRecord] = {}
    for key, spec in servers.specs.items():
        backend, _, config_name = key.partition(":")
        running = servers.running.get(key)
        config = running.config if running else None
        doc[spec.name] = ServerRecord(
            backend=backend,
            server_config=config_name,
            key=key,
            description=config.description if config else "",
            overrides=config.overrides() if config else {},
            environment=spec.environment,
            argv=list(running.handle.argv) if running else list(spec.argv),
            env=spec.env,
            ports=spec.ports,
            cpus=list(running.handle.cpus) if running and running.handle.cpus else None,
            pid=running.handle.pid if running else None,
            startup_s=round(running.startup_s, 2) if running else None,
            log=running.handle.log_path if running else None,
            launch=spec.config,
            failure=servers.failures.get(key),
        )
    return doc


def environments_meta(servers: BenchServers) -> dict[str, dict[str, str]]:
    """Each backend environment's versions (only those whose servers started)."""
    names = {s.spec.environment for s in servers.running.values() if s.spec.environment}
    return {
        name: environment_versions(
            name, tuple(dict.fromkeys((*environment_packages(name), *SERVER_LIBRARIES)))
        )
        for name in sorted(names)
    }


def backends_meta() -> dict[str, BackendRecord]:
    """The registry as the report needs it, recorded with the run."""
    return {
        name: BackendRecord(
            title=backend.title,
            ours=backend.ours,
            scenarios=[e.scenario for e in backend.endpoints],
        )
        for name, backend in backends().items()
    }


def initial_meta(
    run_id: str,
    settings: BenchSettings,
    calibration: CalibrationRecord | None,
    harness_cpus: list[int] | None,
) -> RunMeta:
    server_cpus, generator_cpus = settings.pinning()
    return RunMeta(
        run_id=run_id,
        started_at=now(),
        argv=sys.argv,
        cwd=str(Path.cwd()),
        git=git_commit(str(project_root())),
        hardware=hardware_info(),
        software=software_info(),
        sweep=SweepRecord.model_validate(settings.model_dump(mode="json")),
        backends=backends_meta(),
        pinning=Pinning(
            server=server_cpus,
            generator=generator_cpus,
            harness=harness_cpus,
            generator_processes=max(1, settings.generator_workers + settings.remote_workers),
        ),
        order=(
            "repeat-major, then load level; within each, the series in an order shuffled with "
            f"seed {settings.seed}"
        ),
        artifacts={model: artifact_summary(model) for model in settings.models},
        calibration=calibration,
        notes=[*NOTES, _channel_note()],
    )
