//! The `sasgate` command line: argument parsing and dispatch. Each subcommand lives in its own
//! module and returns the process exit code.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::sas::lint::Severity;

mod lint;

/// sasgate: short-lived, scoped Azure Storage SAS tokens from policy, with every issuance logged.
#[derive(Debug, Parser)]
#[command(name = "sasgate", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Output formats shared by the reporting commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
}

/// The threshold at which `lint` and `scan` exit non-zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    Info,
    Low,
    Medium,
    High,
    Critical,
    /// Always exit 0 when the input could be read.
    Never,
}

impl FailOn {
    fn reached_by(self, worst: Severity) -> bool {
        let threshold = match self {
            FailOn::Info => Severity::Info,
            FailOn::Low => Severity::Low,
            FailOn::Medium => Severity::Medium,
            FailOn::High => Severity::High,
            FailOn::Critical => Severity::Critical,
            FailOn::Never => return false,
        };
        worst >= threshold
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Grade one SAS URL or query string. Give `-` to read it from standard input (keeps it out of
    /// shell history). Exit status 1 when the worst finding reaches --fail-on, 2 when the input is
    /// not a SAS.
    Lint {
        /// The SAS URL or query string, or `-` for standard input.
        url: String,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        #[arg(long, value_enum, default_value_t = FailOn::High)]
        fail_on: FailOn,
    },
    /// Find SAS URLs and bare SAS query strings in files and grade each; suits a pre-commit hook
    /// (`sasgate scan --fail-on high FILES…`). Directories are walked (`.git` skipped); binary
    /// files and files over 10 MiB are passed over. Exit status 1 when any finding reaches
    /// --fail-on.
    Scan {
        /// Files or directories to scan.
        #[arg(required = true)]
        paths: Vec<std::path::PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        #[arg(long, value_enum, default_value_t = FailOn::High)]
        fail_on: FailOn,
    },
}

/// Runs the command line and returns the exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let now = chrono::Utc::now();
    match cli.command {
        Command::Lint {
            url,
            format,
            fail_on,
        } => lint::lint(&url, format, fail_on, now),
        Command::Scan {
            paths,
            format,
            fail_on,
        } => lint::scan(&paths, format, fail_on, now),
    }
}
