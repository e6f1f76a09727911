"""One classification of every request's result, whatever the protocol: an `Outcome` and a reason.

The reason is short and stable (it becomes a row in Locust's failure table and a key in the
records' reason counts): "HTTP 503: ...", "gRPC NOT_FOUND: ...", "timeout: ...",
"wrong answer: ...". Connection failures are `CONNECTION` in both protocols (gRPC reports a
refused or dropped connection as UNAVAILABLE), deadlines and socket timeouts are `TIMEOUT`.
"""

from __future__ import annotations

from collections.abc import Callable

from servingbench.loadgen.h2grpc import RpcError, StatusCode
from servingbench.loadgen.http1 import HttpResponseError
from servingbench.loadgen.payloads import Payload
from servingbench.runs.records import Outcome
from servingbench.wire import Prediction, WireError, mismatch

__all__ = ["OK", "RequestError", "Verdict", "check_body", "check_http", "classify_exception"]

Verdict = tuple[Outcome, str]
OK: Verdict = (Outcome.OK, "")

_DETAIL_CHARS = 160


class RequestError(Exception):
    """What Locust's failure statistics see: its repr is the reason, so the table reads cleanly."""

    def __repr__(self) -> str:
        return str(self)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 3] + "..."


def _grpc_verdict(exc: RpcError) -> Verdict:
    code, details = exc.code(), exc.details()
    reason = _short(f"gRPC {code.name}: {details}" if details else f"gRPC {code.name}")
    if code is StatusCode.DEADLINE_EXCEEDED:
        return Outcome.TIMEOUT, reason
    if code is StatusCode.UNAVAILABLE:
        return Outcome.CONNECTION, reason
    return Outcome.GRPC_STATUS, reason


def classify_exception(exc: Exception) -> Verdict:
    """An exception raised by a client call, as an outcome and reason."""
    if isinstance(exc, RpcError):
        return _grpc_verdict(exc)
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError since Python 3.10
        return Outcome.TIMEOUT, _short(f"timeout: {exc}" if str(exc) else "timeout")
    if isinstance(exc, HttpResponseError):
        closed = "closed" in str(exc)
        return (Outcome.CONNECTION if closed else Outcome.MALFORMED), _short(str(exc))
    if isinstance(exc, OSError):  # refused, reset, aborted, unreachable, DNS
        return Outcome.CONNECTION, _short(f"connection error: {type(exc).__name__}: {exc}")
    return Outcome.OTHER, _short(f"{type(exc).__name__}: {exc}")


def check_body(
    body: bytes,
    payload: Payload,
    decode: Callable[[bytes, int], Prediction],
    validate: bool = True,
) -> Verdict:
    """A successful response's body: parsable, and the prediction the artifact gives."""
    if not validate:
        return OK
    try:
        got = decode(body, payload.n_rows)
    except WireError as exc:
        return Outcome.MALFORMED, _short(f"malformed: {exc}")
    wrong = mismatch(got, (payload.labels, payload.proba))
    if wrong is not None:
        return Outcome.WRONG_ANSWER, _short(f"wrong answer: {wrong}")
    return OK


def check_http(
    status: int,
    body: bytes,
    payload: Payload,
    decode: Callable[[bytes, int], Prediction],
    validate: bool = True,
) -> Verdict:
    """An HTTP response: status 200 first (any other status is an error), then its body."""
    if status != 200:
        detail = _short(body.decode("utf-8", errors="replace"))
        return Outcome.HTTP_STATUS, f"HTTP {status}: {detail}" if detail else f"HTTP {status}"
    return check_body(body, payload, decode, validate)
