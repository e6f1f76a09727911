"""The instrument's calibration: its arithmetic (curve, ceiling, added latency), how a run reads
a calibration back, and the no-op servers answering every wire format with decodable bytes."""

from __future__ import annotations

import argparse
import http.client
import inspect
import json
import re
import socket
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2

from servingbench.calibration import run as calibration_run
from servingbench.calibration.noop import (
    REQUEST_ID,
    _HttpConnection,
    _split,
    answers,
    http_answers,
    noop_spec,
)
from servingbench.calibration.reference import _raw_http_call, http_request_bytes, measure
from servingbench.calibration.run import (
    _ceiling,
    _curve_point,
    _line,
    calibration_path,
    highest_kept,
)
from servingbench.commands import calibrate
from servingbench.commands.bench import cli_overrides
from servingbench.commands.calibrate import CALIBRATION_SETTINGS
from servingbench.loadgen.payloads import Payload, build_payloads
from servingbench.loadgen.wrk import parse_wrk_output
from servingbench.runs.calibration import (
    LATEST,
    CalibrationRecord,
    CurvePoint,
    OpenLoopCeiling,
    ReferenceFigures,
    WireCalibration,
    calibration_dir,
    load_latest_calibration,
)
from servingbench.runs.point import PointKey, PointResult, ProcessUsage
from servingbench.runs.records import RequestRecords
from servingbench.runs.stats import MeasurePlan, summarize
from servingbench.sweep.measure import measure_fixed_point
from servingbench.sweep.settings import BenchSettings
from servingbench.wire import GRPC_METHOD, WIRE_FORMATS, WireName, mismatch
from tests.unit.calibration_record import calibration_record
from tests.unit.inprocess_noop import noop_server

MS = 1_000_000


def _curve(users: int, rps: float, cpu: float, added: float | None = 0.05) -> CurvePoint:
    return CurvePoint(
        users=users,
        rps=rps,
        rps_per_process=rps,
        generator_cpu_percent=cpu,
        busiest_process_percent=cpu,
        p50_ms=0.2,
        p99_ms=0.4,
        added_p50_ms=added,
    )


# --- the curve and its ceiling --------------------------------------------------------------


def test_ceiling_is_the_best_requests_per_core_on_the_curve() -> None:
    """req/s per core of generator CPU: 1000 req/s at 50 % is 2000 per core; 3000 at 100 %
    is 3000; a point with no measured CPU cannot give a figure."""
    curve = [_curve(1, 1000.0, 50.0), _curve(10, 3000.0, 100.0), _curve(50, 9999.0, 0.0)]
    assert _ceiling(curve) == pytest.approx(3000.0)
    assert _ceiling([_curve(1, 1000.0, 50.0)]) == pytest.approx(2000.0)
    assert _ceiling([]) is None
    assert _ceiling([_curve(1, 100.0, 0.0)]) is None


def _point(processes: int, cpu: tuple[float, ...], busiest: tuple[float, ...]) -> PointResult:
    """Records of 2 s at one request per ms, 0.5 ms each, after 1 s of warm-up."""
    start = np.arange(3000, dtype=np.int64) * MS
    records = RequestRecords(
        start,
        np.full(3000, MS // 2, dtype=np.int64),
        np.zeros(3000, dtype=np.int8),
        start.copy(),
        np.full(3000, -1, dtype=np.int64),
        from_ns=1000 * MS,
        to_ns=3000 * MS,
    )
    usage = [
        ProcessUsage(
            role="generator",
            name=f"locust-{i}",
            pids=[i],
            cpu_percent=c,
            cpu_seconds=c / 50,
            busiest_process_percent=b,
            rss_bytes=1,
        )
        for i, (c, b) in enumerate(zip(cpu, busiest, strict=True))
    ]
    usage.append(
        ProcessUsage(
            role="server",
            name="noop-http",
            pids=[9],
            cpu_percent=99.0,
            cpu_seconds=2,
            busiest_process_percent=99.0,
            rss_bytes=1,
        )
    )
    key = PointKey(
        scenario="noop-v2-json",
        backend="noop",
        wire="v2-json",
        server_config="noop",
        model="iris",
        rows_per_request=1,
        concurrency=4,
    )
    return PointResult(
        point_id=key.point_id(),
        key=key,
        host="http://127.0.0.1:1",
        started_at="",
        finished_at="",
        status="ok",
        plan=MeasurePlan(),
        timeout_s=1.0,
        summary=summarize(records),
        usage=usage,
        generator_processes=processes,
    )


def test_curve_point_sums_the_generator_and_subtracts_the_reference() -> None:
    """CPU is the generator processes' sum (never the server's), the busiest is the max,
    req/s per process divides by the sending processes, added latency is p50 minus the
    reference client's p50."""
    point = _point(processes=2, cpu=(40.0, 35.0), busiest=(40.0, 35.0))
    reference = ReferenceFigures(client="raw socket", rps=5000.0, p50_ms=0.2, p99_ms=0.3)
    entry = _curve_point(point, reference)
    assert entry is not None
    assert entry.users == 4
    assert entry.rps == pytest.approx(1000.0)
    assert entry.rps_per_process == pytest.approx(500.0)
    assert entry.generator_cpu_percent == pytest.approx(75.0)
    assert entry.busiest_process_percent == pytest.approx(40.0)
    assert entry.p50_ms == pytest.approx(0.5)
    assert entry.added_p50_ms == pytest.approx(0.3)
    without = _curve_point(point, None)
    assert without is not None
    assert without.added_p50_ms is None


def test_curve_point_of_a_failed_point_is_none() -> None:
    """A load that could not run leaves a gap in the curve, not a zero."""
    failed = _point(1, (10.0,), (10.0,)).model_copy(update={"summary": None, "status": "failed"})
    assert _curve_point(failed, None) is None


def test_progress_line_gives_ceiling_added_latency_and_open_loop() -> None:
    """The line `make calibrate` prints per wire format."""
    entry = WireCalibration(
        wire="v2-json",
        reference=ReferenceFigures(client="raw socket", rps=8000.0, p50_ms=0.1, p99_ms=0.2),
        external=ReferenceFigures(client="wrk", rps=9000.0, p50_ms=0.08, p99_ms=0.1),
        curve=[_curve(1, 900.0, 45.0, added=0.05), _curve(10, 4000.0, 100.0)],
        ceiling_rps_per_core=4000.0,
        open_loop=OpenLoopCeiling(rate=2000.0, achieved_rps=1990.0, lateness_p99_ms=0.3, dropped=0),
    )
    assert _line(entry) == (
        "v2-json       ceiling 4,000 req/s per core; at 1 user Locust adds +0.050 ms "
        "(reference p50 0.100 ms, wrk p50 0.080 ms); open loop on schedule up to 2,000 req/s "
        "(lateness p99 0.30 ms)"
    )
    bare = entry.model_copy(
        update={"external": None, "open_loop": None, "curve": [], "ceiling_rps_per_core": None}
    )
    assert _line(bare) == (
        "v2-json       ceiling n/a req/s per core; at 1 user Locust adds n/a "
        "(reference p50 0.100 ms); open loop: no rate kept its schedule"
    )
    assert _line(WireCalibration(wire="v2-grpc")) == "v2-grpc: no reference"


# --- a run reading a calibration back -------------------------------------------------------


def _curve_record() -> CalibrationRecord:
    """A curve as a real one looks: CPU climbs with users to saturation, where req/s
    plateaus while the added latency keeps climbing with the users queued in the generator."""
    return calibration_record(
        {
            "v2-json": WireCalibration(
                wire="v2-json",
                curve=[
                    _curve(50, 3000.0, 99, added=1.6),
                    _curve(1, 1000.0, 30, added=0.05),
                    _curve(2, 1800.0, 60, added=0.15),
                    _curve(5, 3000.0, 97, added=0.4),
                    _curve(10, 3050.0, 98, added=0.6),
                    _curve(20, 2900.0, 98, added=None),
                ],
            ),
            "v2-grpc": WireCalibration(wire="v2-grpc", curve=[_curve(1, 1.0, 1.0, added=None)]),
        }
    )


def test_added_latency_follows_the_generator_s_cpu_below_saturation() -> None:
    """Interpolated by the busiest process's CPU, whatever the users (a slow server's 50
    users keep the generator as idle as 1 user against a fast one); clamped at the ends;
    points without an added figure do not count; an uncalibrated wire gives None."""
    record = _curve_record()
    assert record.added_latency_ms("v2-json", 45.0, users=50) == pytest.approx(0.10)
    assert record.added_latency_ms("v2-json", 10.0, users=1) == pytest.approx(0.05)
    assert record.added_latency_ms("v2-json", 10.0, users=50) == pytest.approx(0.05)
    assert record.added_latency_ms("v2-json", 80.0, users=None) == pytest.approx(0.15)
    assert record.added_latency_ms("v2-grpc", 10.0, users=1) is None
    assert record.added_latency_ms("predict-json", 10.0, users=1) is None


def test_added_latency_at_saturation_follows_the_users() -> None:
    """At a saturated generator req/s says nothing (it plateaus, which the old lookup by req/s
    could not tell apart): the users queued in it do."""
    record = _curve_record()
    assert record.added_latency_ms("v2-json", 99.0, users=10) == pytest.approx(0.6)
    assert record.added_latency_ms("v2-json", 99.0, users=30) == pytest.approx(1.1)
    assert record.added_latency_ms("v2-json", 99.0, users=100) == pytest.approx(1.6)
    assert record.added_latency_ms("v2-json", 95.0, users=None) == pytest.approx(1.6)


def test_calibration_applies_only_to_the_same_request_bodies() -> None:
    """Other model or rows per request is other work for the generator: the reason says
    what was measured and how to calibrate for this run."""
    record = calibration_record({}, model="breast-cancer", rows=1)
    assert record.mismatch("breast-cancer", 1) is None
    reason = record.mismatch("breast-cancer", 8)
    assert reason == (
        "calibration cal-1 measured breast-cancer with 1 row(s) per request, this run sends "
        "breast-cancer with 8: its figures are not used (run `make calibrate` with the same "
        "--model and --rows)"
    )
    assert record.mismatch("iris", 1) is not None


def test_latest_calibration_round_trip(tmp_path: Path) -> None:
    """`latest.json` is read back as written; none, or one of another schema, is no
    calibration (the sweep then uses the CPU rule only)."""
    assert load_latest_calibration(tmp_path) is None
    record = calibration_record(
        {"v2-json": WireCalibration(wire="v2-json", curve=[_curve(1, 10.0, 5.0)])}
    )
    path = calibration_path(tmp_path)
    assert path == tmp_path / "calibration" / LATEST
    assert calibration_dir(tmp_path) == path.parent
    path.parent.mkdir(parents=True)
    record.write(path)
    assert load_latest_calibration(tmp_path) == record
    doc = json.loads(path.read_text())
    path.write_text(json.dumps(doc | {"schema_version": 2}))
    assert load_latest_calibration(tmp_path) is None


# --- no-op servers --------------------------------------------------------------------------


def _expected(p: Payload) -> tuple[np.ndarray, np.ndarray]:
    return p.labels, p.proba


@pytest.mark.parametrize("rows", [1, 3])
def test_noop_answers_decode_to_the_artifacts_predictions(trained_models: None, rows: int) -> None:
    """Every body the generator can send maps to the answer its validation expects."""
    for wire in WIRE_FORMATS:
        table = answers((wire,), "iris", rows)
        payloads = build_payloads(wire, "iris", rows)
        assert len(table) == len(payloads)
        for p in payloads:
            got = WIRE_FORMATS[wire].decode(table[p.body], rows)
            assert mismatch(got, _expected(p)) is None, wire


def test_noop_http_answers_are_complete_responses(trained_models: None) -> None:
    """Status line, JSON content type and an exact Content-Length (keep-alive framing)."""
    for reply in http_answers("iris", 1).values():
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"content-type: application/json" in head
        assert f"content-length: {len(body)}".encode() in head


def test_noop_spec_launches_the_module_on_its_port(tmp_path: Path) -> None:
    """HTTP is ready when it answers a GET; gRPC when its port accepts connections."""
    http = noop_spec("http", "127.0.0.1", 9100, "iris", 2, tmp_path)
    assert http.argv[1:4] == ["-m", "servingbench.calibration.noop", "http"]
    assert http.argv[4:] == [
        "--host",
        "127.0.0.1",
        "--port",
        "9100",
        "--model",
        "iris",
        "--rows",
        "2",
    ]
    assert (http.name, http.ready_urls, http.ports) == (
        "noop-http",
        ["http://127.0.0.1:9100/"],
        {"http": 9100},
    )
    grpc_spec = noop_spec("grpc", "127.0.0.1", 9101, "iris", 1, tmp_path)
    assert (grpc_spec.name, grpc_spec.ready_urls) == ("noop-grpc", ["tcp://127.0.0.1:9101"])


@pytest.mark.parametrize("wire", ["predict-json", "v2-json"])
def test_noop_http_server_answers_each_rest_wire(trained_models: None, wire: WireName) -> None:
    """Over a kept-alive connection every payload gets its real answer; an unknown body a
    400 with a JSON reason; a GET (readiness) a 200."""
    payloads = build_payloads(wire, "iris", 2)
    with noop_server("http", rows=2) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        for p in payloads:
            conn.request("POST", WIRE_FORMATS[wire].path("iris"), body=p.body)
            response = conn.getresponse()
            assert response.status == 200
            got = WIRE_FORMATS[wire].decode(response.read(), 2)
            assert mismatch(got, _expected(p)) is None
        conn.request("POST", "/predict", body=b'{"features": [[1, 2, 3, 4]]}')
        bad = conn.getresponse()
        assert (bad.status, json.loads(bad.read())) == (
            400,
            {"error": "not a body the load generator sends"},
        )
        conn.request("GET", "/")
        ready = conn.getresponse()
        assert (ready.status, ready.read()) == (200, b"{}")
        conn.close()


def test_noop_http_server_handles_pipelined_and_split_requests(trained_models: None) -> None:
    """Two requests in one segment get two answers; a body arriving in pieces is waited for."""
    p = build_payloads("v2-json", "iris", 1)[0]
    request = http_request_bytes("127.0.0.1", WIRE_FORMATS["v2-json"].path("iris"), p.body)
    expected = http_answers("iris", 1)[p.body]
    with noop_server("http") as port, socket.create_connection(("127.0.0.1", port), 5) as sock:
        sock.sendall(request + request)
        received = b""
        while len(received) < 2 * len(expected):
            received += sock.recv(65536)
        assert received == expected + expected
        sock.sendall(request[:-7])
        time.sleep(0.05)
        sock.sendall(request[-7:])
        received = b""
        while len(received) < len(expected):
            received += sock.recv(65536)
        assert received == expected


def test_noop_grpc_server_answers_like_mlserver(trained_models: None) -> None:
    """A grpcio client gets each payload's answer (with the fixed request id and the model's
    name); a message the generator never sends gets INVALID_ARGUMENT."""
    payloads = build_payloads("v2-grpc", "iris", 1)
    with noop_server("grpc") as port, grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(GRPC_METHOD)
        for p in payloads[:5]:
            reply = call(p.body, timeout=5)
            assert mismatch(WIRE_FORMATS["v2-grpc"].decode(reply, 1), _expected(p)) is None
            message = service_pb2.ModelInferResponse.FromString(reply)
            assert (message.model_name, message.id) == ("iris", REQUEST_ID)
        with pytest.raises(grpc.RpcError) as caught:
            call(b"\x0a\x03bad", timeout=5)
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "not a request the generator sends"


# --- the reference client -------------------------------------------------------------------


def test_reference_request_is_a_complete_keep_alive_post() -> None:
    """Built once, sent as is: the length must be the body's in bytes."""
    request = http_request_bytes("127.0.0.1:9000", "/v2/models/iris/infer", b'{"a":1}')
    assert request == (
        b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: 127.0.0.1:9000\r\n"
        b'Content-Type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}'
    )


def test_reference_client_against_the_noop_server(trained_models: None) -> None:
    """The raw-socket client reads whole answers by Content-Length, back to back, and
    `measure` reports its rate and percentiles."""
    p = build_payloads("v2-json", "iris", 1)[0]
    with noop_server("http") as port:
        where = f"127.0.0.1:{port}"
        call = _raw_http_call(where, http_request_bytes(where, "/v2/models/iris/infer", p.body))
        body = call()
        assert mismatch(WIRE_FORMATS["v2-json"].decode(body, 1), _expected(p)) is None
        figures = measure(call, seconds=0.2, warmup_s=0.05)
    assert set(figures) == {"rps", "p50_ms", "p99_ms"}
    assert figures["rps"] > 100
    assert 0 < figures["p50_ms"] <= figures["p99_ms"] < 100


def test_reference_client_refuses_an_error_answer(trained_models: None) -> None:
    """A 400 must not be timed as if it were an answer."""
    with noop_server("http") as port:
        where = f"127.0.0.1:{port}"
        call = _raw_http_call(where, http_request_bytes(where, "/predict", b"{}"))
        with pytest.raises(RuntimeError, match=r"unexpected answer: b'HTTP/1\.1 400"):
            call()


def test_wrk_output_is_read_in_milliseconds() -> None:
    """wrk prints each percentile in its own unit; the figures are converted to ms."""
    output = (
        "  Latency Distribution\n     50%   68.00us\n     75%   80.00us\n"
        "     90%    1.20ms\n     99%    1.50ms\nRequests/sec:  14237.51\n"
    )
    figures = parse_wrk_output(output)
    assert figures is not None
    assert figures == pytest.approx({"rps": 14237.51, "p50_ms": 0.068, "p99_ms": 1.5})
    assert parse_wrk_output("Requests/sec:  14237.51\n") is None  # no p50: not a report


def test_the_open_loop_ceiling_is_bisected_not_a_power_of_two() -> None:
    """A process that keeps up to 1,300 req/s: doubling alone stops at 1,000 and would flag a
    point at 1,100 as client-bound; bisection ends within 10 % below the true ceiling."""
    probed: list[float] = []

    def kept(rate: float) -> float | None:
        probed.append(rate)
        return rate if rate <= 1300 else None

    found = highest_kept(kept)
    assert found is not None
    assert 1300 / 1.1 <= found <= 1300
    assert probed[:3] == [500, 1000, 2000]
    assert highest_kept(lambda rate: None) is None
    assert highest_kept(lambda rate: rate, limit=4000) == 4000  # never failed: the limit


class _Writes:
    """A transport that keeps each `write` apart, as the socket's segments would be."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)


def test_noop_http_answers_in_two_writes_like_uvicorn(trained_models: None) -> None:
    """uvicorn writes the head, then the body (strace of the real service: `write(…, 173)`
    then `write(…, 124)` per /predict); the no-op server frames its answers the same way, so
    calibration prices the client's second read."""
    table = http_answers("iris", 1)
    body, response = next(iter(table.items()))
    connection = _HttpConnection({b: _split(r) for b, r in table.items()})
    transport = _Writes()
    connection.connection_made(transport)  # type: ignore[arg-type]
    request = b"POST /predict HTTP/1.1\r\ncontent-length: %d\r\n\r\n" % len(body) + body
    connection.data_received(request)
    head, _, rest = response.partition(b"\r\n\r\n")
    assert transport.writes == [head + b"\r\n\r\n", rest]


# --- the command's flags ----------------------------------------------------------------------


def test_calibrate_offers_the_flags_of_the_settings_it_reads_and_no_other() -> None:
    """Every `settings.<field>` the calibration code reads has its flag; a bench-only flag
    (`--slo`) is refused instead of silently ignored."""
    sources = [
        Path(calibration_run.__file__).read_text(),
        inspect.getsource(measure_fixed_point),
    ]
    read = {name for text in sources for name in re.findall(r"settings\.(\w+)", text)}
    read = (read - {"pinning"}) | {"server_cpus", "generator_cpus"}  # pinning() reads these two
    assert read <= set(CALIBRATION_SETTINGS), read - set(CALIBRATION_SETTINGS)
    assert set(CALIBRATION_SETTINGS) <= set(BenchSettings.model_fields)
    parser = argparse.ArgumentParser(prog="calibrate")
    calibrate.add_arguments(parser)
    args = parser.parse_args(["--models", "iris", "--generator-cpus", "1"])
    assert cli_overrides(args) == {"models": "iris", "generator_cpus": "1"}
    with pytest.raises(SystemExit):
        parser.parse_args(["--slo", "p99<=50ms"])
