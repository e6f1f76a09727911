"""Locust: KServe's V2 gRPC `inference.GRPCInferenceService/ModelInfer`.

    locust -f loadtests/kserve_grpc.py                      # web UI on http://127.0.0.1:8089
    locust -f loadtests/kserve_grpc.py --headless -u 10 -t 10s [--host 127.0.0.1:8091]

Options `--model`, `--rows-per-request`, `--arrival-rate`; env `SERVINGBENCH_LOAD_*`.
"""

from servingbench.loadgen.users import scenario_user

KserveGrpcUser = scenario_user("kserve-grpc")
