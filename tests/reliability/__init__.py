"""The reliability suite: fuzzed input, injected faults, killed processes, a long soak."""
