//! Decoding errors: every one names what was wrong and, where one applies, the limit.

/// A frame or a body that does not follow `docs/PROTOCOL.md`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("bad magic 0x{got:04x}: expected 0x5651 (\"QV\"); framing is lost")]
    BadMagic { got: u16 },
    #[error("protocol version {got} is not supported (this server speaks version {supported})")]
    UnsupportedVersion { got: u8, supported: u8 },
    #[error("frame body of {len} bytes exceeds the {max}-byte frame limit")]
    FrameTooLarge { len: u64, max: u64 },
    #[error("unknown opcode 0x{opcode:02x}")]
    UnknownOpcode { opcode: u8 },
    #[error("reserved flag bits 0x{flags:04x} are set in a request")]
    ReservedFlags { flags: u16 },
    #[error("a request must carry status 0, got {status}")]
    RequestStatus { status: u16 },
    #[error("body truncated while reading {what}: {need} bytes needed, {have} left")]
    Truncated {
        what: &'static str,
        need: u64,
        have: u64,
    },
    #[error("{len} trailing bytes after the end of the {what} body")]
    TrailingBytes { what: &'static str, len: usize },
    #[error("{what} is not valid UTF-8")]
    BadUtf8 { what: &'static str },
    #[error("unknown {what} tag {tag}")]
    UnknownTag { what: &'static str, tag: u8 },
    #[error("bool {what} must be 0 or 1, got {got}")]
    BadBool { what: &'static str, got: u8 },
    #[error("feature reference '{got}' is not of the form group:feature")]
    BadFeatureRef { got: String },
    #[error("unknown status code {code}")]
    UnknownStatus { code: u16 },
    #[error("{what} must be all zeros when absent")]
    AbsentNotZero { what: &'static str },
    /// A field that must be zero because another field says it is absent or unused: every
    /// value has exactly one encoding (see `docs/PROTOCOL.md`, "Conventions").
    #[error("{what} must be 0 {when}, got {got} (every field has one encoding)")]
    NotCanonical {
        what: &'static str,
        when: &'static str,
        got: u64,
    },
    /// A field whose bytes have an encoding of their own that does not decode.
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error(
        "the MORE flag is set on a {opcode} response: only SCAN and TRAINING_SET responses stream"
    )]
    MoreOnSingleResponse { opcode: &'static str },
}
