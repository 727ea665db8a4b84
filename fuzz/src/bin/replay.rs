//! Runs every fuzz target over its corpus with stable Rust, plus seeded mutations of each
//! corpus file, so the targets run in CI without nightly or libFuzzer.
//!
//! ```text
//! replay [--mutations N] [--seed S] [TARGET...]   run (all targets when none is named)
//! replay --write-seeds                             (re)write fuzz/corpus/<target>/seed-*
//! ```
//! A panic in a target aborts with the input saved under fuzz/artifacts/<target>/.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Largest corpus file read (libFuzzer's default -max_len is 4096; recovery inputs are lists of
/// patches and stay small).
const MAX_INPUT_BYTES: usize = 1 << 20;
/// Most mutations per corpus file.
const MAX_MUTATIONS: u64 = 1_000_000;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

/// splitmix64: the mutations replay exactly from `--seed`.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn mutate(input: &[u8], state: &mut u64) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + next(state) % 4 {
        let r = next(state);
        match r % 5 {
            0 | 1 if !v.is_empty() => {
                let i = (next(state) % v.len() as u64) as usize;
                v[i] ^= 1 << ((r >> 8) % 8);
            }
            2 if !v.is_empty() => {
                let i = (next(state) % v.len() as u64) as usize;
                v[i] = next(state) as u8;
            }
            3 if !v.is_empty() => v.truncate((next(state) % v.len() as u64) as usize),
            _ => {
                let i = (next(state) % (v.len() as u64 + 1)) as usize;
                v.insert(i, next(state) as u8);
            }
        }
    }
    v
}

fn save_artifact(target: &str, input: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("artifacts")
        .join(target);
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("crash-{:016x}", xxh(input)));
    let _ = std::fs::write(&path, input);
    path
}

fn xxh(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x100_0000_01b3)
    })
}

fn run_one(name: &str, f: fn(&[u8]), input: &[u8]) -> bool {
    let ok = std::panic::catch_unwind(|| f(input)).is_ok();
    if !ok {
        eprintln!(
            "{name}: CRASH, input saved to {}",
            save_artifact(name, input).display()
        );
    }
    ok
}

fn write_seeds() -> ExitCode {
    for (name, _) in quiver_fuzz::TARGETS {
        let dir = corpus_dir(name);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            eprintln!("cannot create {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
        for (i, seed) in quiver_fuzz::seeds(name).iter().enumerate() {
            let path = dir.join(format!("seed-{i}"));
            if let Err(e) = std::fs::write(&path, seed) {
                eprintln!("cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut mutations = 0u64;
    let mut seed = 1u64;
    let mut only = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--write-seeds" => return write_seeds(),
            "--mutations" | "--seed" => {
                let Some(n) = args.next().and_then(|v| v.parse::<u64>().ok()) else {
                    eprintln!("{a} needs a number");
                    return ExitCode::FAILURE;
                };
                if a == "--seed" {
                    seed = n;
                } else if n > MAX_MUTATIONS {
                    eprintln!("--mutations {n} exceeds the limit of {MAX_MUTATIONS}");
                    return ExitCode::FAILURE;
                } else {
                    mutations = n;
                }
            }
            name => only.push(name.to_string()),
        }
    }
    let mut failed = 0;
    for (name, f) in quiver_fuzz::TARGETS {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        if let Ok(dir) = std::fs::read_dir(corpus_dir(name)) {
            let mut paths: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
            paths.sort();
            for p in paths {
                match std::fs::read(&p) {
                    Ok(b) if b.len() <= MAX_INPUT_BYTES => inputs.push(b),
                    Ok(b) => eprintln!(
                        "{name}: skipping {} ({} bytes > {MAX_INPUT_BYTES})",
                        p.display(),
                        b.len()
                    ),
                    Err(e) => eprintln!("{name}: cannot read {}: {e}", p.display()),
                }
            }
        }
        if inputs.is_empty() {
            inputs = quiver_fuzz::seeds(name);
        }
        let mut state = seed ^ xxh(name.as_bytes());
        let mut runs = 0u64;
        let mut crashes = 0u64;
        for input in &inputs {
            runs += 1;
            crashes += u64::from(!run_one(name, *f, input));
            for _ in 0..mutations {
                let m = mutate(input, &mut state);
                runs += 1;
                crashes += u64::from(!run_one(name, *f, &m));
            }
        }
        println!(
            "{name}: {} corpus inputs, {runs} executions, {crashes} crashes",
            inputs.len()
        );
        failed += crashes;
    }
    if failed > 0 {
        println!("replay: {failed} crashing inputs (seed {seed}: `--seed {seed}` replays them)");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
