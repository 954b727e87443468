"""Benchmarks that write results (not timed tests): inference latency (Table 1, Figure 5).

Each is a module with a `main()`, run as `python -m experiments.bench.<name>`.
"""
