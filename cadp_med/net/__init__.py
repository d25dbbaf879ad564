"""The DICOM network node: receive studies over C-STORE, de-identify, forward.

pynetdicom is imported only inside this package (and lazily, inside functions), so
the rest of cadp-med starts without it.  See ``docs/NODE.md``.

Public API::

    NodeConfig, load_config     the validated ``node.toml``
    Node                        the running node (``start()``, ``stop()``, ``report()``)
"""

from __future__ import annotations

from cadp_med.net.config import NodeConfig, load_config
from cadp_med.net.node import Node

__all__ = ["Node", "NodeConfig", "load_config"]
