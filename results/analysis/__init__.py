"""Statistics of a stored run: per-variant summaries, ratios, trends, mechanism, findings."""
