"""A Feast online store on Quiver: ``type: quiver.feast.QuiverOnlineStore`` in
``feature_store.yaml`` (see docs/FEAST.md). Needs ``feast`` (``pip install quiver-store[feast]``).
"""

from .online_store import QuiverOnlineStore, QuiverOnlineStoreConfig

__all__ = ["QuiverOnlineStore", "QuiverOnlineStoreConfig"]
