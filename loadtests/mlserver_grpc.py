"""Locust: MLServer's V2 gRPC `inference.GRPCInferenceService/ModelInfer`.

    locust -f loadtests/mlserver_grpc.py                      # web UI on http://127.0.0.1:8089
    locust -f loadtests/mlserver_grpc.py --headless -u 10 -t 10s [--host 127.0.0.1:8081]

Options `--model`, `--rows-per-request`, `--arrival-rate`; env `SERVINGBENCH_LOAD_*`.
"""

from servingbench.loadgen.users import scenario_user

MlserverGrpcUser = scenario_user("mlserver-grpc")
