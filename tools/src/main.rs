//! `quiver`: the command-line tool. All the work is in `quiver_tools::cli`.

use std::process::ExitCode;

use clap::Parser;
use quiver_tools::cli;

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(bench) = cli::command::parse_bench(&argv) {
        return ExitCode::from(cli::run_bench(&bench));
    }
    ExitCode::from(cli::run(cli::Cli::parse_from(argv)))
}
