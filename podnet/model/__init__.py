"""Immutable data: positions, loaded objects, the control plane's results, namespaces, packets.

Nothing here imports any other part of podnet.
"""
