"""Benchmark and profiler building blocks: measurement (`measure`), the floor model (`floor_model`), peer models
(`peers`) and reporting (`report`); the CLIs are scripts/benchmark.py and scripts/profile_training.py."""
