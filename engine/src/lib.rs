//! Quiver's embeddable storage engine.
pub mod error;
pub mod feature;
pub mod store;

pub use error::{Error, Result};
