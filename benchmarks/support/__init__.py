"""What every benchmark shares: one percentile, interleaved rounds, CPU time, the result line."""
