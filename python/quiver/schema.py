"""Feature groups and their features, as Python values.

Types are written as in the CLI and docs/PROTOCOL.md: ``"bool"``, ``"i64"``, ``"f32"``,
``"f64"``, ``"string"``, ``"bytes"``, ``"f32[128]"`` (a fixed-size float32 vector; see
:func:`vector`), ``"list<i64>"``, ``"list<f32>"``, ``"list<string>"``. Key types: ``"string"``,
``"i64"``, ``"bytes"``.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

BOOL = "bool"
I64 = "i64"
F32 = "f32"
F64 = "f64"
STRING = "string"
BYTES = "bytes"
LIST_I64 = "list<i64>"
LIST_F32 = "list<f32>"
LIST_STRING = "list<string>"

KEY_STRING = "string"
KEY_I64 = "i64"
KEY_BYTES = "bytes"


def vector(dim: int) -> str:
    """The type of a fixed-size float32 vector (an embedding) of ``dim`` values."""
    return f"f32[{int(dim)}]"


def vector_dim(type_name: str) -> Optional[int]:
    """The dimension of a vector type, or None for other types."""
    if type_name.startswith("f32[") and type_name.endswith("]"):
        return int(type_name[4:-1])
    return None


Seconds = Union[int, float, _dt.timedelta, None]


def _seconds(value: Seconds, what: str) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, _dt.timedelta):
        value = value.total_seconds()
    seconds = int(value)
    if seconds != value or seconds <= 0:
        raise ValueError(f"{what} must be a whole number of seconds above 0, got {value!r}")
    return seconds


@dataclass(frozen=True)
class Feature:
    """A feature to create (or add to a group): its name and type, and its validation rules
    written as in the CLI (docs/CLI.md): ``"not-null"``, ``"finite"``, ``"range=[0,150]"``
    (``(`` / ``)`` for open ends), ``"in=a,b,c"``, ``"regex=[a-z]+"``, ``"len=[1,10]"``,
    ``"norm=[0.9,1.1]"``, ``"lag=1h"``, ``"future=5m"``."""

    name: str
    type: str
    description: str = ""
    owner: str = ""
    tags: Tuple[str, ...] = ()
    rules: Tuple[str, ...] = ()

    def to_dict(self) -> Dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "description": self.description,
            "owner": self.owner,
            "tags": list(self.tags),
            "rules": list(self.rules),
        }


@dataclass(frozen=True)
class GroupSpec:
    """What a caller gives to create a group.

    ``ttl`` is the max age of a value (from its event time) before reads report it EXPIRED,
    and the default TTL of the group's records; ``history`` keeps superseded values for that
    long (as-of reads). Both take seconds or a ``timedelta``. ``history_max_versions`` keeps at
    most that many superseded versions per feature and entity (1 to 100000), alone or with
    ``history`` (a version either bound removes is removed; trimmed in the background).
    ``compression_level`` turns on zstd at that level. ``on_violation`` says what a put that
    breaks a feature's rule does: ``"reject"`` refuses it whole (InvalidArgumentError naming the
    feature, the rule and the value), ``"drop"`` leaves the offending values out and counts
    them. ``max_staleness`` is the group's freshness objective (seconds or a ``timedelta``);
    ``drift_psi`` and ``drift_distance`` are its drift thresholds (docs/CLI.md, ``quiver check``).
    """

    name: str
    key_type: str
    features: Sequence[Feature]
    ttl: Seconds = None
    compression_level: Optional[int] = None
    allow_non_finite: bool = False
    description: str = ""
    owner: str = ""
    tags: Tuple[str, ...] = ()
    history: Seconds = None
    history_max_versions: Optional[int] = None
    on_violation: str = "reject"
    max_staleness: Seconds = None
    drift_psi: Optional[float] = None
    drift_distance: Optional[float] = None

    def to_dict(self) -> Dict[str, Any]:
        return {
            "name": self.name,
            "key_type": self.key_type,
            "features": [f.to_dict() for f in self.features],
            "ttl_s": _seconds(self.ttl, "ttl"),
            "compression_level": self.compression_level,
            "allow_non_finite": self.allow_non_finite,
            "description": self.description,
            "owner": self.owner,
            "tags": list(self.tags),
            "history_retention_s": _seconds(self.history, "history"),
            "history_max_versions": self.history_max_versions,
            "on_violation": self.on_violation,
            "max_staleness_s": _seconds(self.max_staleness, "max_staleness"),
            "drift_psi": self.drift_psi,
            "drift_distance": self.drift_distance,
        }


@dataclass(frozen=True)
class FeatureInfo:
    """A feature as the registry holds it."""

    id: int
    name: str
    type: str
    description: str
    owner: str
    tags: Tuple[str, ...]
    deprecated: bool
    rules: Tuple[str, ...] = ()


@dataclass(frozen=True)
class GroupSchema:
    """A group as the registry holds it; ``version`` grows by one with every change."""

    id: int
    version: int
    name: str
    key_type: str
    features: Tuple[FeatureInfo, ...]
    ttl_s: Optional[int]
    compression_level: Optional[int]
    allow_non_finite: bool
    description: str
    owner: str
    tags: Tuple[str, ...]
    history_retention_s: Optional[int]
    history_max_versions: Optional[int]
    on_violation: str = "reject"
    max_staleness_s: Optional[int] = None
    drift_psi: Optional[float] = None
    drift_distance: Optional[float] = None
    _by_name: Dict[str, FeatureInfo] = field(default_factory=dict, repr=False, compare=False)

    @staticmethod
    def from_dict(d: Dict[str, Any]) -> "GroupSchema":
        features = tuple(
            FeatureInfo(
                id=f["id"],
                name=f["name"],
                type=f["type"],
                description=f["description"],
                owner=f["owner"],
                tags=tuple(f["tags"]),
                deprecated=f["deprecated"],
                rules=tuple(f.get("rules", ())),
            )
            for f in d["features"]
        )
        return GroupSchema(
            id=d["id"],
            version=d["version"],
            name=d["name"],
            key_type=d["key_type"],
            features=features,
            ttl_s=d["ttl_s"],
            compression_level=d["compression_level"],
            allow_non_finite=d["allow_non_finite"],
            description=d["description"],
            owner=d["owner"],
            tags=tuple(d["tags"]),
            history_retention_s=d["history_retention_s"],
            history_max_versions=d.get("history_max_versions"),
            on_violation=d.get("on_violation", "reject"),
            max_staleness_s=d.get("max_staleness_s"),
            drift_psi=d.get("drift_psi"),
            drift_distance=d.get("drift_distance"),
            _by_name={f.name: f for f in features},
        )

    def feature(self, name: str) -> FeatureInfo:
        """The feature called ``name`` (KeyError when the group has none)."""
        return self._by_name[name]

    @property
    def feature_names(self) -> List[str]:
        return [f.name for f in self.features if not f.deprecated]


Alteration = Tuple[str, Any]
