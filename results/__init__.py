"""Reads stored runs: statistics, figures and reports. Never runs anything (docs/architecture.md, Layers)."""
