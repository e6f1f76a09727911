"""Locust: KServe's V2 REST `POST /v2/models/{model}/infer`.

    locust -f loadtests/kserve_rest.py                      # web UI on http://127.0.0.1:8089
    locust -f loadtests/kserve_rest.py --headless -u 10 -t 10s [--host http://127.0.0.1:8090]

Options `--model`, `--rows-per-request`, `--arrival-rate`; env `SERVINGBENCH_LOAD_*`.
"""

from servingbench.loadgen.users import scenario_user

KserveRestUser = scenario_user("kserve-rest")
