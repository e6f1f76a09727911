"""Open loop keeps its schedule against the real servers, REST and gRPC.

The sweep starts our service and MLServer itself (pinned apart from the generator, as `make
bench` does) and offers 200 and 800 arrivals a second to each. The generator's own event loop
may not block the schedule (metrics scrapes, window evaluation, record shipping and garbage
collection all run off the sending loop): while it did, the 99th percentile of send lateness
was 3.8 to 6 ms on a quiet machine.

A 3-second point on a shared 2-core machine can still catch one scheduler hiccup (CI saw a p99
of 1.2 ms once), so the test holds what does not depend on luck: every point stays clear of the
old blocking (p99 below `BLOCKED_P99_MS`, the median well under a millisecond), and a point whose
p99 exceeds the harness's 1 ms bound carries `generator-late` with the figure, so the report
never shows a late schedule as on time. On a machine busy with other work the point must say so
(`contended`, with the share the others took) instead. A server slower than the rate drops
arrivals (every slot busy): that is its capacity, not the generator's schedule, so drops are
allowed here; lateness is of the arrivals sent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from servingbench.sweep import runner
from servingbench.sweep.flags import Thresholds
from servingbench.sweep.runner import run_sweep
from servingbench.sweep.settings import load_settings

pytestmark = pytest.mark.integration

BLOCKED_P99_MS = 3.0
"""Below the 3.8 ms p99 the blocking loop showed at its best."""
ON_TIME_P50_MS = 0.5
RATES = [200.0, 800.0]
SCENARIOS = ["fastapi-rest", "mlserver-grpc"]


@pytest.fixture(autouse=True)
def _no_model_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-process model-cost step measures nothing this test looks at."""
    monkeypatch.setattr(runner, "_model_costs", lambda settings, progress: [])


@pytest.mark.timeout(300)
def test_open_loop_arrivals_leave_on_time_against_the_real_servers(
    trained_models: None, tmp_path: Path
) -> None:
    settings = load_settings(
        overrides={
            "scenarios": SCENARIOS,
            "models": ["breast-cancer"],
            "load": "open",
            "rates": RATES,
            "method": "points",
            "repeats": 1,
            "warmup_s": 1.0,
            "window_s": 1.0,
            "max_duration_s": 3.0,
            "results_dir": tmp_path,
            "run_id": "schedule",
        }
    )
    result = run_sweep(settings, progress=print)

    measured = {(p.key.scenario, p.key.rate): p for p in result.points}
    assert len(measured) == len(SCENARIOS) * len(RATES), sorted(measured)
    for (series, offered), point in sorted(measured.items()):
        assert offered is not None
        rate = offered
        assert point.status == "ok", (series, rate, point.failure_reason)
        summary = point.summary
        assert summary is not None
        assert summary.ok >= 0.9 * rate, (series, rate, summary)
        assert "errors" not in point.flags, (series, point.flag_reasons)
        if "contended" in point.flags:
            # another process took the cores: the flag, with its share, is the guarantee
            assert point.flag_reasons["contended"], point.flag_reasons
            continue
        late = (series, rate, summary.lateness_p50_ms, summary.lateness_p99_ms)
        assert summary.lateness_p50_ms <= ON_TIME_P50_MS, late
        assert summary.lateness_p99_ms < BLOCKED_P99_MS, late
        over_bound = summary.lateness_p99_ms > Thresholds().lateness_ms
        assert ("generator-late" in point.flags) == over_bound, (late, point.flag_reasons)
        if over_bound:
            assert f"{summary.lateness_p99_ms:.2f} ms" in point.flag_reasons["generator-late"]
