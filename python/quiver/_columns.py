"""Tables to the column buffers the native module writes from.

A table (``pandas.DataFrame``, ``pyarrow.Table`` or ``RecordBatch``, or a mapping of column
name to array) becomes: the key column, the event times in Unix milliseconds, and per
feature ``(name, kind, valid, *buffers)`` where every buffer is a numpy array viewing (or, after
one vectorized cast, holding) the column's data. Nothing here loops over rows in Python.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .errors import InvalidArgumentError, TypeMismatchError
from .schema import GroupSchema, vector_dim

ColumnTuple = Tuple[Any, ...]


def _pa():
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
    except ImportError as e:  # pragma: no cover - pyarrow is a dependency of bulk writes
        raise ImportError("bulk writes need pyarrow: pip install pyarrow") from e
    return pa, pc


def _one_chunk(col):
    pa, _ = _pa()
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


def _valid(arr) -> Optional[np.ndarray]:
    if arr.null_count == 0:
        return None
    return arr.is_valid().to_numpy(zero_copy_only=False)


def _fixed(arr, pa_type, np_type, fill):
    _, pc = _pa()
    arr = arr.cast(pa_type)
    valid = _valid(arr)
    if valid is not None:
        arr = pc.fill_null(arr, fill)
    return valid, np.ascontiguousarray(arr.to_numpy(zero_copy_only=False), dtype=np_type)


def _binary_buffers(arr, large_type) -> Tuple[np.ndarray, np.ndarray]:
    """Offsets (int64, one more than the rows) and bytes of a string or binary array."""
    arr = arr.cast(large_type)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    return np.ascontiguousarray(offsets), data


def _vectors(name: str, arr, dim: int) -> Tuple[Optional[np.ndarray], np.ndarray]:
    pa, pc = _pa()
    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type) or pa.types.is_fixed_size_list(arr.type)):
        raise TypeMismatchError(f"feature '{name}' is a vector of {dim}; column type {arr.type} is not a list")
    valid = _valid(arr)
    arr = arr.cast(pa.large_list(pa.float32()))
    if valid is not None:
        arr = pc.fill_null(arr, pa.scalar([0.0] * dim, type=arr.type))
    lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
    if len(lengths) and (lengths.min() != dim or lengths.max() != dim):
        bad = int(np.nonzero(lengths != dim)[0][0])
        raise TypeMismatchError(
            f"feature '{name}' expects vectors of {dim} values; row {bad} has {int(lengths[bad])}"
        )
    flat = pc.list_flatten(arr).to_numpy(zero_copy_only=False)
    return valid, np.ascontiguousarray(flat, dtype=np.float32).reshape(len(arr), dim)


def _lists(arr, child_pa, child_np):
    pa, _ = _pa()
    valid = _valid(arr)
    arr = arr.cast(pa.large_list(child_pa))
    offsets = np.ascontiguousarray(arr.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
    values = np.ascontiguousarray(arr.values.to_numpy(zero_copy_only=False), dtype=child_np)
    return valid, offsets, values


def _string_lists(arr):
    pa, _ = _pa()
    valid = _valid(arr)
    arr = arr.cast(pa.large_list(pa.large_string()))
    offsets = np.ascontiguousarray(arr.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
    bounds, data = _binary_buffers(arr.values, pa.large_string())
    return valid, offsets, bounds, data


def _arrow_type(type_name: str):
    """The Arrow type of a feature's values (for a column of nothing but nulls)."""
    pa, _ = _pa()
    dim = vector_dim(type_name)
    if dim is not None:
        return pa.list_(pa.float32(), dim)
    return {
        "bool": pa.bool_(),
        "i64": pa.int64(),
        "f32": pa.float32(),
        "f64": pa.float64(),
        "string": pa.large_string(),
        "bytes": pa.large_binary(),
        "list<f32>": pa.large_list(pa.float32()),
        "list<i64>": pa.large_list(pa.int64()),
        "list<string>": pa.large_list(pa.large_string()),
    }.get(type_name, pa.null())


def feature_column(name: str, type_name: str, arr) -> ColumnTuple:
    """``(name, kind, valid, *buffers)`` for a feature of type ``type_name``."""
    pa, _ = _pa()
    arr = _one_chunk(arr)
    if pa.types.is_null(arr.type):
        arr = pa.nulls(len(arr), type=_arrow_type(type_name))
    try:
        if type_name == "bool":
            return (name, "bool", *_fixed(arr, pa.bool_(), np.bool_, False))
        if type_name == "i64":
            return (name, "i64", *_fixed(arr, pa.int64(), np.int64, 0))
        if type_name == "f32":
            return (name, "f32", *_fixed(arr, pa.float32(), np.float32, 0.0))
        if type_name == "f64":
            return (name, "f64", *_fixed(arr, pa.float64(), np.float64, 0.0))
        if type_name in ("string", "bytes"):
            large = pa.large_string() if type_name == "string" else pa.large_binary()
            kind = "str" if type_name == "string" else "bytes"
            valid = _valid(arr)
            return (name, kind, valid, *_binary_buffers(arr, large))
        dim = vector_dim(type_name)
        if dim is not None:
            return (name, "vec", *_vectors(name, arr, dim))
        if type_name == "list<f32>":
            return (name, "list_f32", *_lists(arr, pa.float32(), np.float32))
        if type_name == "list<i64>":
            return (name, "list_i64", *_lists(arr, pa.int64(), np.int64))
        if type_name == "list<string>":
            return (name, "list_str", *_string_lists(arr))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
        raise TypeMismatchError(f"column '{name}' of type {arr.type} cannot hold {type_name} values: {e}") from e
    raise InvalidArgumentError(f"feature '{name}' has a type this package does not know: {type_name}")


def key_column(name: str, arr) -> Tuple[Any, ...]:
    pa, _ = _pa()
    arr = _one_chunk(arr)
    if arr.null_count:
        raise InvalidArgumentError(f"key column '{name}' has {arr.null_count} null keys")
    t = arr.type
    if pa.types.is_integer(t):
        return ("i64", np.ascontiguousarray(arr.cast(pa.int64()).to_numpy(zero_copy_only=False)))
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return ("str", *_binary_buffers(arr, pa.large_string()))
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return ("bytes", *_binary_buffers(arr.cast(pa.large_binary()), pa.large_binary()))
    raise TypeMismatchError(f"key column '{name}' has type {t}; keys are strings, integers or bytes")


def time_column(name: str, arr, what: str = "event-time") -> np.ndarray:
    """Event times in Unix ms from a timestamp column (naive = UTC) or integer milliseconds."""
    pa, _ = _pa()
    arr = _one_chunk(arr)
    if arr.null_count:
        raise InvalidArgumentError(f"{what} column '{name}' has {arr.null_count} nulls")
    t = arr.type
    if pa.types.is_timestamp(t):
        ms = arr.cast(pa.timestamp("ms", tz=t.tz), safe=False).cast(pa.int64())
    elif pa.types.is_date(t):
        ms = arr.cast(pa.timestamp("ms")).cast(pa.int64())
    elif pa.types.is_integer(t):
        ms = arr.cast(pa.int64())
    else:
        raise TypeMismatchError(
            f"{what} column '{name}' has type {t}; give timestamps or integer Unix milliseconds"
        )
    return np.ascontiguousarray(ms.to_numpy(zero_copy_only=False), dtype=np.int64)


def to_ms(t: Any) -> int:
    """One event time in Unix ms from a datetime (naive = UTC), a date or an int of ms."""
    if t is None:
        return int(_dt.datetime.now(_dt.timezone.utc).timestamp() * 1000)
    if isinstance(t, _dt.datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=_dt.timezone.utc)
        return int(t.timestamp() * 1000)
    if isinstance(t, _dt.date):
        return to_ms(_dt.datetime(t.year, t.month, t.day))
    if isinstance(t, (int, np.integer)) and not isinstance(t, bool):
        return int(t)
    if hasattr(t, "to_pydatetime"):
        return to_ms(t.to_pydatetime())
    raise TypeMismatchError(f"an event time is a datetime or Unix milliseconds, got {type(t).__name__}")


def _as_table(data: Any, vectors: dict):
    """An Arrow table from a DataFrame, Arrow table/batch or mapping; 2-D numpy columns of a
    mapping are kept aside in ``vectors`` (they are already in the layout the store wants)."""
    pa, _ = _pa()
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if hasattr(data, "to_dict") and hasattr(data, "columns") and hasattr(data, "dtypes"):
        return pa.Table.from_pandas(data, preserve_index=False)
    if isinstance(data, Mapping):
        columns = {}
        for name, values in data.items():
            if isinstance(values, np.ndarray) and values.ndim == 2:
                vectors[name] = np.ascontiguousarray(values, dtype=np.float32)
                continue
            columns[name] = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values)
        return pa.table(columns) if columns else None
    raise TypeMismatchError(
        f"cannot write a {type(data).__name__}: give a pandas.DataFrame, a pyarrow.Table or "
        "RecordBatch, or a dict of columns"
    )


def table_columns(
    data: Any,
    schema: GroupSchema,
    key: str,
    event_time: Optional[str],
    event_time_ms: Optional[int],
    features: Optional[Sequence[str]],
    write_time: Optional[str] = None,
) -> Tuple[Tuple[Any, ...], np.ndarray, List[ColumnTuple], Optional[np.ndarray]]:
    """The key column, event times, feature columns and write times (when ``write_time``
    names a column) of a bulk write."""
    vectors: dict = {}
    table = _as_table(data, vectors)
    names = list(table.column_names) if table is not None else []
    rows = table.num_rows if table is not None else 0
    for name, v in vectors.items():
        if table is not None and v.shape[0] != rows:
            raise InvalidArgumentError(f"column '{name}' has {v.shape[0]} rows, the others {rows}")
        rows = v.shape[0]
    if key not in names:
        raise InvalidArgumentError(f"no key column '{key}' among {names}")
    keys = key_column(key, table.column(key))
    if event_time is not None:
        if event_time not in names:
            raise InvalidArgumentError(f"no event-time column '{event_time}' among {names}")
        times = time_column(event_time, table.column(event_time))
    else:
        times = np.full(rows, to_ms(event_time_ms), dtype=np.int64)
    write_times = None
    if write_time is not None:
        if write_time not in names:
            raise InvalidArgumentError(f"no write-time column '{write_time}' among {names}")
        write_times = time_column(write_time, table.column(write_time), "write-time")
    if features is None:
        features = [n for n in names + list(vectors) if n not in (key, event_time, write_time)]
    columns: List[ColumnTuple] = []
    for name in features:
        try:
            ty = schema.feature(name).type
        except KeyError:
            from .errors import UnknownFeatureError

            raise UnknownFeatureError(f"group '{schema.name}' has no feature '{name}'") from None
        if name in vectors:
            dim = vector_dim(ty)
            if dim is None or vectors[name].shape[1] != dim:
                raise TypeMismatchError(
                    f"feature '{name}' is {ty}; a 2-D array of shape {vectors[name].shape} fits only f32[{vectors[name].shape[1]}]"
                )
            columns.append((name, "vec", None, vectors[name]))
        elif name in names:
            columns.append(feature_column(name, ty, table.column(name)))
        else:
            raise InvalidArgumentError(f"no column '{name}' among {names + list(vectors)}")
    return keys, times, columns, write_times
