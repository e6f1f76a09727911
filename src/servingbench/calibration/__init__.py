"""Measuring the instrument: Locust against no-op servers, beside the fastest client Python can be.

`noop` holds the no-op servers (they answer the load's exact requests with byte-for-byte the
real servers' answers, in microseconds), `reference` the reference clients, `run` the
`make calibrate` procedure that writes `runs.calibration.CalibrationRecord`s.
"""
