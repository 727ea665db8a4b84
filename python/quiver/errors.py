"""Exceptions raised by quiver: one class per protocol status, plus transport errors.

Every exception is a :class:`QuiverError`. A failure the server (or an embedded store) reports
carries the protocol status it was reported with, in ``status`` (its name, e.g.
``"UNKNOWN_GROUP"``) and ``code`` (its number, see docs/PROTOCOL.md); an embedded store raises
the same class a server would for the same cause. Classes that match a built-in category also
derive from it (``TypeMismatchError`` is a ``TypeError``, ``QuiverConnectionError`` a
``ConnectionError``), so generic handlers keep working.
"""

from __future__ import annotations

from typing import Dict, Optional, Type


class QuiverError(Exception):
    """Base class of every quiver error."""

    #: The protocol status name ("UNKNOWN_GROUP"), or "CONNECTION", "TIMEOUT", "PROTOCOL",
    #: "NOT_SUPPORTED".
    status: str = "INTERNAL"
    #: The protocol status number, or None for transport errors.
    code: Optional[int] = None
    #: The input column at fault, where one is (a training set's spine column), else None.
    column: Optional[str] = None

    def __init__(self, message: str, status: Optional[str] = None, code: Optional[int] = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code


class BadFrameError(QuiverError):
    """The server could not read a request frame (BAD_FRAME)."""


class UnknownOpcodeError(QuiverError):
    """The server does not know the request's operation (UNKNOWN_OPCODE)."""


class UnsupportedVersionError(QuiverError):
    """The server speaks another protocol version (UNSUPPORTED_VERSION)."""


class HandshakeRequiredError(QuiverError):
    """A request came before the handshake (HANDSHAKE_REQUIRED)."""


class AuthFailedError(QuiverError, PermissionError):
    """The token was refused (AUTH_FAILED)."""


class LimitExceededError(QuiverError, ValueError):
    """A request broke a named limit: batch size, frame size, value size... (LIMIT_EXCEEDED)."""


class UnknownGroupError(QuiverError, LookupError):
    """No group of that name (UNKNOWN_GROUP)."""


class UnknownFeatureError(QuiverError, LookupError):
    """No feature of that name in the group (UNKNOWN_FEATURE)."""


class TypeMismatchError(QuiverError, TypeError):
    """A value or key of the wrong type for its feature or group (TYPE_MISMATCH)."""


class GroupExistsError(QuiverError):
    """A group of that name already exists (GROUP_EXISTS)."""


class InvalidArgumentError(QuiverError, ValueError):
    """A malformed name, option or argument (INVALID_ARGUMENT)."""


class MissingColumnError(InvalidArgumentError, LookupError):
    """A column the call names is not in the table given (a spine's key or time column);
    ``column`` names it (INVALID_ARGUMENT)."""

    status = "INVALID_ARGUMENT"


class GenerationMismatchError(QuiverError):
    """A compare-and-set put found another generation (GENERATION_MISMATCH)."""


class AlreadyExistsError(QuiverError):
    """A create-only put found the row (ALREADY_EXISTS)."""


class NotFoundError(QuiverError, LookupError):
    """An update-only put found no row (NOT_FOUND)."""


class DeviceFullError(QuiverError):
    """The store has no room for the write; reads go on (DEVICE_FULL)."""


class StoreFailedError(QuiverError):
    """The store failed (I/O error, corruption) (STORE_FAILED)."""


class CorruptError(StoreFailedError):
    """The record read is damaged; it is never returned as an older answer (CORRUPT)."""


class ShuttingDownError(QuiverError):
    """The server or store is shutting down or closed (SHUTTING_DOWN)."""


class BusyError(QuiverError):
    """The server's queue is full; retry later (BUSY)."""


class InternalError(QuiverError):
    """A failure inside the server (INTERNAL)."""


class PermissionDeniedError(QuiverError, PermissionError):
    """The user lacks the permission the request needs on a group it names
    (PERMISSION_DENIED)."""


class NotMasterError(QuiverError):
    """Cluster mode: the node is not the master of the key's partition; the message names the
    map version and the master (NOT_MASTER). Nothing was written."""


class UnavailableError(QuiverError):
    """Cluster mode, retryable: the partition has no live master right now, or a replica did
    not confirm the write, which is then not acknowledged (UNAVAILABLE)."""


class NotSupportedError(QuiverError, NotImplementedError):
    """The operation has no form for this kind of client; the message names it and says why
    (a node-local request, such as a training set, on a cluster client)."""

    status = "NOT_SUPPORTED"


class QuiverConnectionError(QuiverError, ConnectionError):
    """The server could not be reached, or the connection broke."""

    status = "CONNECTION"


class QuiverTimeoutError(QuiverError, TimeoutError):
    """No answer within the client's timeout."""

    status = "TIMEOUT"


class ProtocolError(QuiverError):
    """The server sent something this client cannot read."""

    status = "PROTOCOL"


#: Exception class by protocol status name.
BY_STATUS: Dict[str, Type[QuiverError]] = {
    "BAD_FRAME": BadFrameError,
    "UNKNOWN_OPCODE": UnknownOpcodeError,
    "UNSUPPORTED_VERSION": UnsupportedVersionError,
    "HANDSHAKE_REQUIRED": HandshakeRequiredError,
    "AUTH_FAILED": AuthFailedError,
    "LIMIT_EXCEEDED": LimitExceededError,
    "UNKNOWN_GROUP": UnknownGroupError,
    "UNKNOWN_FEATURE": UnknownFeatureError,
    "TYPE_MISMATCH": TypeMismatchError,
    "GROUP_EXISTS": GroupExistsError,
    "INVALID_ARGUMENT": InvalidArgumentError,
    "GENERATION_MISMATCH": GenerationMismatchError,
    "ALREADY_EXISTS": AlreadyExistsError,
    "NOT_FOUND": NotFoundError,
    "DEVICE_FULL": DeviceFullError,
    "STORE_FAILED": StoreFailedError,
    "CORRUPT": CorruptError,
    "SHUTTING_DOWN": ShuttingDownError,
    "BUSY": BusyError,
    "INTERNAL": InternalError,
    "PERMISSION_DENIED": PermissionDeniedError,
    "NOT_MASTER": NotMasterError,
    "UNAVAILABLE": UnavailableError,
    "NOT_SUPPORTED": NotSupportedError,
    "CONNECTION": QuiverConnectionError,
    "TIMEOUT": QuiverTimeoutError,
    "PROTOCOL": ProtocolError,
}


def from_failure(kind: str, code: Optional[int], message: str) -> QuiverError:
    """The exception for a failure reported by the native module (an unknown status name,
    from a newer server, becomes a plain QuiverError carrying that name)."""
    cls = BY_STATUS.get(kind, QuiverError)
    return cls(message, status=kind, code=code)


__all__ = [name for name, value in globals().items() if isinstance(value, type) and issubclass(value, QuiverError)] + [
    "BY_STATUS",
    "from_failure",
]
