"""A package, so that test modules here may share basenames with other areas (test_metrics.py)."""
