"""Locust: Ray Serve's `POST /predict` JSON (our service's document).

    locust -f loadtests/ray_rest.py                      # web UI on http://127.0.0.1:8089
    locust -f loadtests/ray_rest.py --headless -u 10 -t 10s [--host http://127.0.0.1:PORT]

Options `--model`, `--rows-per-request`, `--arrival-rate`; env `SERVINGBENCH_LOAD_*`.
"""

from servingbench.loadgen.users import scenario_user

RayRestUser = scenario_user("ray-rest")
