"""The benchmark sweep behind `make bench`: settings, measured points, the run, calibration.

`run_sweep(settings)` starts the servers, checks parity, measures every (scenario, concurrency)
point with Locust in a subprocess, and writes a run folder in the `servingbench.runs` layout.
"""

from servingbench.sweep.measure import measure_fixed_point
from servingbench.sweep.settings import BenchSettings, load_settings

__all__ = ["BenchSettings", "load_settings", "measure_fixed_point"]
