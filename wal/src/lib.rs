//! Quiver wal.
