//! `tlsplex`: the daemon and command line over the `tlsplex` library.
//!
//! Thin on purpose: parse arguments, load config, call the library.
#![forbid(unsafe_code)]

mod check;
mod cli;
mod demo;
mod logging;
mod probe;
mod serve;
mod signals;

use std::process::ExitCode;

use clap::Parser as _;
use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    match cli.command.unwrap_or(Command::Demo) {
        Command::Demo => demo::run(cli.state_dir),
        Command::Run { config } => match tlsplex::Config::load(&config) {
            Ok(config) => {
                let servers = config.servers.iter().map(|s| s.options()).collect();
                serve::serve(&config.global, servers, |_| {})
            }
            Err(error) => {
                eprintln!("{error}");
                ExitCode::FAILURE
            }
        },
        Command::Check { config } => check::run(&config),
        Command::Probe(args) => probe::run(args),
    }
}
