"""SLO text: what `--slo` accepts, what it refuses (and says), and when figures meet it."""

from __future__ import annotations

import math

import pytest

from servingbench.runs.slo import Slo, failed_share, parse_slo


def test_p99_and_errors() -> None:
    """The README's example: a latency bound in ms and an error share in percent."""
    slo = parse_slo("p99<=50ms,errors<=1%")
    assert slo.latency_ms == {"p99_ms": 50.0}
    assert slo.failed_share == pytest.approx(0.01)
    assert slo.text == "p99<=50ms,errors<=1%"
    assert slo.latency_bound_ms == 50.0


def test_every_percentile_seconds_spaces_and_a_trailing_comma() -> None:
    """p99.9 maps to the p999 column; seconds become ms; blanks and empty parts are fine."""
    slo = parse_slo(" p50 <= 5ms , p90<=10ms,p95<12ms,p99.9<=0.2s, ")
    assert slo.latency_ms == {"p50_ms": 5.0, "p90_ms": 10.0, "p95_ms": 12.0, "p999_ms": 200.0}
    assert slo.failed_share is None
    assert slo.latency_bound_ms == 5.0  # the tightest bound: what goodput counts against


def test_errors_only_has_no_latency_bound() -> None:
    """An error objective alone is valid; goodput then has no latency to count against."""
    slo = parse_slo("errors<=0.5%")
    assert slo.latency_ms == {}
    assert slo.failed_share == pytest.approx(0.005)
    assert slo.latency_bound_ms is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "needs at least one bound"),
        (" , ", "needs at least one bound"),
        ("p98<=5ms", "cannot read SLO bound 'p98<=5ms'"),
        ("p99>=50ms", "cannot read SLO bound"),
        ("latency<=5ms", "cannot read SLO bound"),
        ("p99<=fast", "cannot read SLO bound"),
        ("p99<=50", "needs a unit: ms or s"),
        ("p99<=50%", "needs a unit: ms or s"),
        ("errors<=1ms", "must be a percentage"),
    ],
)
def test_bad_inputs_say_what_is_accepted(text: str, message: str) -> None:
    """Each refusal names the bad part and shows what would have been read."""
    with pytest.raises(ValueError, match=message):
        parse_slo(text)


def test_a_malformed_number_is_refused_with_the_same_help() -> None:
    """`1.2.3` passes the pattern's `[\\d.]+`; it must still get the message that says what is
    accepted, not Python's bare "could not convert string to float"."""
    with pytest.raises(ValueError, match=r"cannot read SLO bound 'p99<=1\.2\.3ms'"):
        parse_slo("p99<=1.2.3ms")


def test_check_lists_every_broken_bound() -> None:
    """Met when every bound holds; otherwise each broken one, with value and bound."""
    slo = parse_slo("p50<=5ms,p99<=50ms,errors<=1%")
    good = {"p50_ms": 2.0, "p99_ms": 50.0, "requests": 1000, "errors": 10}
    assert slo.check(good) == []
    assert slo.met(good)
    bad = {"p50_ms": 6.0, "p99_ms": 75.5, "requests": 1000, "errors": 20}
    assert slo.check(bad) == ["p50 6.00 ms > 5 ms", "p99 75.50 ms > 50 ms", "failed 2.00 % > 1 %"]
    assert not slo.met(bad)


def test_nan_or_missing_figures_break_a_bound() -> None:
    """A percentile that could not be measured never passes for a met objective."""
    slo = parse_slo("p99<=50ms")
    assert not slo.met({"p99_ms": math.nan})
    assert not slo.met({})
    assert not parse_slo("errors<=1%").met({"requests": 0})


def test_failed_share_counts_errors_incomplete_and_dropped() -> None:
    """Dropped arrivals were never sent but were meant to be: they count, on both sides."""
    figures = {"requests": 90, "errors": 3, "incomplete": 2, "dropped": 10}
    assert failed_share(figures) == pytest.approx(15 / 100)
    assert math.isnan(failed_share({}))
    assert not parse_slo("errors<=10%").met(figures)
    assert parse_slo("errors<=15%").met(figures)


def test_slo_is_a_record() -> None:
    """It travels in meta.json's settings as text and is rebuilt the same."""
    slo = parse_slo("p99<=50ms")
    assert Slo.model_validate_json(slo.model_dump_json()) == slo


@pytest.mark.parametrize(
    ("text", "needed"),
    [("p99<=50ms", 459), ("p50<=5ms,p99.9<=1s", 4603), ("p50<=5ms", 7), ("errors<=1%", 0)],
)
def test_requests_needed_bound_the_tightest_percentile(text: str, needed: int) -> None:
    """The fewest requests n with 1 - q^n >= 99 %: below them no order statistic bounds q."""
    assert parse_slo(text).requests_needed() == needed
