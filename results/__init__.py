"""Reads stored runs: statistics, figures and reports. Never runs anything (DESIGN.md)."""
