"""The locustfile the benchmark sweep runs: one user per wire format; the sweep names the one.

    locust -f .../locustfile.py V2GrpcUser --host 127.0.0.1:8081 ...

Users run `loadtests/<scenario>.py` instead; both hold the same user classes.
"""

from servingbench.loadgen.settings import user_class_name
from servingbench.loadgen.users import user_for

PredictJsonUser = user_for("predict-json", user_class_name("predict-json"))
V2JsonUser = user_for("v2-json", user_class_name("v2-json"))
V2GrpcUser = user_for("v2-grpc", user_class_name("v2-grpc"))
