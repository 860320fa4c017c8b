"""Deterministic process code, one workflow per file. No I/O, no clock, no randomness."""
