//! The fixed 20-byte frame header.

use super::DecodeError;

/// "QV" read as a little-endian u16: bytes 0x51 0x56 on the wire.
pub const MAGIC: u16 = 0x5651;
/// The protocol version this crate speaks, in every header and in the handshake.
pub const PROTOCOL_VERSION: u8 = 1;
/// Size of [`FrameHeader`] on the wire.
pub const HEADER_LEN: usize = 20;
/// Response flag: more response frames for the same request id follow (SCAN and
/// TRAINING_SET stream).
pub const FLAG_MORE: u16 = 0x0001;
const KNOWN_RESPONSE_FLAGS: u16 = FLAG_MORE;
/// Request flag: the client reads the feature status CORRUPT (4) in GET and GET_MANY answers.
/// Without it, a damaged row is answered with a status older clients know (STORE_FAILED).
pub const FLAG_CORRUPT_STATUS: u16 = 0x0002;
/// Request flag, cluster mode: a GET, GET_MANY, GET_AS_OF or HISTORY that an in-sync replica
/// of each key's partition may answer as well as its master; the answer may miss the writes
/// the replica has not received yet. Ignored on other requests and outside cluster mode.
pub const FLAG_REPLICA_READ: u16 = 0x0004;
const KNOWN_REQUEST_FLAGS: u16 = FLAG_CORRUPT_STATUS | FLAG_REPLICA_READ;

/// Operation codes; a response carries the opcode of its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Opcode {
    Handshake = 0x01,
    Ping = 0x02,
    Put = 0x10,
    Get = 0x11,
    GetMany = 0x12,
    Delete = 0x13,
    GetAsOf = 0x14,
    History = 0x15,
    TrainingSet = 0x16,
    GroupCreate = 0x20,
    GroupDescribe = 0x21,
    GroupList = 0x22,
    GroupAlter = 0x23,
    GroupDrop = 0x24,
    Scan = 0x30,
    HistoryKeys = 0x31,
    Stats = 0x40,
    FeatureStats = 0x41,
    Baseline = 0x42,
    Security = 0x50,
    ClusterMap = 0x60,
    Replicate = 0x61,
    ClusterLeave = 0x62,
}

impl Opcode {
    /// Every opcode, in wire order (metrics iterate over it).
    pub const ALL: [Opcode; 23] = [
        Opcode::Handshake,
        Opcode::Ping,
        Opcode::Put,
        Opcode::Get,
        Opcode::GetMany,
        Opcode::Delete,
        Opcode::GetAsOf,
        Opcode::History,
        Opcode::TrainingSet,
        Opcode::GroupCreate,
        Opcode::GroupDescribe,
        Opcode::GroupList,
        Opcode::GroupAlter,
        Opcode::GroupDrop,
        Opcode::Scan,
        Opcode::HistoryKeys,
        Opcode::Stats,
        Opcode::FeatureStats,
        Opcode::Baseline,
        Opcode::Security,
        Opcode::ClusterMap,
        Opcode::Replicate,
        Opcode::ClusterLeave,
    ];

    pub fn from_u8(opcode: u8) -> Result<Opcode, DecodeError> {
        Opcode::ALL
            .into_iter()
            .find(|op| *op as u8 == opcode)
            .ok_or(DecodeError::UnknownOpcode { opcode })
    }

    /// Lower-case name used in metrics labels and logs.
    pub fn name(self) -> &'static str {
        match self {
            Opcode::Handshake => "handshake",
            Opcode::Ping => "ping",
            Opcode::Put => "put",
            Opcode::Get => "get",
            Opcode::GetMany => "get_many",
            Opcode::Delete => "delete",
            Opcode::GetAsOf => "get_as_of",
            Opcode::History => "history",
            Opcode::TrainingSet => "training_set",
            Opcode::GroupCreate => "group_create",
            Opcode::GroupDescribe => "group_describe",
            Opcode::GroupList => "group_list",
            Opcode::GroupAlter => "group_alter",
            Opcode::GroupDrop => "group_drop",
            Opcode::Scan => "scan",
            Opcode::HistoryKeys => "history_keys",
            Opcode::Stats => "stats",
            Opcode::FeatureStats => "feature_stats",
            Opcode::Baseline => "baseline",
            Opcode::Security => "security",
            Opcode::ClusterMap => "cluster_map",
            Opcode::Replicate => "replicate",
            Opcode::ClusterLeave => "cluster_leave",
        }
    }

    /// Index into [`Opcode::ALL`].
    pub fn index(self) -> usize {
        Opcode::ALL.iter().position(|op| *op == self).unwrap_or(0)
    }
}

/// ## Format (little-endian, 20 bytes)
/// | offset | size | field |
/// | --- | --- | --- |
/// | 0 | 2 | magic 0x51 0x56 |
/// | 2 | 1 | version (1) |
/// | 3 | 1 | opcode |
/// | 4 | 2 | flags |
/// | 6 | 2 | status (0 in requests) |
/// | 8 | 4 | body length |
/// | 12 | 8 | request id |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Raw opcode byte: an unknown opcode still frames correctly and gets an error response.
    pub opcode: u8,
    pub flags: u16,
    pub status: u16,
    pub body_len: u32,
    pub request_id: u64,
}

impl FrameHeader {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.push(PROTOCOL_VERSION);
        out.push(self.opcode);
        out.extend_from_slice(&self.flags.to_le_bytes());
        out.extend_from_slice(&self.status.to_le_bytes());
        out.extend_from_slice(&self.body_len.to_le_bytes());
        out.extend_from_slice(&self.request_id.to_le_bytes());
    }

    /// Parses a header and checks what keeps framing intact: magic, version, body length.
    /// An error here means the byte stream can no longer be split into frames.
    pub fn decode(bytes: &[u8; HEADER_LEN], max_body: u32) -> Result<FrameHeader, DecodeError> {
        let magic = u16::from_le_bytes([bytes[0], bytes[1]]);
        if magic != MAGIC {
            return Err(DecodeError::BadMagic { got: magic });
        }
        if bytes[2] != PROTOCOL_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                got: bytes[2],
                supported: PROTOCOL_VERSION,
            });
        }
        let body_len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if body_len > max_body {
            return Err(DecodeError::FrameTooLarge {
                len: body_len.into(),
                max: max_body.into(),
            });
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&bytes[12..20]);
        Ok(FrameHeader {
            opcode: bytes[3],
            flags: u16::from_le_bytes([bytes[4], bytes[5]]),
            status: u16::from_le_bytes([bytes[6], bytes[7]]),
            body_len,
            request_id: u64::from_le_bytes(id),
        })
    }

    /// Checks the parts of a request header that do not affect framing.
    pub fn check_request(&self) -> Result<Opcode, DecodeError> {
        if self.flags & !KNOWN_REQUEST_FLAGS != 0 {
            return Err(DecodeError::ReservedFlags { flags: self.flags });
        }
        if self.status != 0 {
            return Err(DecodeError::RequestStatus {
                status: self.status,
            });
        }
        Opcode::from_u8(self.opcode)
    }

    /// Checks that a response sets no reserved flag bit.
    pub fn check_flags(&self) -> Result<(), DecodeError> {
        if self.flags & !KNOWN_RESPONSE_FLAGS != 0 {
            return Err(DecodeError::ReservedFlags { flags: self.flags });
        }
        Ok(())
    }

    /// Checks the flags and opcode of a successful response's header.
    pub fn check_response(&self) -> Result<Opcode, DecodeError> {
        self.check_flags()?;
        Opcode::from_u8(self.opcode)
    }
}
