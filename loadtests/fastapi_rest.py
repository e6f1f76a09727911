"""Locust: our FastAPI service's `POST /predict`.

    locust -f loadtests/fastapi_rest.py                      # web UI on http://127.0.0.1:8089
    locust -f loadtests/fastapi_rest.py --headless -u 10 -t 10s [--host http://127.0.0.1:8000]

Options `--model`, `--rows-per-request`, `--arrival-rate`; env `SERVINGBENCH_LOAD_*`.
"""

from servingbench.loadgen.users import scenario_user

FastapiRestUser = scenario_user("fastapi-rest")
