"""The locustfile the benchmark sweep runs: one user of the wire format in SERVINGBENCH_LOAD_WIRE.

Users run `loadtests/<scenario>.py` instead; both hold the same user classes.
"""

from servingbench.loadgen.users import user_from_env

ScenarioUser = user_from_env()
