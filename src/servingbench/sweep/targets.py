"""Servers the sweep did not start: deployed endpoints named by `--target scenario=address`.

A target is a scenario (hence a backend and a wire format) at an address: `http(s)://host:port`
for REST, `host:port` or `grpc(s)://host:port` for gRPC. Before any load is sent, each target is
checked: reachable, speaking the expected protocol (TLS or not), ready, serving the model with
the artifact's feature count, and giving the artifact's answers (parity). What the server says
about itself (`/v2`, model metadata) is recorded. Everything wrong is reported at once, with
what to fix. `--target compose` names every scenario at its backend's default port on this
machine: the `docker compose` stack (`make compose-up`), or `make serve-all`'s servers;
`--scenarios` picks among them.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from servingbench.addresses import parse_address
from servingbench.models.artifacts import load_metadata
from servingbench.parity import ParityEndpoint, run_parity
from servingbench.runs.meta import ParityRecord, TargetRecord
from servingbench.servers import Scenario, get_backend, get_scenario, scenarios
from servingbench.servers.base import address
from servingbench.stack.processes import tcp_open
from servingbench.wire import WIRE_FORMATS, WireError, WireName, get_wire

__all__ = ["COMPOSE", "Target", "TargetError", "check_targets", "compose_targets", "parse_targets"]

COMPOSE = "compose"


class TargetError(ValueError):
    """A target cannot be benchmarked; the message lists every problem found."""


@dataclass(frozen=True)
class Target:
    """A server the sweep does not start: a registered scenario (resolved once) at an address."""

    scenario: Scenario
    address: str
    metrics_url: str | None = None

    @property
    def name(self) -> str:
        return self.scenario.name

    @property
    def wire(self) -> WireName:
        return self.scenario.wire

    @property
    def grpc(self) -> bool:
        return WIRE_FORMATS[self.scenario.wire].transport == "grpc"

    @property
    def tls(self) -> bool:
        return parse_address(self.address).tls

    @property
    def host_port(self) -> str:
        return parse_address(self.address).netloc


def compose_targets(host: str = "127.0.0.1") -> dict[str, str]:
    """Every registered scenario at its backend's default port on `host`."""
    out = {}
    for name, scenario in scenarios().items():
        out[name] = address(scenario.wire, host, scenario.default_port)
    return out


def parse_targets(
    targets: Mapping[str, str], metrics: Mapping[str, str] | None = None
) -> list[Target]:
    """Targets by scenario; unknown scenarios and unreadable addresses are a TargetError."""
    problems, out = [], []
    for name, where in targets.items():
        try:
            scenario = get_scenario(name)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        grpc = WIRE_FORMATS[scenario.wire].transport == "grpc"
        parsed = parse_address(where)
        scheme = parsed.scheme or ("grpc" if grpc else "")
        allowed = ("grpc", "grpcs") if grpc else ("http", "https")
        if scheme not in allowed:
            problems.append(
                f"{name}={where}: use {' or '.join(f'{s}://host:port' for s in allowed)}"
                + (" (or host:port)" if grpc else "")
            )
            continue
        if parsed.port is None:
            # no default port is assumed: 80/443 are rarely where a model server listens, and
            # gRPC has none; a guess would only show up later as "cannot reach"
            example = f"{scheme}://" if "://" in where else ""
            example += (
                f"{parsed.host or 'host'}:{get_backend(scenario.backend).ports[scenario.port]}"
            )
            problems.append(f"{name}={where}: the address needs a port (1-65535), e.g. {example}")
            continue
        out.append(Target(scenario, where.rstrip("/"), (metrics or {}).get(name)))
    if problems:
        raise TargetError("bad --target: " + "; ".join(problems))
    return out


def _context(ca_bundle: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_bundle)


def _get_json(url: str, ca_bundle: str | None) -> Any:
    with urllib.request.urlopen(url, timeout=5, context=_context(ca_bundle)) as response:
        return json.loads(response.read() or b"null")


def _http_problem(target: Target, exc: Exception) -> str:
    text = str(getattr(exc, "reason", exc))
    if isinstance(exc, urllib.error.HTTPError):
        return f"{target.name} at {target.address}: HTTP {exc.code} ({text})"
    if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text:
        return f"{target.name} at {target.address}: not TLS; is it http:// ?"
    if isinstance(exc, ssl.SSLError) or "CERTIFICATE_VERIFY" in text:
        return f"{target.name} at {target.address}: TLS failed ({text}); pass --ca-bundle?"
    if isinstance(exc, http.client.HTTPException):
        return (
            f"{target.name} at {target.address}: no HTTP/1.1 answer ({type(exc).__name__}): "
            "is it https://, or another protocol's port (gRPC)?"
        )
    return f"{target.name} at {target.address}: {text}"


def _post(url: str, body: bytes, ca_bundle: str | None) -> bytes:
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=5, context=_context(ca_bundle)) as response:
        return bytes(response.read())


def _features(inputs: Any) -> int | None:
    """The feature count a V2 model declares (inputs[0].shape[-1]), if it declares one."""
    try:
        shape = inputs[0]["shape"]
        return int(shape[-1]) if int(shape[-1]) > 0 else None
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def _check_http(
    target: Target, models: list[str], ca: str | None
) -> tuple[TargetRecord, list[str]]:
    """What the wire format lets a server say about itself (V2: `/v2`, each model's metadata);
    where the format defines no such page (`predict-json`), one held-out row per model must
    get a well-formed answer (parity then checks them all)."""
    base = target.address
    wire = get_wire(target.wire)
    record = TargetRecord(scenario=target.name, address=base, metrics_url=target.metrics_url)
    problems: list[str] = []
    if wire.server_info is not None:
        record.server = _get_json(f"{base}{wire.server_info}", ca) or {}
    if wire.model_info is None:
        for model in models:
            row = load_metadata(model).held_out.rows[:1]
            body = _post(f"{base}{wire.path(model)}", wire.encode(model, row), ca)
            try:
                wire.decode(body, 1)
            except WireError as exc:
                problems.append(f"{target.name}: {model}: {exc}")
        return record, problems
    for model in models:
        try:
            meta = _get_json(f"{base}{wire.model_info.format(model=model)}", ca)
        except urllib.error.HTTPError as exc:
            problems.append(f"{target.name}: model {model!r}: HTTP {exc.code} (not served?)")
            continue
        record.models[model] = meta
        got, want = _features(meta.get("inputs")), load_metadata(model).n_features
        if got is not None and got != want:
            problems.append(
                f"{target.name}: {model} declares {got} features, the artifact has {want}"
            )
    return record, problems


def _check_grpc(
    target: Target, models: list[str], ca: str | None
) -> tuple[TargetRecord, list[str]]:
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    record = TargetRecord(scenario=target.name, address=target.address)
    record.metrics_url = target.metrics_url
    problems: list[str] = []
    certs = open(ca, "rb").read() if ca else None  # noqa: SIM115 (tritonclient wants bytes)
    client = grpcclient.InferenceServerClient(
        target.host_port, ssl=target.tls, root_certificates=certs
    )
    try:
        if not client.is_server_ready(client_timeout=5):
            problems.append(f"{target.name}: the server says it is not ready")
        server = client.get_server_metadata(as_json=True, client_timeout=5)
        record.server = {k: server.get(k) for k in ("name", "version") if k in server}
        for model in models:
            try:
                meta = client.get_model_metadata(model, as_json=True, client_timeout=5)
            except InferenceServerException as exc:
                problems.append(f"{target.name}: model {model!r}: {exc.message()}")
                continue
            record.models[model] = meta
            got, want = _features(meta.get("inputs")), load_metadata(model).n_features
            if got is not None and got != want:
                problems.append(
                    f"{target.name}: {model} declares {got} features, the artifact has {want}"
                )
    except InferenceServerException as exc:
        hint = (
            " (TLS where plain gRPC was expected, or the reverse?)"
            if "UNAVAILABLE" in str(exc.status())
            else ""
        )
        problems.append(f"{target.name} at {target.address}: {exc.message()}{hint}")
    finally:
        client.close()
    return record, problems


def check_targets(
    targets: list[Target], models: list[str], ca_bundle: str | None = None
) -> tuple[dict[str, TargetRecord], ParityRecord]:
    """Every check of the module docstring; a TargetError lists every problem found."""
    records: dict[str, TargetRecord] = {}
    problems: list[str] = []
    for target in targets:
        if not tcp_open(target.host_port):
            problems.append(f"{target.name}: cannot reach {target.host_port}")
            continue
        check = _check_grpc if target.grpc else _check_http
        try:
            record, found = check(target, models, ca_bundle)
        except (OSError, ValueError, urllib.error.URLError, http.client.HTTPException) as exc:
            problems.append(_http_problem(target, exc))
            continue
        records[target.name] = record
        problems += found
    if problems:
        raise TargetError("targets not usable, nothing was sent:\n  " + "\n  ".join(problems))
    endpoints = [
        ParityEndpoint(f"{t.name} {t.wire} via {library}", t.wire, library, t.address)
        for t in targets
        for e in get_backend(t.scenario.backend).endpoints
        if e.scenario == t.name
        for library in e.parity_clients
    ]
    results = run_parity(endpoints, models, ca_bundle=ca_bundle)
    checks = [r.record() for r in results]
    failed = [
        f"{c.endpoint} / {c.model}: {c.error or 'wrong answers'}" for c in checks if not c.passed
    ]
    if failed:
        raise TargetError("targets answer differently from the artifact:\n  " + "\n  ".join(failed))
    return records, ParityRecord(status="passed", checks=checks)
