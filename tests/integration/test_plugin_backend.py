"""A backend added from outside the project, the way a new one is added: its module, its
configuration table and its locustfile, and nothing else.

The test writes them into a temporary folder: a module that registers a `Backend` whose server
is a small real one (the standard library's HTTP server answering `/predict` JSON with the
artifacts' own predictions), a configuration file with one more table (found through
`$SERVINGBENCH_SERVER_CONFIGS`), and a locustfile of one line. Then it goes through what a user
runs: `serve-all` (and `serve --check`, the containers' healthcheck), `parity`, the locustfile
under the real Locust, `stop-all`, and a one-point sweep. No other test names it: the tests
parametrised over the registry never see it, because it is registered only here.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from servingbench.cli import main
from servingbench.commands.serve_all import endpoint_rows
from servingbench.report import load_run
from servingbench.runs.layout import find_run
from servingbench.servers import Backend, backends, get_backend, scenarios, unregister
from servingbench.stack.configs import CONFIGS_ENV, configs_file, load_server_configs
from servingbench.stack.lifecycle import start_stack, stop_stack
from servingbench.stack.processes import free_port
from servingbench.stack.settings import StackSettings
from servingbench.sweep.runner import run_sweep
from servingbench.sweep.settings import load_settings
from tests.integration.test_sweep import TINY, check_point

pytestmark = pytest.mark.integration

NAME = "plugin"
SCENARIO = f"{NAME}-rest"

MODULE = '''
"""A plug-in backend: the standard library's HTTP server answering `/predict` JSON."""

import json
import sys
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import orjson
from pydantic import BaseModel, ConfigDict

from servingbench.servers import register
from servingbench.servers.base import (
    SINGLE_THREAD_ENV, Backend, Endpoint, LaunchSpec, ServerConfig,
)


class PluginOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threads: bool = False


@register
class PluginBackend(Backend):
    name = "plugin"
    title = "a plug-in server"
    ports: ClassVar[Mapping[str, int]] = {"http": 18997}
    endpoints = (Endpoint("plugin-rest", "predict-json", "http"),)
    options = PluginOptions

    def launch(self, config: ServerConfig, ports: Mapping[str, int], host: str,
               workdir: Path) -> LaunchSpec:
        options = PluginOptions.model_validate(config.overrides())
        port = ports["http"]
        return LaunchSpec(
            name=config.server_name, backend=self.name,
            argv=[sys.executable, __file__, host, str(port), str(options.threads)],
            env=dict(SINGLE_THREAD_ENV), ready_urls=[f"http://{host}:{port}/ready"],
            ports=dict(ports), workdir=workdir, host=host,
            config={"options": options.model_dump()},
        )


def serve(host: str, port: int, threads: bool) -> None:
    import numpy as np

    from servingbench.models.artifacts import load_predictor, model_version
    from servingbench.models.catalog import MODELS, as_features
    from servingbench.wire import RESPONSE_JSON, predict_response

    predictors = {name: load_predictor(name) for name in MODELS}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, status: int, doc: object) -> None:
            body = orjson.dumps(doc, option=RESPONSE_JSON)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            ok = self.path == "/ready"
            self._answer(200 if ok else 404, {"ready": True} if ok else {"error": "not found"})

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                doc = json.loads(body)
                name = doc.get("model", "iris")
                x = as_features(np.atleast_2d(doc["features"]))
                proba = predictors[name].predict_proba(x)
            except Exception as exc:  # a plug-in's own idiom: 400 with the reason
                self._answer(400, {"error": f"{type(exc).__name__}: {exc}"})
                return
            labels = np.argmax(proba, axis=1).astype(np.int64)
            outputs = {"predict": labels, "predict_proba": proba}
            self._answer(200, predict_response(name, model_version(name), outputs))

        def log_message(self, *args: object) -> None:
            pass

    server_class = ThreadingHTTPServer if threads else HTTPServer
    server_class((host, port), Handler).serve_forever()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "True")
'''

LOCUSTFILE = f'''
import {NAME}_backend  # registers the backend, as its module in servingbench.servers would

from servingbench.loadgen.users import scenario_user

PluginRestUser = scenario_user("{SCENARIO}")
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The backend's module, configuration table and locustfile in `tmp_path`, registered."""
    folder = tmp_path / "plugin"
    folder.mkdir()
    (folder / f"{NAME}_backend.py").write_text(textwrap.dedent(MODULE))
    (folder / f"{NAME}_rest.py").write_text(textwrap.dedent(LOCUSTFILE))
    configs = folder / "server-configs.toml"
    configs.write_text(
        configs_file().read_text()
        + f'\n[{NAME}.threaded]\ndescription = "a thread per connection"\nthreads = true\n'
    )
    monkeypatch.setenv(CONFIGS_ENV, str(configs))
    monkeypatch.syspath_prepend(str(folder))
    importlib.import_module(f"{NAME}_backend")
    try:
        yield folder
    finally:
        unregister(NAME)
        sys.modules.pop(f"{NAME}_backend", None)


def _run_locustfile(folder: Path, host: str) -> dict[str, int]:
    """The plug-in's own locustfile under the real Locust, briefly; its request totals."""
    locust = Path(sys.executable).with_name("locust")
    done = subprocess.run(
        [str(locust), "-f", f"{NAME}_rest.py", "--headless", "-u", "2", "-r", "2", "-t", "2s",
         "--host", host, "--csv", "run", "--only-summary"],
        cwd=folder, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": str(folder)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = (folder / "run_stats.csv").read_text().splitlines()
    header = rows[0].split(",")
    total = dict(zip(header, rows[-1].split(","), strict=False))
    return {"requests": int(total["Request Count"]), "failures": int(total["Failure Count"])}


@pytest.mark.timeout(240)
def test_a_backend_added_from_outside_runs_through_serve_parity_and_a_sweep(
    plugin: Path, trained_models: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backend: Backend = get_backend(NAME)
    assert SCENARIO in scenarios()
    assert f"{NAME}:threaded" in load_server_configs()

    # serve-all (only this backend, its configuration from the table), on a free port
    port = free_port()
    state = tmp_path / "state"
    settings = StackSettings(
        backends=[NAME],
        configs=[f"{NAME}:threaded"],
        ports={f"{NAME}.http": port},
        state_dir=state,
        server_cpus=None,
    )
    stack = start_stack(settings)
    try:
        (server,) = stack.servers
        assert server.spec.name == f"{NAME}-threaded"
        assert server.spec.config == {"options": {"threads": True}}
        assert server.startup_s is not None
        rows = dict(endpoint_rows(stack))
        assert rows[f"{backend.title} predict-json"] == f"http://127.0.0.1:{port}/predict"
        address = ["--backends", NAME, f"--{NAME}-http-port", str(port)]
        # the containers' healthcheck: the launch spec's readiness URLs
        assert main(["serve", NAME, "--check", *address]) == 0
        # parity: every model's held-out rows, as for every other backend
        assert main(["parity", *address]) == 0, capsys.readouterr().err
        assert "all 4 checks passed" in capsys.readouterr().out
        # its locustfile
        totals = _run_locustfile(plugin, f"http://127.0.0.1:{port}")
        assert totals["requests"] > 10
        assert totals["failures"] == 0
        pids = [p.pid for p in server.handle.tree()]
    finally:
        stopped = stop_stack(state)
    assert [s.name for s in stopped] == [f"{NAME}-threaded"]
    assert not [pid for pid in pids if psutil.pid_exists(pid)]
    assert main(["serve", NAME, "--check", *address]) == 1  # nothing answers any more

    # a one-point sweep: the sweep starts its own server, checks parity, measures
    results = tmp_path / "results"
    sweep = load_settings(
        overrides={
            **TINY,
            "scenarios": SCENARIO,
            "server_configs": [f"{NAME}:threaded"],
            "results_dir": results,
            "run_id": "plugin",
        }
    )
    result = run_sweep(sweep)
    (point_id,) = [p.point_id for p in result.points]
    layout = find_run("plugin", results)
    series = f"{SCENARIO}@threaded"
    point = check_point(layout.point_dir(point_id), series)
    assert point.key.backend == NAME
    assert point.server_name == f"{NAME}-threaded"
    meta = json.loads(layout.meta.read_text())
    assert meta["status"] == "complete"
    assert meta["parity"]["status"] == "passed"
    assert list(meta["servers"]) == [f"{NAME}-threaded"]
    assert meta["servers"][f"{NAME}-threaded"]["description"] == "a thread per connection"
    assert list(load_run(layout).points["series"]) == [series]


def test_the_plugin_is_gone_afterwards() -> None:
    assert NAME not in backends()
    assert SCENARIO not in scenarios()
