"""Open loop keeps its schedule against the real servers, REST and gRPC.

The sweep starts our service and MLServer itself (pinned apart from the generator, as `make
bench` does) and offers 200 and 800 arrivals a second to each. Every arrival must leave within
a millisecond of its intended time at the 99th percentile: the generator's own event loop may
not block it (metrics scrapes, window evaluation, record shipping, garbage collection all run
off the sending loop). On a machine busy with other work the schedule cannot be kept, and then
the point must say so (`contended`, with the share the others took) instead of passing. A
server slower than the rate drops arrivals (every slot busy): that is its capacity, not the
generator's schedule, so drops are allowed here; lateness is of the arrivals sent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from servingbench.sweep import runner
from servingbench.sweep.runner import run_sweep
from servingbench.sweep.settings import load_settings

pytestmark = pytest.mark.integration

LATENESS_P99_MS = 1.0
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
        assert summary.lateness_p99_ms <= LATENESS_P99_MS, late
        assert "generator-late" not in point.flags, point.flag_reasons
