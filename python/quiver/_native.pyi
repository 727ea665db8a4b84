"""Type hints of the extension module (python/src); use the wrappers in quiver.client."""

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

__version__: str

def status_codes() -> List[Tuple[str, int]]:
    """Every protocol status as (name, code)."""

# One answered column: (statuses uint8, event_times_ms int64, kind, values...).
RawColumn = Tuple[Any, ...]

class Handle:
    @staticmethod
    def connect(addr: str, token: Optional[str] = None, timeout_s: Optional[float] = 30.0, connect_timeout_s: float = 5.0) -> "Handle": ...
    @staticmethod
    def connect_cluster(
        seeds: Sequence[str],
        token: Optional[str] = None,
        timeout_s: Optional[float] = 30.0,
        connect_timeout_s: float = 5.0,
        retry_deadline_s: float = 20.0,
        replica_reads: bool = False,
    ) -> "Handle": ...
    @staticmethod
    def open(path: Optional[str], size_bytes: int, durability: Optional[str] = None) -> "Handle": ...
    def is_remote(self) -> bool: ...
    def is_cluster(self) -> bool: ...
    def cluster_map(self) -> Optional[Dict[str, Any]]: ...
    def master_of(self, key: Any) -> int: ...
    def node_stats(self) -> List[Tuple[int, str, Optional[str], Optional[str]]]: ...
    def server_info(self) -> Optional[Dict[str, Any]]: ...
    def create_group(self, spec: Dict[str, Any]) -> Dict[str, Any]: ...
    def describe_group(self, name: str) -> Dict[str, Any]: ...
    def list_groups(self, tag: Optional[str] = None) -> List[Dict[str, Any]]: ...
    def alter_group(self, name: str, kind: str, arg: Any) -> Dict[str, Any]: ...
    def drop_group(self, name: str) -> None: ...
    def put(
        self,
        group: str,
        key: Any,
        event_time_ms: int,
        values: Dict[str, Any],
        mode: str = "merge",
        durability: Optional[str] = None,
        ttl_s: Optional[int] = None,
        expected_generation: Optional[int] = None,
        write_time_ms: Optional[int] = None,
    ) -> Tuple[int, int, int, int]:
        """(written, skipped_stale, generation, dropped)"""
    def put_columns(
        self,
        group: str,
        keys: Tuple[Any, ...],
        times_ms: np.ndarray,
        columns: Sequence[Tuple[Any, ...]],
        mode: str = "merge",
        durability: Optional[str] = None,
        ttl_s: Optional[int] = None,
        skip_nulls: bool = False,
        write_times_ms: Optional[np.ndarray] = None,
    ) -> Tuple[int, int, int, int]:
        """(rows, written, skipped_stale, dropped)"""
    def get(self, refs: Sequence[str], keys: Any) -> List[RawColumn]: ...
    def get_as_of(
        self, refs: Sequence[str], keys: Any, times_ms: Sequence[int], known_at_ms: Optional[Sequence[int]] = None
    ) -> List[RawColumn]: ...
    def history(
        self, group: str, key: Any, features: Sequence[str], from_ms: int, to_ms: int, known_at_ms: Optional[int] = None
    ) -> List[Tuple[str, int, int, int, Any]]: ...
    def training_set(
        self,
        refs: Sequence[str],
        mode: str,
        key_columns: Sequence[Tuple[str, Tuple[Any, ...], Optional[np.ndarray]]],
        timestamps_ms: np.ndarray,
        known_at_ms: Optional[np.ndarray] = None,
        timestamp_column: str = "timestamp",
        known_at_column: str = "known_at",
    ) -> List[RawColumn]:
        """Point-in-time join of a spine (mode: event, as-served, known-at); one column per
        reference, one value per spine row. Runs without the GIL."""
    def delete(self, group: str, key: Any, durability: Optional[str] = None) -> bool: ...
    def feature_stats_json(self, group: str, feature: Optional[str] = None) -> str: ...
    def stats_json(self) -> str: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...
