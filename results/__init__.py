"""Reads stored runs: statistics, figures and reports. Never runs anything (docs/architecture.md, Layers).

- `io`: run.json in (through pairbench.runmodel), the upgrade of older runs, histograms;
- `analysis`: per-variant statistics, ratios, trends, mechanism, expectation, findings in words;
- `figures`: one module per figure, on shared canvas helpers and one palette;
- `report`: report.md and report.html from one list of blocks;
- `gate`: two runs against each other, the regression gate and its files.
"""
