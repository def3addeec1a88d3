"""Renderers: one module per output format. A renderer computes nothing."""
