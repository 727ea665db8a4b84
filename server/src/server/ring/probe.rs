//! Whether this kernel gives the io_uring loop what it needs; the server falls back to its
//! epoll loop (and says why in the log) when it does not.

use super::recv_bufs::RecvBufs;
use io_uring::{opcode, IoUring, Probe};

/// Multishot receive (kernel 6.0) is the newest feature the loop uses; multishot accept and
/// provided buffer rings came in 5.19, the extended wait argument in 5.11.
const MIN_KERNEL: (u32, u32) = (6, 0);

/// `Ok` when the loop can run here; otherwise what is missing.
pub fn check() -> Result<(), String> {
    let release = kernel_release();
    match parse_release(&release) {
        Some(v) if v >= MIN_KERNEL => {}
        _ => {
            return Err(format!(
                "kernel {release} is older than {}.{} (multishot receive)",
                MIN_KERNEL.0, MIN_KERNEL.1
            ))
        }
    }
    let ring = IoUring::new(8).map_err(|e| format!("io_uring is unavailable: {e}"))?;
    if !ring.params().is_feature_ext_arg() {
        return Err("io_uring lacks IORING_FEAT_EXT_ARG (timed waits)".into());
    }
    let mut probe = Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| format!("io_uring opcode probe failed: {e}"))?;
    for (code, name) in [
        (opcode::Accept::CODE, "ACCEPT"),
        (opcode::Recv::CODE, "RECV"),
        (opcode::Send::CODE, "SEND"),
        (opcode::Read::CODE, "READ"),
        (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
    ] {
        if !probe.is_supported(code) {
            return Err(format!("io_uring lacks IORING_OP_{name}"));
        }
    }
    RecvBufs::register(&ring)
        .map_err(|e| format!("io_uring provided buffer rings are unavailable: {e}"))?;
    Ok(())
}

fn kernel_release() -> String {
    // SAFETY: uname(2) fills the zero-initialised struct we own.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: as above; the release field is NUL-terminated by the kernel.
    if unsafe { libc::uname(&mut u) } != 0 {
        return "unknown".into();
    }
    let bytes: Vec<u8> = u
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// "6.18.44-fc-v1045" -> (6, 18).
fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_releases_parse() {
        assert_eq!(parse_release("6.18.44-fc-v1045"), Some((6, 18)));
        assert_eq!(parse_release("5.15.0-91-generic"), Some((5, 15)));
        assert_eq!(parse_release("garbage"), None);
        assert!(parse_release("5.19.0").unwrap() < MIN_KERNEL);
    }
}
