//! Handshake token check.

use subtle::ConstantTimeEq;

/// Compares a presented token with the configured one in time independent of where they
/// differ. `ct_eq` on slices of unequal length returns false at once: the length of the
/// token is not treated as secret, its bytes are.
pub fn token_matches(expected: &[u8], presented: &[u8]) -> bool {
    expected.ct_eq(presented).into()
}

#[cfg(test)]
mod tests {
    use super::token_matches;

    #[test]
    fn compares_tokens() {
        assert!(token_matches(b"secret", b"secret"));
        assert!(!token_matches(b"secret", b"secreT"));
        assert!(!token_matches(b"secret", b"secret2"));
        assert!(!token_matches(b"secret", b""));
    }
}
