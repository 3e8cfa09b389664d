"""The input checks every command makes before it starts a process: moved to the API layer,
which the notebooks share with the command line (pairbench/api/checks.py); kept importable here
for the command modules."""

from pairbench.api.checks import before_run, bind, commit, output_folder, scenarios_fit

__all__ = ["before_run", "bind", "commit", "output_folder", "scenarios_fit"]
