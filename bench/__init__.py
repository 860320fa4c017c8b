"""Benchmarks that print figures; not part of the test run (the smoke test keeps them from rotting)."""
