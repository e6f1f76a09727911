"""The Locust load generator: one REST user, one gRPC user, exact per-request records.

Light modules (`settings`, `payloads`, `verdicts`, `recorder`) import neither Locust nor gevent,
so the sweep and unit tests can use them without Locust's gevent monkey-patching. The users read
top-down: `wire_user` (the base that times and records), `rest_user` / `grpc_user` (one per
transport), `users` (the concrete class a locustfile asks for); they bring Locust (and its event
hooks, `servingbench.loadgen.hooks`) in.
"""
