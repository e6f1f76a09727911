"""Deployed targets: addresses read strictly, and every problem reported before any load, with
what to fix (checks that need no real server: nothing listening, or the wrong protocol)."""

from __future__ import annotations

import time

import pytest

from servingbench.servers import get_backend, get_scenario, scenarios
from servingbench.stack.processes import free_port
from servingbench.sweep.targets import (
    Target,
    TargetError,
    check_targets,
    compose_targets,
    parse_targets,
)
from tests.unit.inprocess_noop import noop_server


def test_targets_are_read_with_their_wire_and_transport() -> None:
    """REST needs a URL; gRPC takes host:port or a grpc(s):// URL; TLS follows the scheme."""
    targets = parse_targets(
        {
            "mlserver-rest": "https://models.example:8443/",
            "mlserver-grpc": "10.0.0.5:8081",
            "kserve-grpc": "grpcs://models.example:443",
        },
        {"mlserver-rest": "http://models.example:8082/metrics"},
    )
    assert targets == [
        Target(
            get_scenario("mlserver-rest"),
            "https://models.example:8443",
            "http://models.example:8082/metrics",
        ),
        Target(get_scenario("mlserver-grpc"), "10.0.0.5:8081"),
        Target(get_scenario("kserve-grpc"), "grpcs://models.example:443"),
    ]
    rest, grpc, grpcs = targets
    assert (rest.wire, rest.grpc, rest.tls, rest.host_port) == (
        "v2-json",
        False,
        True,
        "models.example:8443",
    )
    assert (grpc.wire, grpc.grpc, grpc.tls, grpc.host_port) == (
        "v2-grpc",
        True,
        False,
        "10.0.0.5:8081",
    )
    assert (grpcs.tls, grpcs.host_port) == (True, "models.example:443")


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ({"nope": "http://h:1"}, "unknown scenario 'nope'; known: "),
        (
            {"mlserver-rest": "10.0.0.5:8080"},
            "mlserver-rest=10.0.0.5:8080: use http://host:port or https://host:port",
        ),
        (
            {"mlserver-grpc": "http://10.0.0.5:8081"},
            "use grpc://host:port or grpcs://host:port (or host:port)",
        ),
        ({"fastapi-rest": "ftp://h:21"}, "fastapi-rest=ftp://h:21: use http://host:port"),
    ],
)
def test_bad_target_says_how_to_write_it(targets: dict[str, str], message: str) -> None:
    """The message quotes the bad entry and the accepted forms."""
    with pytest.raises(TargetError, match=r"^bad --target: ") as caught:
        parse_targets(targets)
    assert message in str(caught.value)


def test_every_bad_target_is_reported_at_once() -> None:
    """One run of the command shows all the problems, not one per attempt."""
    with pytest.raises(TargetError) as caught:
        parse_targets({"nope": "http://h:1", "mlserver-rest": "h:1", "kserve-rest": "http://h:2"})
    text = str(caught.value)
    assert "unknown scenario 'nope'" in text
    assert "mlserver-rest=h:1" in text
    assert "kserve-rest=" not in text  # a good entry is not a problem


@pytest.mark.parametrize(
    ("scenario", "address", "example"),
    [
        ("mlserver-rest", "http://127.0.0.1", "http://127.0.0.1:8080"),
        ("mlserver-rest", "http://127.0.0.1:", "http://127.0.0.1:8080"),
        ("fastapi-rest", "http://h:99999", "http://h:8000"),
        ("mlserver-grpc", "grpc://10.0.0.5", "grpc://10.0.0.5:8081"),
        ("mlserver-grpc", "10.0.0.5", "10.0.0.5:8081"),
    ],
)
def test_target_without_a_port_is_refused_with_how_to_write_it(
    scenario: str, address: str, example: str
) -> None:
    """No default port is guessed (80/443 are rarely a model server's, gRPC has none): an
    address without a usable port is refused before any load, and the message shows it
    written with the backend's usual port, instead of a bare `int()` error from the checks."""
    with pytest.raises(TargetError) as caught:
        parse_targets({scenario: address})
    assert str(caught.value) == (
        f"bad --target: {scenario}={address}: the address needs a port (1-65535), e.g. {example}"
    )


def test_compose_names_every_scenario_at_its_default_port() -> None:
    """`--target compose` is the docker compose stack: each backend's default ports."""
    found = compose_targets("10.1.2.3")
    assert set(found) == set(scenarios())
    assert found["mlserver-rest"] == f"http://10.1.2.3:{get_backend('mlserver').ports['http']}"
    assert found["mlserver-grpc"] == f"10.1.2.3:{get_backend('mlserver').ports['grpc']}"
    assert found["fastapi-rest"] == "http://10.1.2.3:8000"
    assert [t.name for t in parse_targets(found)] == list(found)  # its own output is valid


def test_unreachable_targets_are_reported_quickly_and_together() -> None:
    """Nothing listening on a loopback port: a TargetError within a couple of seconds naming
    each unreachable target, and no load (nor parity) is attempted."""
    rest_port, grpc_port = free_port(), free_port()
    targets = parse_targets(
        {"mlserver-rest": f"http://127.0.0.1:{rest_port}", "kserve-grpc": f"127.0.0.1:{grpc_port}"}
    )
    started = time.monotonic()
    with pytest.raises(TargetError) as caught:
        check_targets(targets, ["iris"])
    assert time.monotonic() - started < 3.0
    assert str(caught.value) == (
        "targets not usable, nothing was sent:\n"
        f"  mlserver-rest: cannot reach 127.0.0.1:{rest_port}\n"
        f"  kserve-grpc: cannot reach 127.0.0.1:{grpc_port}"
    )


def test_rest_target_on_a_grpc_port_names_the_protocol_mix_up(trained_models: None) -> None:
    """HTTP/1.1 sent to an HTTP/2 (gRPC) port: the message points at the port's protocol."""
    with noop_server("grpc") as port:
        targets = parse_targets({"fastapi-v2-rest": f"http://127.0.0.1:{port}"})
        with pytest.raises(TargetError) as caught:
            check_targets(targets, ["iris"])
    text = str(caught.value)
    assert f"fastapi-v2-rest at http://127.0.0.1:{port}: no HTTP/1.1 answer" in text
    assert "another protocol's port (gRPC)?" in text
