"""The Locust load generator: one REST user, one gRPC user, exact per-request records.

Light modules (`scenarios`, `settings`, `payloads`, `verdicts`, `recorder`) import neither Locust
nor gevent, so the sweep and unit tests can use them without Locust's gevent monkey-patching.
Locustfiles import the users from `servingbench.loadgen.rest_user` / `.grpc_user`, which bring
Locust (and its event hooks, `servingbench.loadgen.hooks`) in.
"""
