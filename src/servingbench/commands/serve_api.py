"""Run our FastAPI inference service under uvicorn (uvloop, httptools, no access log).

No proxy-headers middleware either: nothing here reads the client address, and under load
py-spy found that extra ASGI layer in 1.5 % of the server's samples.

Settings come from `SERVINGBENCH_API_*` variables; the flags below override them.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, get_args

from servingbench.api.settings import ApiSettings, PredictMode

__all__ = ["add_arguments", "run", "settings_from_args"]

# flag dest -> settings field (flags left unset keep the environment's value)
_FLAGS = (
    "host",
    "port",
    "models",
    "default_model",
    "predict_mode",
    "workers",
    "max_rows",
    "max_body_bytes",
    "batch_max_size",
    "batch_max_wait_ms",
    "metrics_enabled",
    "log_level",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8000)")
    parser.add_argument(
        "--model", dest="models", action="append", help="serve only this model (repeatable)"
    )
    parser.add_argument("--default-model", help="model /predict uses when the body names none")
    parser.add_argument("--predict-mode", choices=get_args(PredictMode))
    parser.add_argument("--workers", type=int, help="uvicorn worker processes")
    parser.add_argument("--max-rows", type=int, help="most rows per request")
    parser.add_argument("--max-body-bytes", type=int, help="largest request body")
    parser.add_argument("--batch-max-size", type=int, help="batching: most rows per batch")
    parser.add_argument("--batch-max-wait-ms", type=float, help="batching: longest collection")
    parser.add_argument(
        "--metrics",
        dest="metrics_enabled",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="serve Prometheus /metrics",
    )
    parser.add_argument("--log-level", help="uvicorn log level (default warning)")


def settings_from_args(args: argparse.Namespace) -> ApiSettings:
    """Environment first, then every flag that was given."""
    overrides: dict[str, Any] = {
        name: getattr(args, name) for name in _FLAGS if getattr(args, name, None) is not None
    }
    return ApiSettings(**overrides)


def _export(settings: ApiSettings) -> None:
    """Hand the merged settings to uvicorn's worker processes through the environment."""
    for name, value in settings.model_dump(mode="json").items():
        key = f"SERVINGBENCH_API_{name.upper()}"
        os.environ[key] = value if isinstance(value, str) else json.dumps(value)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    settings = settings_from_args(args)
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,
        "log_level": settings.log_level,
        "server_header": False,
        "proxy_headers": False,
    }
    if settings.workers == 1:
        from servingbench.api.main import create_app

        uvicorn.run(create_app(settings), **options)
    else:
        _export(settings)
        uvicorn.run(
            "servingbench.api.main:create_app_from_env",
            factory=True,
            workers=settings.workers,
            **options,
        )
    return 0
