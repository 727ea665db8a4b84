//! Where a record lives on the device, and its 62-bit packed form.

use crate::error::IndexError;

/// Where a record lives. Units are 16-byte storage units.
///
/// The fields are public for speed; build values from untrusted input with [`Location::new`],
/// which checks every field against the packed widths.
///
/// ## Format
///
/// Packed into one `u64` inside the index (see [`Location::pack`]):
///
/// | bits  | field          | width |
/// | ----- | -------------- | ----- |
/// | 38-61 | `block`        | 24    |
/// | 18-37 | `offset_units` | 20    |
/// | 0-17  | `len_units`    | 18    |
/// | 62-63 | always 0       | 2     |
///
/// The two top bits are never set by a packed location; the index uses `u64::MAX` to mark a
/// vacant slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    /// Write block number on the device.
    pub block: u32,
    /// Start of the record inside the block, in 16-byte units.
    pub offset_units: u32,
    /// Length of the record, in 16-byte units.
    pub len_units: u32,
}

const BLOCK_BITS: u32 = 24;
const OFFSET_BITS: u32 = 20;
const LEN_BITS: u32 = 18;
const OFFSET_SHIFT: u32 = LEN_BITS;
const BLOCK_SHIFT: u32 = LEN_BITS + OFFSET_BITS;
const _: () = assert!(BLOCK_BITS + OFFSET_BITS + LEN_BITS == 62);

impl Location {
    /// Largest block number: 24 bits.
    pub const MAX_BLOCK: u32 = (1 << BLOCK_BITS) - 1;
    /// Largest offset inside a block: 20 bits of 16-byte units, so 16 MiB blocks.
    pub const MAX_OFFSET_UNITS: u32 = (1 << OFFSET_BITS) - 1;
    /// Largest record length: 18 bits of 16-byte units, so 4 MiB records.
    pub const MAX_LEN_UNITS: u32 = (1 << LEN_BITS) - 1;

    /// Builds a location, checking each field against its packed width.
    pub fn new(block: u32, offset_units: u32, len_units: u32) -> Result<Location, IndexError> {
        check("block", block, Self::MAX_BLOCK)?;
        check("offset_units", offset_units, Self::MAX_OFFSET_UNITS)?;
        check("len_units", len_units, Self::MAX_LEN_UNITS)?;
        Ok(Location {
            block,
            offset_units,
            len_units,
        })
    }

    /// Whether every field fits its packed width.
    pub fn is_valid(&self) -> bool {
        self.block <= Self::MAX_BLOCK
            && self.offset_units <= Self::MAX_OFFSET_UNITS
            && self.len_units <= Self::MAX_LEN_UNITS
    }

    /// Packs into 62 bits; the result never has bits 62-63 set. A field wider than its limit
    /// is a broken invariant (the engine refuses devices whose blocks a location cannot name,
    /// and checks every length): it panics, in release builds too, rather than be truncated
    /// into a location that points somewhere else.
    #[inline]
    pub fn pack(&self) -> u64 {
        assert!(
            self.is_valid(),
            "location {self:?} does not fit its packed widths"
        );
        let block = u64::from(self.block & Self::MAX_BLOCK);
        let offset = u64::from(self.offset_units & Self::MAX_OFFSET_UNITS);
        let len = u64::from(self.len_units & Self::MAX_LEN_UNITS);
        (block << BLOCK_SHIFT) | (offset << OFFSET_SHIFT) | len
    }

    /// Inverse of [`Location::pack`].
    #[inline]
    pub fn unpack(packed: u64) -> Location {
        Location {
            block: (packed >> BLOCK_SHIFT) as u32 & Self::MAX_BLOCK,
            offset_units: (packed >> OFFSET_SHIFT) as u32 & Self::MAX_OFFSET_UNITS,
            len_units: packed as u32 & Self::MAX_LEN_UNITS,
        }
    }
}

fn check(field: &'static str, value: u32, max: u32) -> Result<(), IndexError> {
    if value > max {
        return Err(IndexError::LocationOutOfRange { field, value, max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_accepts_the_maxima_and_round_trips() {
        let loc = Location::new(
            Location::MAX_BLOCK,
            Location::MAX_OFFSET_UNITS,
            Location::MAX_LEN_UNITS,
        )
        .unwrap();
        assert_eq!(Location::unpack(loc.pack()), loc);
        assert_eq!(loc.pack() >> 62, 0);
        let zero = Location::new(0, 0, 0).unwrap();
        assert_eq!(zero.pack(), 0);
        assert_eq!(Location::unpack(0), zero);
    }

    #[test]
    fn fields_do_not_bleed_into_each_other() {
        let loc = Location::new(0x00AB_CDEF, 0x0001_2345, 0x0002_6789).unwrap();
        assert_eq!(Location::unpack(loc.pack()), loc);
        let only_len = Location::new(0, 0, Location::MAX_LEN_UNITS).unwrap();
        assert_eq!(only_len.pack(), u64::from(Location::MAX_LEN_UNITS));
    }

    #[test]
    fn new_names_the_field_and_the_limit() {
        let err = Location::new(1 << 24, 0, 0).unwrap_err();
        assert_eq!(
            err,
            IndexError::LocationOutOfRange {
                field: "block",
                value: 1 << 24,
                max: Location::MAX_BLOCK
            }
        );
        assert_eq!(
            err.to_string(),
            "location block 16777216 exceeds the limit 16777215"
        );
        let err = Location::new(0, 1 << 20, 0).unwrap_err();
        assert!(err.to_string().contains("offset_units"), "{err}");
        let err = Location::new(0, 0, 1 << 18).unwrap_err();
        assert!(err.to_string().contains("len_units 262144"), "{err}");
    }

    #[test]
    #[should_panic(expected = "does not fit its packed widths")]
    fn packing_a_block_past_the_limit_panics_instead_of_truncating() {
        let past = Location {
            block: Location::MAX_BLOCK + 1,
            offset_units: 4,
            len_units: 8,
        };
        // Truncated, it would pack as block 0: another record's place.
        past.pack();
    }

    #[test]
    fn is_valid_matches_new() {
        let bad = Location {
            block: 0,
            offset_units: 0,
            len_units: Location::MAX_LEN_UNITS + 1,
        };
        assert!(!bad.is_valid());
        assert!(Location::new(5, 6, 7).unwrap().is_valid());
    }
}
