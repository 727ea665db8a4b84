//! quiver-server: the `quiverd` daemon's library (protocol codec, event-driven server,
//! configuration, metrics) and the blocking, pipelined Rust client.
//!
//! The server must never panic on input, never block one connection on another's device read,
//! and never close a connection except when its framing is lost, it breaks a limit that
//! protects the server (idle, slow-loris), or the server shuts down.

pub mod client;
pub mod cluster;
pub mod config;
pub mod http;
pub mod protocol;
pub mod quality;
pub mod security;
pub mod server;
pub mod size;
pub mod tls;
