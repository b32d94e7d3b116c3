"""Development tooling: the benchmark seed, the benchmarks, and the `manage.py` shims of the
engine's training and evaluation CLIs.

It lives under `config` (the project wiring, which may import every app) so that no production
app carries tooling: nothing outside this package imports it. The commands keep their names
(`seed_feed`, `bench_feed`, `bench_generation`, `bench_engine`, `train_engine`,
`evaluate_engine`); torch and numpy are imported only when a command that needs them runs.
"""
