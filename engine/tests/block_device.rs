//! The engine on a real block device: a loop device over a file, attached and detached here.
//!
//! It needs root and `losetup` (util-linux). Without them the test says so and passes, except
//! in CI (`CI=true`), where a missing prerequisite fails it: a skipped test proves nothing.

use std::process::Command;

use quiver_engine::{Config, Engine, WriteOptions};

struct LoopDevice(String);

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

fn attach(file: &std::path::Path) -> Result<LoopDevice, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root".into());
    }
    let out = Command::new("losetup")
        .args(["-f", "--show", "--direct-io=on"])
        .arg(file)
        .output()
        .map_err(|e| format!("losetup unavailable: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "losetup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(LoopDevice(
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    ))
}

#[test]
fn loop_device_round_trip_and_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backing.img");
    std::fs::File::create(&file)
        .unwrap()
        .set_len(32 << 20)
        .unwrap();
    let dev = match attach(&file) {
        Ok(d) => d,
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("loop device unavailable in CI (CI=true): {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED loop_device_round_trip_and_recovery: {why}");
            return;
        }
    };
    let cfg = || Config {
        write_block_bytes: 256 << 10,
        checkpoint_path: Some(dir.path().join("loop.ckpt")),
        ..Config::block_device(&dev.0)
    };
    let w = WriteOptions {
        durability: Some(quiver_engine::Durability::Sync),
        ttl_s: None,
    };
    {
        let e = Engine::open(cfg()).unwrap();
        let stats = e.stats();
        assert_eq!(
            (stats.backend.as_str(), stats.direct_io),
            ("io_uring", true),
            "the block device must be driven by io_uring with O_DIRECT"
        );
        for i in 0..600u32 {
            e.put(1, &i.to_le_bytes(), &vec![i as u8; 600], &w).unwrap();
        }
        for i in 0..150u32 {
            e.delete(1, &i.to_le_bytes(), &w).unwrap();
        }
        // No close: recovery must find every sync write by scanning the device.
        drop(e);
    }
    std::fs::remove_file(dir.path().join("loop.ckpt")).ok();
    let e = Engine::open(cfg()).unwrap();
    assert_eq!(e.recovery_report().mode, "scan");
    for i in 0..600u32 {
        let got = e.get(1, &i.to_le_bytes()).unwrap();
        if i < 150 {
            assert!(got.is_none(), "deleted {i} came back");
        } else {
            assert_eq!(got.unwrap().value, vec![i as u8; 600]);
        }
    }
    e.close().unwrap();
    // A device holding something else is refused, not overwritten.
    let other = dir.path().join("other.img");
    std::fs::write(&other, vec![7u8; 8 << 20]).unwrap();
    let dev2 = attach(&other).unwrap();
    let refused = Engine::open(Config::block_device(&dev2.0));
    assert!(
        matches!(
            refused,
            Err(quiver_engine::Error::Wal(quiver_wal::Error::NotOurs(_)))
        ),
        "{:?}",
        refused.err()
    );
}
