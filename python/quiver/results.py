"""Answers of ``get_online_features``: per feature, values, statuses and event times.

Values of fixed-width types are numpy arrays (a vector feature is one 2-D float32 array,
``(entities, dim)``, built by the native module and handed to numpy without a copy); strings,
bytes and string lists are Python lists. Where a status is not PRESENT the value slot holds
a filler (NaN, 0, False, a zero vector, None): read the status.
"""

from __future__ import annotations

import enum
from typing import Any, Dict, List, Sequence

import numpy as np


class Status(enum.IntEnum):
    """The status of one feature of one entity (as Feast reports it)."""

    PRESENT = 0
    #: A stored null.
    NULL = 1
    NOT_FOUND = 2
    #: Older than the group's max age (TTL).
    EXPIRED = 3
    #: The entity's row of this feature's group is damaged on the device; no older value is
    #: served in its place. It reads so until the row is rewritten or deleted.
    CORRUPT = 4


STATUS_NAMES = [s.name for s in Status]


class Column:
    """One feature's answers for every entity, in entity order."""

    __slots__ = ("statuses", "event_times_ms", "kind", "_raw")

    def __init__(self, raw: Sequence[Any]):
        #: numpy uint8, one :class:`Status` per entity.
        self.statuses: np.ndarray = raw[0]
        #: numpy int64, Unix ms (0 where NOT_FOUND).
        self.event_times_ms: np.ndarray = raw[1]
        self.kind: str = raw[2]
        self._raw = raw[3:]

    @property
    def values(self) -> Any:
        """numpy array (bool, i64, f32, f64; 2-D float32 for vectors), or a list."""
        if self.kind in ("list_f32", "list_i64"):
            offsets, flat = self._raw
            return [flat[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
        return self._raw[0]

    @property
    def present(self) -> np.ndarray:
        """A boolean mask: True where the status is PRESENT."""
        return self.statuses == Status.PRESENT

    def to_arrow(self):
        """The values as an Arrow array, null where not PRESENT."""
        import pyarrow as pa

        mask = ~self.present
        if self.kind in ("bool", "i64", "f32", "f64"):
            return pa.array(self._raw[0], mask=mask)
        if self.kind == "vec":
            m = self._raw[0]
            flat = pa.array(m.reshape(-1))
            return pa.FixedSizeListArray.from_arrays(flat, m.shape[1], mask=pa.array(mask))
        if self.kind in ("list_f32", "list_i64"):
            offsets, flat = self._raw
            return pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(flat), mask=pa.array(mask))
        if self.kind == "str":
            return pa.array(self._raw[0], type=pa.string())
        if self.kind == "bytes":
            return pa.array(self._raw[0], type=pa.binary())
        return pa.array(self._raw[0], type=pa.list_(pa.string()))


class OnlineFeatures:
    """The answer to ``get_online_features``: columns named ``"group:feature"``.

    ``to_dict()`` gives, per feature, its values under its name, its statuses under
    ``"<name>.status"`` and its event times (Unix ms) under ``"<name>.event_time"``;
    ``to_arrow()`` and ``to_pandas()`` give the same columns as a table, with nulls where the
    status is not PRESENT, statuses as dictionary-encoded names and event times as UTC
    timestamps.
    """

    def __init__(self, entities: Sequence[Any], refs: Sequence[str], raw: Sequence[Sequence[Any]]):
        self.entities = list(entities)
        self.features = list(refs)
        self.columns: Dict[str, Column] = {r: Column(c) for r, c in zip(refs, raw)}

    def __len__(self) -> int:
        return len(self.entities)

    def __getitem__(self, ref: str) -> Column:
        return self.columns[ref]

    def values(self, ref: str) -> Any:
        return self.columns[ref].values

    def statuses(self, ref: str) -> np.ndarray:
        return self.columns[ref].statuses

    def event_times_ms(self, ref: str) -> np.ndarray:
        return self.columns[ref].event_times_ms

    def to_dict(self, entity_column: str = "entity") -> Dict[str, Any]:
        out: Dict[str, Any] = {entity_column: self.entities}
        for ref, col in self.columns.items():
            out[ref] = col.values
            out[f"{ref}.status"] = col.statuses
            out[f"{ref}.event_time"] = col.event_times_ms
        return out

    def to_arrow(self, entity_column: str = "entity"):
        import pyarrow as pa

        names: List[str] = [entity_column]
        arrays: List[Any] = [pa.array(self.entities)]
        status_dict = pa.array(STATUS_NAMES)
        for ref, col in self.columns.items():
            names += [ref, f"{ref}.status", f"{ref}.event_time"]
            arrays.append(col.to_arrow())
            codes = pa.array(col.statuses.astype(np.int8))
            arrays.append(pa.DictionaryArray.from_arrays(codes, status_dict))
            arrays.append(pa.array(col.event_times_ms.astype("datetime64[ms]")).cast(pa.timestamp("ms", tz="UTC")))
        return pa.Table.from_arrays(arrays, names=names)

    def to_pandas(self, entity_column: str = "entity"):
        return self.to_arrow(entity_column).to_pandas()

    def __repr__(self) -> str:
        return f"OnlineFeatures({len(self.entities)} entities, features={self.features})"
