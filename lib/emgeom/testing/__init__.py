"""Tiny random-weight models of real architectures, built locally for tests and dry runs."""
