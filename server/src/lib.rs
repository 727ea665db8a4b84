//! Quiver server.
