"""pairbench: what a backend anti-pattern costs, and what its fix buys (docs/architecture.md).

This package holds what sits below the engine (harness) and the reader (results), the errors
and exit codes, the run.json model and atomic files, and, above both, the command line
(`pairbench.cli`).
"""
