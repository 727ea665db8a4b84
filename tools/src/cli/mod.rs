//! The `quiver` command-line tool: argument parsing, the two back ends (in-process store or
//! quiverd), and one module per command family.
//!
//! It must never panic on bad input: every failure becomes a [`CliError`] with a documented
//! exit code.

pub mod backend;
mod baseline;
mod check;
mod cluster;
pub mod command;
mod data;
mod demo;
pub mod error;
mod export;
mod group;
mod history;
mod inspect;
pub mod json;
pub mod load;
pub mod output;
pub mod parse;
mod progress;
mod quality;
mod security;
pub mod training;

use std::time::{SystemTime, UNIX_EPOCH};

pub use command::Cli;
pub use error::{CliError, CliResult};

use backend::{Backend, Embedded, Remote};
use command::{Command, DEFAULT_ADDR};
use output::Out;

/// Runs one parsed command line. Returns the process exit code.
pub fn run(cli: Cli) -> u8 {
    let out = Out { json: cli.json };
    match dispatch(&cli, out) {
        Ok(()) => error::exit::OK,
        Err(err) => {
            report_error(&err, out);
            err.exit_code()
        }
    }
}

fn report_error(err: &CliError, out: Out) {
    // A failed check has printed its own document, which says what failed.
    if out.json && !matches!(err, CliError::CheckFailed(_)) {
        let doc = serde_json::json!({
            "error": { "kind": err.kind(), "message": err.to_string(), "exit_code": err.exit_code() }
        });
        println!("{doc}");
    }
    eprintln!("quiver: error: {err}");
}

/// Runs `quiver bench ...` (parsed by [`command::parse_bench`]). Returns the exit code.
pub fn run_bench(bench: &command::BenchCli) -> u8 {
    u8::try_from(crate::bench::run(&bench.args)).unwrap_or(error::exit::INTERNAL)
}

fn dispatch(cli: &Cli, out: Out) -> CliResult<()> {
    match &cli.command {
        Command::Inspect(args) => return inspect::run(args, out),
        Command::Bench(_) => {
            return Err(CliError::usage("write `quiver bench` first, then its flags: global flags do not apply to it"))
        }
        Command::Demo(args) if cli.data.is_none() && cli.addr.is_none() => {
            return Err(CliError::usage(
                "demo needs a store: pass --data PATH (e.g. --data ./quiver-data/demo.db) or --addr HOST:PORT",
            ))
        }
        _ => {}
    }
    let mut backend = open_backend(cli)?;
    let result = run_command(&cli.command, backend.as_mut(), out);
    let closed = backend.close();
    result.and(closed)
}

fn run_command(command: &Command, backend: &mut dyn Backend, out: Out) -> CliResult<()> {
    match command {
        Command::Ping => data::ping(backend, out),
        Command::Stats(args) => match &args.group {
            Some(group) => quality::stats(group, args.feature.as_deref(), backend, out),
            None => data::stats(backend, out),
        },
        Command::Check(args) => check::run(args, backend, out),
        Command::Baseline(cmd) => baseline::run(cmd, backend, out),
        Command::Group(cmd) => group::run(cmd, backend, out),
        Command::Put(args) => data::put(args, backend, out),
        Command::Get(args) => data::get(args, backend, out),
        Command::History(args) => history::run(args, backend, out),
        Command::Delete(args) => data::delete(args, backend, out),
        Command::Load(args) => load::run(args, backend, out),
        Command::Export(args) => export::run(args, backend, out),
        Command::Demo(args) => demo::run(args, backend, out),
        Command::TrainingSet(args) => training::run(args, backend, out),
        Command::User(cmd) => security::user(cmd, backend, out),
        Command::Role(cmd) => security::role(cmd, backend, out),
        Command::Whoami => security::whoami(backend, out),
        Command::Cluster(cmd) => cluster::run(cmd, backend, out),
        Command::Inspect(_) | Command::Bench(_) => {
            unreachable!("dispatched before a backend is opened")
        }
    }
}

fn open_backend(cli: &Cli) -> CliResult<Box<dyn Backend>> {
    match &cli.data {
        Some(path) => Ok(Box::new(Embedded::open(path, cli.data_size)?)),
        None => {
            let addr = cli.addr.as_deref().unwrap_or(DEFAULT_ADDR);
            let login = match (&cli.login_user, &cli.password) {
                (Some(user), Some(password)) => Some(format!("{user}:{password}")),
                (Some(_), None) => {
                    return Err(CliError::usage(
                        "--user needs --password (or QUIVER_PASSWORD)",
                    ))
                }
                (None, _) => cli.auth_token.clone(),
            };
            let tls = quiver_server::tls::client_from_flags(
                cli.tls,
                cli.tls_ca.as_deref(),
                cli.tls_cert.as_deref(),
                cli.tls_key.as_deref(),
            )
            .map_err(CliError::Usage)?;
            Ok(Box::new(Remote::connect(addr, login.as_deref(), tls)?))
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
