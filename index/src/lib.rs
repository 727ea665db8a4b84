//! Quiver index.
