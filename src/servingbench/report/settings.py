"""What a report shows: latency bound, baseline series, CDF concurrency.

Each field can be set as `SERVINGBENCH_REPORT_<FIELD>`.

CLI flags of `servingbench report` override these; the notebook builds one directly.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ReportSettings"]


class ReportSettings(BaseSettings):
    """Report options; every field can be set as `SERVINGBENCH_REPORT_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="SERVINGBENCH_REPORT_", extra="ignore")

    p99_bound_ms: float = Field(default=50.0, gt=0)
    """Bound for "max throughput sustained": a level counts when its p99 interval is within it
    and no repeat failed or erred."""

    min_effect: float = Field(default=0.05, ge=0)
    """Smallest relative change called a difference (with an interval that excludes none)."""

    baseline_series: str | None = None
    """Series the ratio tables divide by (`scenario` or `scenario@config`); default: the fastest
    series of the last backend in the registry (a stock server)."""

    cdf_level: float | None = Field(default=None, gt=0)
    """Load level of the per-request latency CDF; default: the highest one every series ran."""
