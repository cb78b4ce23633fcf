"""Benchmarks that compare Wangxin with stock Synapse side by side, in one run, as ratios."""
