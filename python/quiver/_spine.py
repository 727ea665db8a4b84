"""Training-set spines in, training sets out.

A spine (``pandas.DataFrame``, ``pyarrow.Table`` / ``RecordBatch``, a mapping of columns, or
the path of a Parquet file) holds one row per training example: a key column per feature
group, a timestamp column, and any other columns (labels, ids), which pass through. This
module checks it against the groups' key types and turns it into the buffers
``Handle.training_set`` reads; then it builds the output table with the columns of
``quiver training-set`` (docs/CLI.md): the spine's columns, one column per feature (null
unless PRESENT), and optionally ``FEATURE__status`` per feature.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _columns
from .errors import InvalidArgumentError, MissingColumnError, TypeMismatchError
from .results import Column, Status

#: The suffix of a feature's status column (as ``quiver training-set --status-columns``).
STATUS_SUFFIX = "__status"
#: Status names as the status columns spell them.
STATUS_TEXT = {
    Status.PRESENT: "present",
    Status.NULL: "null",
    Status.NOT_FOUND: "not_found",
    Status.EXPIRED: "expired",
    Status.CORRUPT: "corrupt",
}
#: The modes, as ``quiver training-set --mode`` names them.
MODES = ("event", "as-served", "known-at")


@dataclass(frozen=True)
class Mode:
    name: str
    known_at_column: Optional[str]


def parse_mode(mode: str, known_at_column: Optional[str]) -> Mode:
    """``event``, ``as-served``, ``known-at`` with ``known_at_column``, or ``known-at:COLUMN``."""
    if not isinstance(mode, str):
        raise InvalidArgumentError(f"mode must be a string ({', '.join(MODES)}), got {type(mode).__name__}")
    name, column = mode, known_at_column
    if mode.startswith("known-at:"):
        name, text = "known-at", mode[len("known-at:") :]
        if column is not None and column != text:
            raise InvalidArgumentError(f"mode {mode!r} and known_at_column={column!r} name two columns")
        column = text
    if name not in MODES:
        raise InvalidArgumentError(f"invalid mode {mode!r}: expected event, as-served or known-at (with known_at_column)")
    if name == "known-at" and not column:
        raise InvalidArgumentError("mode 'known-at' needs known_at_column (or mode='known-at:COLUMN')")
    if name != "known-at" and column is not None:
        raise InvalidArgumentError(f"known_at_column is given, but the mode is {name!r}, not 'known-at'")
    return Mode(name, column)


def read_spine(spine: Any):
    """The spine as one Arrow table."""
    pa, _ = _columns._pa()
    if isinstance(spine, (str, os.PathLike)):
        import pyarrow.parquet as pq

        return pq.read_table(os.fspath(spine))
    vectors: dict = {}
    table = _columns._as_table(spine, vectors)
    if vectors:
        raise TypeMismatchError(
            f"spine columns {sorted(vectors)} are 2-D arrays; a spine holds keys, times and 1-D columns"
        )
    if table is None:
        raise InvalidArgumentError("the spine has no columns")
    return table


def _missing(what: str, column: str, names: Sequence[str]) -> MissingColumnError:
    e = MissingColumnError(f"the spine has no {what} column '{column}' (its columns: {list(names)})")
    e.column = column
    return e


def spine_keys(table, group: str, key_type: str, column: str) -> Tuple[Tuple[Any, ...], Optional[np.ndarray]]:
    """A group's key column as ``(keys, valid)``: keys as a bulk write's key column (nulls
    filled), ``valid`` a bool mask or None when no key is null."""
    pa, pc = _columns._pa()
    if column not in table.column_names:
        raise _missing(f"key column (of group '{group}')", column, table.column_names)
    arr = _columns._one_chunk(table.column(column))
    t = arr.type

    def wrong() -> TypeMismatchError:
        want = {"i64": "integers", "string": "strings (or integers)", "bytes": "binary"}[key_type]
        e = TypeMismatchError(
            f"spine column '{column}' has type {t}, but group '{group}' has {key_type} keys: give {want}"
        )
        e.column = column
        return e

    valid = _columns._valid(arr)
    if pa.types.is_null(t):
        arr = pa.nulls(len(arr), type={"i64": pa.int64(), "string": pa.string(), "bytes": pa.binary()}[key_type])
        t = arr.type
    if key_type == "i64":
        if not pa.types.is_integer(t):
            raise wrong()
        try:
            ints = pc.fill_null(arr.cast(pa.int64()), 0)
        except pa.ArrowInvalid as e:
            raise TypeMismatchError(f"spine column '{column}': {e}") from e
        return ("i64", np.ascontiguousarray(ints.to_numpy(zero_copy_only=False), dtype=np.int64)), valid
    if key_type == "string":
        if pa.types.is_integer(t):
            arr = arr.cast(pa.string())
        elif not (pa.types.is_string(t) or pa.types.is_large_string(t)):
            raise wrong()
        return ("str", *_columns._binary_buffers(pc.fill_null(arr.cast(pa.large_string()), ""), pa.large_string())), valid
    if key_type == "bytes":
        if not (pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)):
            raise wrong()
        filled = pc.fill_null(arr.cast(pa.large_binary()), b"")
        return ("bytes", *_columns._binary_buffers(filled, pa.large_binary())), valid
    raise InvalidArgumentError(f"group '{group}' has a key type this package does not know: {key_type}")


def spine_times(table, column: str, what: str) -> np.ndarray:
    """A time column in Unix ms; a null names its row."""
    pa, _ = _columns._pa()
    if column not in table.column_names:
        raise _missing(what, column, table.column_names)
    arr = _columns._one_chunk(table.column(column))
    if arr.null_count:
        row = int(np.nonzero(~arr.is_valid().to_numpy(zero_copy_only=False))[0][0]) + 1
        e = InvalidArgumentError(f"spine row {row}: the {what} column '{column}' is null ({arr.null_count} nulls)")
        e.column = column
        raise e
    try:
        return _columns.time_column(column, arr, what)
    except TypeMismatchError as e:
        err = TypeMismatchError(
            f"spine column '{column}' ({what}) has type {arr.type}: give timestamps, dates or integer Unix milliseconds"
        )
        err.column = column
        raise err from e


def key_columns_of(key_columns: Union[str, Mapping[str, str]], groups: Sequence[str]) -> Dict[str, str]:
    """Each group's key column: one column for every group, or a mapping group -> column."""
    if isinstance(key_columns, str):
        return {g: key_columns for g in groups}
    out = dict(key_columns)
    for g in out:
        if g not in groups:
            raise InvalidArgumentError(f"key_columns names group '{g}', but no feature is from it")
    for g in groups:
        if g not in out:
            raise InvalidArgumentError(f"no key column for group '{g}': pass key_columns={{'{g}': COLUMN, ...}}")
    return out


_LIST_TYPES = {"vec", "list_f32", "list_i64", "list_str"}


def _output_type(kind: str):
    pa, _ = _columns._pa()
    return {
        "bool": pa.bool_(),
        "i64": pa.int64(),
        "f32": pa.float32(),
        "f64": pa.float64(),
        "str": pa.string(),
        "bytes": pa.binary(),
        "vec": pa.list_(pa.float32()),
        "list_f32": pa.list_(pa.float32()),
        "list_i64": pa.list_(pa.int64()),
        "list_str": pa.list_(pa.string()),
    }[kind]


def output_table(
    table,
    refs: Sequence[str],
    raw: Sequence[Sequence[Any]],
    full_feature_names: bool,
    status_columns: bool,
):
    """The spine's columns, then one column per feature, then (optionally) the statuses."""
    pa, _ = _columns._pa()
    names: List[str] = list(table.column_names)
    arrays: List[Any] = [table.column(n) for n in names]
    columns = [Column(r) for r in raw]
    feature_names = [r.replace(":", "__", 1) if full_feature_names else r.split(":", 1)[1] for r in refs]
    added = list(feature_names)
    if status_columns:
        added += [n + STATUS_SUFFIX for n in feature_names]
    seen = set(names)
    for n in added:
        if n in seen:
            raise InvalidArgumentError(
                f"the output would have two columns named '{n}' (a spine column or another feature): "
                "pass full_feature_names=True to name features GROUP__FEATURE"
            )
        seen.add(n)
    for name, col in zip(feature_names, columns):
        names.append(name)
        arrays.append(col.to_arrow().cast(_output_type(col.kind)))
    if status_columns:
        text = np.array([STATUS_TEXT[Status(i)] for i in range(len(STATUS_TEXT))], dtype=object)
        for name, col in zip(feature_names, columns):
            names.append(name + STATUS_SUFFIX)
            arrays.append(pa.array(text[col.statuses], type=pa.string()))
    return pa.Table.from_arrays(arrays, names=names)
