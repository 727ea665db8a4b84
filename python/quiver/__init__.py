"""quiver: the Python client of the Quiver feature store.

``quiver.connect(addr)`` talks to a ``quiverd`` server; ``quiver.connect_cluster([addr, ...])``
to the nodes of a cluster (each key routed to its master); ``quiver.open(path)`` embeds a store
in this process. All return a :class:`Client` with the same methods: groups (create, describe,
list, alter, drop), writes of one entity from a dict or of many from a ``pandas.DataFrame`` /
``pyarrow.Table`` (pipelined), and ``get_online_features`` across groups, answered as a dict,
an Arrow table or a DataFrame. The wire protocol is the Rust client's, compiled into the
extension module ``quiver._native``. ``quiver.feast`` is a Feast online store.
"""

from . import errors
from .client import Client, HistoryEntry, PutResult, WriteSummary, connect, connect_cluster, open
from .errors import QuiverError
from .results import Column, OnlineFeatures, Status
from .schema import (
    BOOL,
    BYTES,
    F32,
    F64,
    I64,
    KEY_BYTES,
    KEY_I64,
    KEY_STRING,
    LIST_F32,
    LIST_I64,
    LIST_STRING,
    STRING,
    Feature,
    FeatureInfo,
    GroupSchema,
    GroupSpec,
    vector,
)
from ._native import __version__

__all__ = [
    "BOOL",
    "BYTES",
    "F32",
    "F64",
    "I64",
    "KEY_BYTES",
    "KEY_I64",
    "KEY_STRING",
    "LIST_F32",
    "LIST_I64",
    "LIST_STRING",
    "STRING",
    "Client",
    "Column",
    "Feature",
    "FeatureInfo",
    "GroupSchema",
    "GroupSpec",
    "HistoryEntry",
    "OnlineFeatures",
    "PutResult",
    "QuiverError",
    "Status",
    "WriteSummary",
    "connect",
    "connect_cluster",
    "errors",
    "open",
    "vector",
    "__version__",
]
