//! `tlsplex`: the daemon and command line over the `tlsplex` library.
//!
//! Thin on purpose: parse arguments, load config, call the library.
#![forbid(unsafe_code)]

mod cert;
mod check;
mod cli;
mod ctl;
mod demo;
mod limits;
mod logging;
mod privileges;
mod probe;
mod serve;
mod signals;
mod systemd;
mod table;

use std::process::ExitCode;

use clap::Parser as _;
use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    if cli.command.is_some() && cli.demo.any() {
        eprintln!("tlsplex: --state-dir, --ports and --admin-port are the demo's: write them after `demo`, or with no command");
        return ExitCode::from(2);
    }
    match cli.command.unwrap_or(Command::Demo(cli.demo)) {
        Command::Demo(args) => demo::run(&args),
        Command::Run { config: path } => match tlsplex::config::Config::load(&path) {
            Ok(config) => {
                for warning in &config.warnings {
                    tracing::warn!(file = %path.display(), "{warning}");
                }
                let global = config.global.clone();
                let plan = tlsplex::daemon::DaemonPlan::from_config(&path, config);
                serve::serve(&global, plan, |_, _| {})
            }
            Err(error) => {
                eprintln!("{error}");
                ExitCode::FAILURE
            }
        },
        Command::Check { config } => check::run(&config),
        Command::Probe(args) => probe::run(args),
        Command::Ctl(args) => ctl::run(args),
        Command::Cert(cli::CertCommand::SelfSigned(args)) => cert::run_self_signed(&args),
        Command::TicketKey(cli::TicketKeyCommand::New) => match tlsplex::tls::new_ticket_key_file()
        {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("tlsplex: {error}");
                ExitCode::FAILURE
            }
        },
    }
}
