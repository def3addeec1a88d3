"""podnet: a Kubernetes container-networking emulator.

podnet reads a cluster (its own ``Cluster`` document plus plain Kubernetes manifests), plays the
control plane, builds each node's and Pod's network namespace as Linux would hold it, and traces
packets hop by hop through routes, bridges, VXLAN tunnels, netfilter chains and conntrack.
"""

__version__ = "0.1.0"

# The subpackage podnet.load must be imported before the function ``load`` is bound: importing a
# submodule for the first time sets it as an attribute of its parent, which would replace the
# function podnet.load with the package podnet.load.
import podnet.load  # noqa: E402, F401  isort: skip
from podnet.api import LoadedCluster, load  # noqa: E402  isort: skip

__all__ = ["LoadedCluster", "load", "__version__"]
