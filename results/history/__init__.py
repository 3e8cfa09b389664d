"""A pair's headline and its fixes' latency over many stored runs, with change points."""
