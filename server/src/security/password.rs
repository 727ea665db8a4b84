//! Salted slow hashes of passwords (argon2id, a fresh random salt per hash, stored as a PHC
//! string that carries its own parameters).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// argon2id with 19 MiB of memory, 2 passes, 1 lane: the OWASP minimum for argon2id. A
/// verification costs a loop thread some milliseconds, once per login (docs/SECURITY.md).
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("constant argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The PHC string of `password` under a fresh salt.
pub fn hash(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// True when `password` matches the stored PHC string (false for a damaged one).
pub fn verify(stored: &str, password: &[u8]) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => hasher().verify_password(password, &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Spends the time of one verification on a hash that cannot match: a login for a user that
/// does not exist takes as long as one with a wrong password.
pub fn verify_nobody(password: &[u8]) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let stored = DUMMY.get_or_init(|| hash("no user has this password").unwrap_or_default());
    let _ = verify(stored, password);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_salted_and_verify() {
        let a = hash("correct horse").unwrap();
        let b = hash("correct horse").unwrap();
        assert_ne!(a, b, "two hashes of one password share a salt");
        assert!(a.starts_with("$argon2id$"));
        assert!(!a.contains("correct horse"));
        assert!(verify(&a, b"correct horse"));
        assert!(!verify(&a, b"correct horsE"));
        assert!(!verify("not a hash", b"correct horse"));
    }
}
