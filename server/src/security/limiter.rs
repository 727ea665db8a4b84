//! Failed logins per client address: past [`MAX_FAILED_LOGINS`] in one window, an address's
//! logins are refused without looking at the credentials (and without the cost of a hash)
//! until its window ends.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failed logins an address may make in one window.
pub const MAX_FAILED_LOGINS: u32 = 10;
/// The window's length.
pub const FAILED_LOGIN_WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at once; past it, windows that ended are dropped, then the oldest.
const MAX_TRACKED: usize = 65_536;

#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl LoginLimiter {
    /// `Err(seconds to wait)` while `addr` is over its limit.
    pub fn check(&self, addr: IpAddr, now: Instant) -> Result<(), u64> {
        let map = self.failures.lock();
        match map.get(&addr) {
            Some((start, n)) if *n >= MAX_FAILED_LOGINS => {
                let end = *start + FAILED_LOGIN_WINDOW;
                if now < end {
                    Err((end - now).as_secs().max(1))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    pub fn failed(&self, addr: IpAddr, now: Instant) {
        let mut map = self.failures.lock();
        if map.len() >= MAX_TRACKED && !map.contains_key(&addr) {
            map.retain(|_, (start, _)| now.duration_since(*start) < FAILED_LOGIN_WINDOW);
            if map.len() >= MAX_TRACKED {
                if let Some(oldest) = map.iter().min_by_key(|(_, (s, _))| *s).map(|(a, _)| *a) {
                    map.remove(&oldest);
                }
            }
        }
        let entry = map.entry(addr).or_insert((now, 0));
        if now.duration_since(entry.0) >= FAILED_LOGIN_WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_address_and_window() {
        let l = LoginLimiter::default();
        let (a, b) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t = Instant::now();
        for _ in 0..MAX_FAILED_LOGINS {
            assert!(l.check(a, t).is_ok());
            l.failed(a, t);
        }
        assert!(l.check(a, t).is_err());
        assert!(l.check(b, t).is_ok(), "another address is not limited");
        assert!(
            l.check(a, t + FAILED_LOGIN_WINDOW).is_ok(),
            "the window ends"
        );
    }
}
