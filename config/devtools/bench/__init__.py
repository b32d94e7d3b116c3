"""The benchmarks behind `bench_feed`, `bench_generation` and `bench_engine`; their figures land
in docs/bench-*.json (Makefile `bench`, `bench-feed`)."""
