"""Figures of a run: one module per figure, sharing the canvas helpers and the palette."""
