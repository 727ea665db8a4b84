//! What an io_uring completion belongs to, packed in its 64-bit `user_data`: the kind of
//! operation in the top byte, a generation in the next 24 bits (so that a completion for a
//! closed connection never lands on the connection that reuses its slot), and an index.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Accept = 1,
    Recv = 2,
    Send = 3,
    /// A device read of a GET.
    Read = 4,
    /// The loop's eventfd read.
    Wake = 5,
    /// An `IORING_OP_ASYNC_CANCEL` of ours (its own completion carries nothing).
    Cancel = 6,
}

const GEN_MASK: u32 = (1 << 24) - 1;

pub fn pack(kind: Kind, generation: u32, index: u32) -> u64 {
    (kind as u64) << 56 | ((generation & GEN_MASK) as u64) << 32 | index as u64
}

/// (kind, generation, index); `None` for a value we never packed.
pub fn unpack(user_data: u64) -> Option<(Kind, u32, u32)> {
    let kind = match user_data >> 56 {
        1 => Kind::Accept,
        2 => Kind::Recv,
        3 => Kind::Send,
        4 => Kind::Read,
        5 => Kind::Wake,
        6 => Kind::Cancel,
        _ => return None,
    };
    Some((kind, (user_data >> 32) as u32 & GEN_MASK, user_data as u32))
}

/// Generations wrap within the 24 bits a token carries.
pub fn next_generation(generation: u32) -> u32 {
    generation.wrapping_add(1) & GEN_MASK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for kind in [
            Kind::Accept,
            Kind::Recv,
            Kind::Send,
            Kind::Read,
            Kind::Wake,
            Kind::Cancel,
        ] {
            for (g, i) in [(0, 0), (GEN_MASK, u32::MAX), (12345, 678)] {
                assert_eq!(unpack(pack(kind, g, i)), Some((kind, g, i)));
            }
        }
        assert_eq!(unpack(0), None);
        assert_eq!(next_generation(GEN_MASK), 0);
    }
}
