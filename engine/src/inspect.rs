//! Offline inspection.
