//! Quiver benches.
