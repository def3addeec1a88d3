"""Analyses over many traces: probe checks (``podnet check``), reachability matrices."""
