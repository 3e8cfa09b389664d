"""Stored runs in and out: run.json through pairbench.runmodel, the v1 upgrade, histograms."""
