"""Hot-path benchmarks; each prints a ratio against its physical limit measured in the same run."""
