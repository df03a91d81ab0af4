"""The parts of `benchmarks.telemetry_ingest`: the workload, the drains, the event latency."""
