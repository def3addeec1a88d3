"""The trace engine: SRC/DST grammar, the hop loop (Linux's forwarding decisions per namespace),
branches of kube-proxy's random choices, and the reply path through conntrack."""
