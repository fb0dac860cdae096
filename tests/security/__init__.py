"""Regression tests for the security audit (issue 11): one per finding."""
