"""The dataplane mechanisms as pure functions: netfilter rules and hooks, conntrack, routing,
neighbours, bridging and VXLAN, each in its own module."""
