"""podnet: a Kubernetes container-networking emulator.

podnet reads a cluster (its own ``Cluster`` document plus plain Kubernetes manifests), plays the
control plane, builds each node's and Pod's network namespace as Linux would hold it, and traces
packets hop by hop through routes, bridges, VXLAN tunnels, netfilter chains and conntrack.
"""

__version__ = "0.1.0"

from podnet.api import LoadedCluster, load  # noqa: E402

__all__ = ["LoadedCluster", "load", "__version__"]
