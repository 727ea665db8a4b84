//! Response status codes (u16 in every response header).

/// Outcome of a request; 0 is success, every other code comes with a UTF-8 message body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum StatusCode {
    Ok = 0,
    BadFrame = 1,
    UnknownOpcode = 2,
    UnsupportedVersion = 3,
    HandshakeRequired = 4,
    AuthFailed = 5,
    LimitExceeded = 6,
    UnknownGroup = 7,
    UnknownFeature = 8,
    TypeMismatch = 9,
    GroupExists = 10,
    InvalidArgument = 11,
    GenerationMismatch = 12,
    AlreadyExists = 13,
    NotFound = 14,
    DeviceFull = 15,
    StoreFailed = 16,
    ShuttingDown = 17,
    Busy = 18,
    Internal = 19,
    PermissionDenied = 20,
    NotMaster = 21,
    Unavailable = 22,
}

impl StatusCode {
    pub const ALL: [StatusCode; 23] = [
        StatusCode::Ok,
        StatusCode::BadFrame,
        StatusCode::UnknownOpcode,
        StatusCode::UnsupportedVersion,
        StatusCode::HandshakeRequired,
        StatusCode::AuthFailed,
        StatusCode::LimitExceeded,
        StatusCode::UnknownGroup,
        StatusCode::UnknownFeature,
        StatusCode::TypeMismatch,
        StatusCode::GroupExists,
        StatusCode::InvalidArgument,
        StatusCode::GenerationMismatch,
        StatusCode::AlreadyExists,
        StatusCode::NotFound,
        StatusCode::DeviceFull,
        StatusCode::StoreFailed,
        StatusCode::ShuttingDown,
        StatusCode::Busy,
        StatusCode::Internal,
        StatusCode::PermissionDenied,
        StatusCode::NotMaster,
        StatusCode::Unavailable,
    ];

    pub fn from_u16(code: u16) -> Option<StatusCode> {
        StatusCode::ALL.into_iter().find(|s| *s as u16 == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            StatusCode::Ok => "OK",
            StatusCode::BadFrame => "BAD_FRAME",
            StatusCode::UnknownOpcode => "UNKNOWN_OPCODE",
            StatusCode::UnsupportedVersion => "UNSUPPORTED_VERSION",
            StatusCode::HandshakeRequired => "HANDSHAKE_REQUIRED",
            StatusCode::AuthFailed => "AUTH_FAILED",
            StatusCode::LimitExceeded => "LIMIT_EXCEEDED",
            StatusCode::UnknownGroup => "UNKNOWN_GROUP",
            StatusCode::UnknownFeature => "UNKNOWN_FEATURE",
            StatusCode::TypeMismatch => "TYPE_MISMATCH",
            StatusCode::GroupExists => "GROUP_EXISTS",
            StatusCode::InvalidArgument => "INVALID_ARGUMENT",
            StatusCode::GenerationMismatch => "GENERATION_MISMATCH",
            StatusCode::AlreadyExists => "ALREADY_EXISTS",
            StatusCode::NotFound => "NOT_FOUND",
            StatusCode::DeviceFull => "DEVICE_FULL",
            StatusCode::StoreFailed => "STORE_FAILED",
            StatusCode::ShuttingDown => "SHUTTING_DOWN",
            StatusCode::Busy => "BUSY",
            StatusCode::Internal => "INTERNAL",
            StatusCode::PermissionDenied => "PERMISSION_DENIED",
            StatusCode::NotMaster => "NOT_MASTER",
            StatusCode::Unavailable => "UNAVAILABLE",
        }
    }
}

impl std::fmt::Display for StatusCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), *self as u16)
    }
}
