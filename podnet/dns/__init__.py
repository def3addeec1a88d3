"""Cluster DNS: the records CoreDNS serves (records.py) and a Pod's stub resolver (resolver.py)."""
