"""A benchmark run on disk: folder layout, raw per-request records, and the statistics over them.

This is the contract between the sweep (which writes runs) and the report (which reads them).
"""
