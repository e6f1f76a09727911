"""`meta.json`: everything needed to trust, reproduce and compare a run.

Written at the start of a run and rewritten (atomically) as it goes: status `running` ->
`complete` | `interrupted` | `failed`. The report reads it with these same models.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from servingbench.runs.calibration import CalibrationRecord
from servingbench.runs.machine import GitInfo, Hardware, Software
from servingbench.runs.schema import Record, Versioned
from servingbench.runs.stats import Stability

__all__ = [
    "ArtifactSummary",
    "BackendRecord",
    "CapacityRecord",
    "ModelCost",
    "ParityCheck",
    "ParityRecord",
    "Pinning",
    "RunMeta",
    "RunStatus",
    "ServerRecord",
    "SweepRecord",
    "TargetRecord",
]

RunStatus = Literal["running", "complete", "interrupted", "failed"]


class Pinning(Record):
    server: list[int] | None
    generator: list[int] | None
    harness: list[int] | None = Field(
        default=None, description="cores the sweep's own process was kept on"
    )
    generator_processes: int = 1


class ArtifactSummary(Record):
    """Which artifact was served: hash, framework, accuracy, when and how it was trained."""

    artifact_file: str
    sha256: str
    framework: str
    description: str
    version: str | None
    test_accuracy: float | None
    seed: int
    trained_at: str
    n_features: int
    held_out_rows: int
    library_versions: dict[str, str]
    source: str | None = None
    """The file a user's model was added from; None for a catalog model."""
    inputs: str = "held-out split of the training data"
    """Where the rows the load sends came from (a user's file, or seeded synthetic rows)."""


class BackendRecord(Record):
    """What the report needs to know of a backend, recorded so that a run reads the same
    whatever backends the checkout that reads it has."""

    title: str = Field(description="how reports name it, e.g. `MLServer`")
    ours: bool = Field(default=False, description="this project's own service")
    scenarios: list[str] = Field(
        default_factory=list, description="its scenarios, in the order reports list them"
    )


class ServerRecord(Record):
    """One server the sweep started (or tried to)."""

    backend: str
    server_config: str
    key: str
    description: str = ""
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="what the configuration table set"
    )
    environment: str | None = Field(default=None, description="backends/<environment>/.venv")
    argv: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    ports: dict[str, int] = Field(default_factory=dict)
    cpus: list[int] | None = None
    pid: int | None = None
    startup_s: float | None = None
    log: str | None = None
    launch: dict[str, Any] = Field(
        default_factory=dict, description="what the launch rendered or chose"
    )
    failure: str | None = None


class TargetRecord(Record):
    """A server the sweep did not start (`--target`), and what it says about itself."""

    scenario: str
    address: str
    metrics_url: str | None = None
    server: dict[str, Any] = Field(default_factory=dict, description="e.g. V2 `GET /v2`")
    models: dict[str, Any] = Field(default_factory=dict, description="V2 model metadata")


class ParityCheck(Record):
    endpoint: str
    model: str
    rows: int
    label_mismatches: int
    max_abs_dp: float
    atol: float
    passed: bool
    error: str | None


class ParityRecord(Record):
    status: Literal["passed", "FAILED", "skipped"]
    checks: list[ParityCheck] = Field(default_factory=list)


class CapacityRecord(Record):
    """The SLO search's answer for one series (the probes are ordinary points of the run)."""

    series: str
    capacity: float | None = Field(description="highest arrival rate that met the SLO")
    limit: float | None = Field(description="lowest rate above it that did not")
    probes: list[tuple[float, bool, str]] = Field(
        default_factory=list, description="(rate, met, why) in the order probed"
    )

    @classmethod
    def of(cls, series: str, search: Any) -> CapacityRecord:
        return cls(
            series=series,
            capacity=search.passing,
            limit=search.failing,
            probes=[(p.rate, p.met, p.why) for p in search.probes],
        )


class ModelCost(Record):
    """The model's own time per request, in-process on the server's core (`models.cost`)."""

    model: str
    rows_per_request: int
    p50_ms: float
    mean_ms: float
    calls: int


class SweepRecord(Record):
    """The sweep's settings as the run used them. What reports and gates read is typed here; the
    other settings are kept verbatim beside it (`BenchSettings` declares them), so a report reads
    every figure it needs from the run folder, never from today's defaults."""

    model_config = ConfigDict(extra="allow", ser_json_inf_nan="constants")

    method: str = Field(description="interleaved | points: how each comparison was measured")
    warmup_s: float
    window_s: float
    max_duration_s: float
    timeout_s: float
    stability: Stability
    generator_workers: int = 0
    seed: int
    slo: str | None = Field(default=None, description="open loop: the SLO the capacity meets")
    fail_if: str | None = Field(default=None, description="the objective gate (`--fail-if`)")
    fail_on_flags: list[str] = Field(default_factory=list, description="the flag gate")

    def measuring(self) -> dict[str, object]:
        """The settings that change how a point is measured but not its work: `compare` warns
        when two runs differ in them, and does not refuse to match their points."""
        return {
            "warmup_s": self.warmup_s,
            "window_s": self.window_s,
            "max_duration_s": self.max_duration_s,
            "timeout_s": self.timeout_s,
            "generator_workers": self.generator_workers,
            "stability": self.stability.model_dump(),
        }


class RunMeta(Versioned):
    run_id: str
    status: RunStatus = "running"
    started_at: str
    finished_at: str | None = None
    argv: list[str]
    cwd: str
    git: GitInfo
    hardware: Hardware
    software: Software
    environments: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="each backend environment's versions of the packages that matter",
    )
    sweep: SweepRecord
    backends: dict[str, BackendRecord] = Field(
        default_factory=dict,
        description="every registered backend when the run started, in the order reports list "
        "them: titles, which one is ours, their scenarios",
    )
    pinning: Pinning
    order: str
    artifacts: dict[str, ArtifactSummary]
    calibration: CalibrationRecord | None = None
    servers: dict[str, ServerRecord] = Field(default_factory=dict)
    targets: dict[str, TargetRecord] = Field(
        default_factory=dict,
        description="servers the sweep did not start; their CPU and memory are not measured",
    )
    parity: ParityRecord | None = None
    model_costs: list[ModelCost] = Field(
        default_factory=list, description="each model and batch size's in-process time"
    )
    capacity: list[CapacityRecord] = Field(
        default_factory=list, description="open loop with an SLO: each series' search"
    )
    points: list[str] = Field(default_factory=list)
    failed_points: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
