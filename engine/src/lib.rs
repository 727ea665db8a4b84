//! Quiver engine.
