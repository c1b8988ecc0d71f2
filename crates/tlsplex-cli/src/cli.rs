//! The command line, as clap sees it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// Many TLS servers, each on its own port, in one process.
///
/// With no command, runs the demo: the seed's two HTTPS servers on 127.0.0.1:1440 and :1441.
#[derive(Debug, Parser)]
#[command(name = "tlsplex", version, about, long_about = None)]
pub struct Cli {
    /// Log format on standard error (the level comes from RUST_LOG, default "info").
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// What to do; `demo` when absent.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The demo's options, when no command is given.
    #[command(flatten)]
    pub demo: DemoArgs,
}

/// `tlsplex demo` (and `tlsplex` alone).
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Folder for the demo's certificate and admin token (default: the platform data folder +
    /// "/tlsplex").
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The two HTTPS ports, on 127.0.0.1 [default: 1440,1441].
    #[arg(long, value_name = "PORT,PORT", value_delimiter = ',')]
    pub ports: Option<Vec<u16>>,
    /// The admin endpoint's port, on 127.0.0.1 [default: 9440].
    #[arg(long, value_name = "PORT")]
    pub admin_port: Option<u16>,
}

impl DemoArgs {
    /// Whether any option was given (they apply to the demo only).
    pub fn any(&self) -> bool {
        self.state_dir.is_some() || self.ports.is_some() || self.admin_port.is_some()
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Two HTTPS status servers on 127.0.0.1:1440 and 127.0.0.1:1441 with a self-signed
    /// certificate kept in the state folder (the seed's example).
    Demo(DemoArgs),
    /// Run the servers of a config file until SIGTERM or SIGINT.
    Run {
        /// The TOML config file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate a config file without binding anything (like `nginx -t`).
    Check {
        /// The TOML config file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Check that servers listen and complete a TLS handshake; exits non-zero if any fails.
    Probe(ProbeArgs),
    /// Session-ticket key files.
    #[command(name = "ticket-key", subcommand)]
    TicketKey(TicketKeyCommand),
    /// Talk to a running tlsplex through its admin endpoint.
    Ctl(CtlArgs),
    /// Certificates for trying things out.
    #[command(subcommand)]
    Cert(CertCommand),
}

/// `tlsplex cert …`.
#[derive(Debug, clap::Subcommand)]
pub enum CertCommand {
    /// Write a self-signed ECDSA P-256 certificate and its key (mode 0600): OUT/NAME.pem and
    /// OUT/NAME.key.
    SelfSigned(SelfSignedArgs),
}

/// `tlsplex cert self-signed`.
#[derive(Debug, clap::Args)]
pub struct SelfSignedArgs {
    /// The names it is for, comma-separated: DNS names or IP addresses (the first is also its
    /// common name), e.g. `localhost,127.0.0.1`.
    #[arg(long, value_name = "NAMES")]
    pub names: String,
    /// The folder to write to (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The file stem.
    #[arg(long, value_name = "NAME", default_value = "cert")]
    pub name: String,
    /// Days of validity.
    #[arg(long, value_name = "DAYS", default_value_t = 365)]
    pub days: i64,
}

/// `tlsplex ctl`.
#[derive(Debug, clap::Args)]
pub struct CtlArgs {
    /// The admin address (default: the `[admin] listen` of `--config`, else 127.0.0.1:9440).
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,
    /// Read the admin address and token from this config file.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the API's JSON instead of a table (for scripts).
    #[arg(long)]
    pub json: bool,
    /// A file holding the bearer token (default: the config's `token_file`, or the token the
    /// daemon wrote into its `state_dir`, or the demo's in its state folder).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The demo's state folder, to talk to a demo started with `--state-dir`.
    #[arg(long, value_name = "DIR", conflicts_with = "config")]
    pub state_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub action: CtlAction,
}

/// `tlsplex ctl …` actions.
#[derive(Debug, Subcommand)]
pub enum CtlAction {
    /// List the servers with their figures.
    Servers,
    /// List every certificate of every server, the soonest to expire first.
    Certificates,
    /// List every backend of every server's pools: health, connections, failures.
    Backends,
    /// List the certificates the ACME manager keeps: state, expiry, next order, last error.
    Acme,
    /// Reload the configuration file.
    Reload,
    /// Add a server from a file holding one `[[server]]` table's keys.
    Add {
        /// The TOML file.
        file: PathBuf,
    },
    /// Print a one-time link that logs a browser in to the dashboard (valid for 2 minutes).
    Dashboard,
    /// Stop and drain a server, and forget it until the next reload names it.
    Remove {
        /// Its name.
        name: String,
    },
    /// Stop accepting on a server and drain it; it stays in the configuration.
    Stop {
        /// Its name.
        name: String,
    },
    /// Start a configured server that was stopped.
    Start {
        /// Its name.
        name: String,
    },
}

/// `tlsplex ticket-key …`.
#[derive(Debug, Subcommand)]
pub enum TicketKeyCommand {
    /// Print a new random key file (`tlsplex ticket-key new > ticket.key`), for
    /// `[global] ticket_key_file`.
    New,
}

/// `tlsplex probe`.
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// Addresses to probe, as HOST:PORT.
    #[arg(value_name = "ADDR", required_unless_present = "config")]
    pub addresses: Vec<String>,

    /// Probe every server of this config file (SNI: the first DNS name of its certificate).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The server name to send (SNI) and to verify the certificate against.
    #[arg(long, value_name = "NAME")]
    pub servername: Option<String>,

    /// Accept any certificate (the handshake still proves the server holds the key).
    #[arg(long, conflicts_with = "ca")]
    pub insecure: bool,

    /// Verify the certificate against this CA bundle (PEM) instead of the Mozilla roots.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,

    /// Present this client certificate chain (PEM) when the server asks for one.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,

    /// The private key (PEM) of `--cert`.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,

    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Exit 1, naming it, when a certificate seen expires in fewer than this many days (for cron
    /// or a monitoring check).
    #[arg(long, value_name = "DAYS")]
    pub min_days: Option<i64>,

    /// Time allowed for connecting and for the handshake, each.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}
