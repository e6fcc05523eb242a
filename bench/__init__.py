"""Benchmarks: deskphone measured on the same work as its peers, figures written to results/."""
