"""Parts of `benchmarks.gateway_ingest`."""
