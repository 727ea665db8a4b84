//! Strict parser for byte sizes given on the command line or in the config file.

/// A size that could not be parsed; the message says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size '{input}': {reason} (expected a number with an optional unit: B, KiB, MiB, GiB, TiB, KB, MB, GB, TB, e.g. 4GiB)")]
pub struct SizeError {
    pub input: String,
    pub reason: &'static str,
}

const UNITS: [(&str, u64); 9] = [
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
];

/// Parses "4GiB", "512 MiB", "1000000" (bytes). Units are case-sensitive: "Gib" is refused
/// rather than guessed at, and fractions are refused so a size is always exact.
pub fn parse_size(input: &str) -> Result<u64, SizeError> {
    let err = |reason| SizeError {
        input: input.to_owned(),
        reason,
    };
    let s = input.trim();
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if digits_end == 0 {
        return Err(err("it does not start with a whole number"));
    }
    let number: u64 = s[..digits_end]
        .parse()
        .map_err(|_| err("the number does not fit in 64 bits"))?;
    let unit = s[digits_end..].trim_start();
    let multiplier = if unit.is_empty() {
        1
    } else {
        UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, m)| *m)
            .ok_or_else(|| err("unknown unit"))?
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| err("the size does not fit in 64 bits"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn parses_units() {
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("1234"), Ok(1234));
        assert_eq!(parse_size("16B"), Ok(16));
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            "",
            "GiB",
            "1.5GiB",
            "4 gib",
            "-1",
            "99999999999999999999",
            "17179869184TiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad} was accepted");
        }
    }
}
