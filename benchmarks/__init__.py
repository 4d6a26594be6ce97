"""Benchmarks of structgen against its peers (MaskBench, JSON Schema Test Suite, end to end)."""
