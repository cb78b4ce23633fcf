"""The Wangxin stack launcher: renders configs, starts Synapse (optionally with workers), the
bridge and the merchant bot, waits until each is ready, supervises them and stops them together.

The test harness and the benchmarks start stacks through this same launcher, so what is
tested is what ``python3 run.py up`` runs.
"""
