"""The analysis stored into run.json at a run's end: moved to the API layer, which the notebooks
share with the command line (pairbench/api/analysis.py); kept importable here for the command
modules."""

from pairbench.api.analysis import store_analysis

__all__ = ["store_analysis"]
