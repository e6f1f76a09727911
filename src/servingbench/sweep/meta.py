"""`meta.json`: everything needed to trust, reproduce and compare a run, written at start and end.

Status goes `running` -> `complete` | `interrupted` | `failed`; the file is rewritten atomically
each time, so a reader sees either the old or the new version.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

from servingbench.artifacts import load_metadata, model_version
from servingbench.atomic import atomic_write_json
from servingbench.environment import git_commit, hardware_info, software_info
from servingbench.paths import project_root
from servingbench.sweep.servers import BenchServers
from servingbench.sweep.settings import BenchSettings

__all__ = ["NOTES", "artifact_summary", "initial_meta", "servers_meta", "write_meta"]

NOTES = [
    "Closed-loop load: each Locust user waits for its answer before sending again, so latency "
    "at high concurrency includes queueing and throughput is what the server sustains; this "
    "is not an open-loop (fixed arrival rate) measurement.",
    "Latency percentiles come from per-request records (requests.npz), never from Locust's "
    "millisecond buckets; warm-up requests are excluded; Locust's req/s is kept for reference.",
    "Pinning: servers on `pinning.server` cores, Locust on `pinning.generator` cores (taskset); "
    "CPU% is per process tree over the measured window, 100 = one core.",
    "Every server (one per configuration) stays up for the whole sweep and points are "
    "interleaved level by level (every series at 1 user, then at 2, ...), so slow drift of the "
    "shared machine spreads over all of them; an idle server's CPU is recorded in each point's "
    "usage.",
    "Fairness: every server loads the same artifact files (sha256 under `artifacts`) and is "
    "pinned to the same core(s); every load test asks only for `predict_proba` (one model call "
    "per request on every backend; our /predict derives labels as its argmax); logging is off "
    "(MLServer debug=false, uvicorn access log off) and no response is compressed (MLServer "
    "gzip_enabled=false, our service has no compression). Metrics differ by design: MLServer "
    "(with its default metrics_endpoint) runs a Prometheus middleware on REST and an "
    "interceptor on gRPC for every request, our service counts plain integers per request "
    "and builds its metrics when /metrics is scraped; `mlserver:no-metrics` measures MLServer "
    "without them. What differs between servers is listed per server under `servers` "
    "(`config_overrides`, `config.settings`).",
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


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def artifact_summary(model: str) -> dict[str, Any]:
    """Which artifact was served: hash, framework, accuracy, when and how it was trained."""
    try:
        meta = load_metadata(model)
    except FileNotFoundError as exc:
        return {"error": str(exc)}
    return {
        "artifact_file": meta.artifact_file,
        "sha256": meta.sha256,
        "framework": meta.framework,
        "description": meta.description,
        "version": model_version(model),
        "test_accuracy": meta.test_accuracy,
        "seed": meta.seed,
        "trained_at": meta.trained_at,
        "n_features": meta.n_features,
        "held_out_rows": len(meta.held_out.rows),
        "library_versions": meta.library_versions,
    }


def servers_meta(servers: BenchServers) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for key, server in servers.running.items():
        doc[server.spec.name] = {
            "backend": server.config.backend,
            "server_config": server.config.name,
            "key": key,
            "description": server.config.description,
            "config_overrides": server.config.as_meta(),
            "argv": list(server.handle.argv),
            "env": server.spec.env,
            "ports": server.spec.ports,
            "cpus": list(server.handle.cpus) if server.handle.cpus else None,
            "pid": server.handle.pid,
            "startup_s": round(server.startup_s, 2),
            "log": server.handle.log_path,
            "config": server.spec.config,
        }
    for key, reason in servers.failures.items():
        doc.setdefault(key, {})["failure"] = reason
    return doc


def initial_meta(
    run_id: str, settings: BenchSettings, calibration: dict[str, Any] | None
) -> dict[str, Any]:
    server_cpus, generator_cpus = settings.pinning()
    return {
        "run_id": run_id,
        "status": "running",
        "started_at": _now(),
        "finished_at": None,
        "argv": sys.argv,
        "cwd": str(Path.cwd()),
        "git": git_commit(str(project_root())),
        "hardware": hardware_info(),
        "software": software_info(),
        "sweep": settings.model_dump(mode="json"),
        "pinning": {
            "server": server_cpus,
            "generator": generator_cpus,
            "generator_processes": settings.processes,
        },
        "order": "interleaved by concurrency level, scenarios in the given order",
        "artifacts": {settings.model: artifact_summary(settings.model)},
        "calibration": calibration,
        "servers": {},
        "parity": None,
        "points": [],
        "notes": [*NOTES, _channel_note()],
    }


def write_meta(path: Path, meta: dict[str, Any], **updates: Any) -> dict[str, Any]:
    meta.update(updates)
    if meta.get("status") != "running":
        meta["finished_at"] = _now()
    atomic_write_json(path, meta)
    return meta
