//! The `sasgate` command line: argument parsing and dispatch. Each subcommand lives in its own
//! module and returns the process exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::sas::lint::Severity;

mod check;
mod client;
mod lint;
mod server;

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

/// The configuration file option shared by server-side commands.
#[derive(Debug, clap::Args)]
struct ConfigArg {
    /// The configuration file (default config/sasgate.toml when it exists).
    #[arg(long, short = 'c', env = "SASGATE_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker.
    Serve(ConfigArg),
    /// Probe the local server's GET /healthz (the container image's HEALTHCHECK); exit 0 when it
    /// answers 200. Reads the listen address and whether TLS is on from the configuration.
    Healthcheck(ConfigArg),
    /// The hash-chained ledger: verify it, export it, print its head (reads the ledger named
    /// in the configuration directly).
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Print a new API key and the SHA-256 to put in `principals.<name>.api_key_sha256`.
    Keygen,
    /// Development helpers for a local emulator.
    #[command(subcommand)]
    Dev(DevCommand),
    /// Check or explain the policy exactly as the server loads it.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Check a deployment's configuration and policy as `serve` would, without binding a port
    /// or contacting Azure.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Ask the broker for a SAS (reads SASGATE_URL and an OIDC token or SASGATE_TOKEN)
    ///
    /// Credentials: with --auth auto (the default) the first of these that is present is used:
    ///   1. --oidc-token-file PATH: an OIDC token (JWT) in a file (GitLab id_tokens written to a
    ///      file, a Kubernetes projected service account token);
    ///   2. SASGATE_OIDC_TOKEN: an OIDC token (GitLab CI: `id_tokens: SASGATE_OIDC_TOKEN: aud:
    ///      sasgate`);
    ///   3. GitHub Actions: when ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN
    ///      are set (the job has `permissions: id-token: write`), an ID token for --audience;
    ///   4. SASGATE_TOKEN: a sasgate API key (sgk_…).
    ///
    /// --auth oidc uses only 1-3 and fails when none is present; --auth api-key uses only 4.
    /// A source that is present but unusable (unreadable file, empty token, refused GitHub
    /// request) is an error; the next one is not tried. Tokens are never printed.
    #[command(verbatim_doc_comment)]
    Mint {
        #[command(flatten)]
        request: RequestArgs,
        /// How to print the token.
        #[arg(long, value_enum, default_value_t = client::Output::Url)]
        output: client::Output,
        /// Which credential to present (order above).
        #[arg(long, value_enum, default_value_t = client::AuthMode::Auto)]
        auth: client::AuthMode,
        /// Read the OIDC token (JWT) from this file; surrounding whitespace is ignored.
        #[arg(long, value_name = "PATH")]
        oidc_token_file: Option<PathBuf>,
        /// The audience of the ID token asked of GitHub Actions (tokens from a file or
        /// SASGATE_OIDC_TOKEN carry the audience they were issued for).
        #[arg(long, default_value = "sasgate")]
        audience: String,
    },
    /// Revoke an issuance (admins; reads SASGATE_URL and SASGATE_TOKEN) and print what that
    /// achieved.
    Revoke {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Emergency measures (admins; reads SASGATE_URL and SASGATE_TOKEN).
    #[command(subcommand)]
    Emergency(EmergencyCommand),
    /// List or show issuances (reads SASGATE_URL and SASGATE_TOKEN).
    #[command(subcommand)]
    Issuances(IssuancesCommand),
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
        paths: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        #[arg(long, value_enum, default_value_t = FailOn::High)]
        fail_on: FailOn,
    },
}

/// What to ask for: the fields of a mint request, shared by `mint` and `policy explain`.
#[derive(Debug, clap::Args)]
struct RequestArgs {
    #[arg(long)]
    account: String,
    #[arg(long)]
    container: String,
    /// One blob; leave out for container scope.
    #[arg(long)]
    blob: Option<String>,
    /// Permission letters (default r).
    #[arg(long)]
    perms: Option<String>,
    /// Lifetime, e.g. 15m (default: the rule's default).
    #[arg(long)]
    ttl: Option<String>,
    /// Restrict to an IPv4 address, range or CIDR block.
    #[arg(long)]
    ip: Option<String>,
    /// Why you need it (required by some rules).
    #[arg(long)]
    reason: Option<String>,
}

impl RequestArgs {
    /// The `POST /v1/tokens` body.
    fn to_json(&self) -> serde_json::Value {
        let mut body = serde_json::json!({ "account": self.account, "container": self.container });
        for (k, v) in [
            ("blob", &self.blob),
            ("permissions", &self.perms),
            ("ttl", &self.ttl),
            ("ip", &self.ip),
            ("reason", &self.reason),
        ] {
            if let Some(v) = v {
                body[k] = serde_json::Value::String(v.clone());
            }
        }
        body
    }
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Load the configuration and every policy file as the server would; exit 1 on any error.
    Check(ConfigArg),
    /// Show the decision, rule by rule, for a principal and a request.
    Explain {
        #[command(flatten)]
        config: ConfigArg,
        /// A configured principal (its roles are taken from the configuration).
        #[arg(long)]
        principal: String,
        #[command(flatten)]
        request: RequestArgs,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate the configuration and policy as `serve` would, and print a summary.
    ///
    /// Loads the configuration, the policy, the OIDC issuers (JWKS files) and every account's
    /// credentials as `serve` does at start-up, and prints the accounts, rules, issuers, ledger,
    /// limits and every warning. No port is bound, the ledger is not opened and Azure is not
    /// contacted. Exit status 0 when valid, 2 with every problem listed. Secrets (keys, client
    /// secrets, passwords) are never printed.
    Check(ConfigArg),
}

#[derive(Debug, Subcommand)]
enum EmergencyCommand {
    /// Delete every stored access policy sasgate owns on every container of the account:
    /// every policy-bound token stops within 30 seconds.
    RevokePolicies {
        #[arg(long)]
        account: String,
        #[arg(long)]
        reason: String,
    },
    /// Revoke every user delegation key of the account through Azure Resource Manager: every
    /// user delegation SAS of the account stops (after Azure's cache delay).
    RevokeDelegationKeys {
        #[arg(long)]
        account: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
enum LedgerCommand {
    /// Check the whole chain and every issuance row against it. Exit status 1 names the first
    /// bad record (deleted, edited, inserted or reordered).
    Verify {
        #[command(flatten)]
        config: ConfigArg,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// A head recorded earlier (`<seq>:<sha256>`, from `sasgate ledger head`): the entry
        /// at that seq must still have that hash. Without an anchor kept elsewhere, someone
        /// with write access to the database could rewrite the whole chain consistently.
        #[arg(long)]
        anchor: Vec<String>,
    },
    /// Stream the chain as JSON lines (for a SIEM), oldest first.
    Export {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_enum, default_value_t = server::ExportFormat::Jsonl)]
        format: server::ExportFormat,
        /// Only entries after this sequence number (to resume).
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
    /// Print the chain head `<seq>:<sha256>`, to anchor it elsewhere.
    Head(ConfigArg),
}

#[derive(Debug, Subcommand)]
enum DevCommand {
    /// Create the demo containers and blobs on every configured local emulator account.
    Seed(ConfigArg),
}

#[derive(Debug, Subcommand)]
enum IssuancesCommand {
    /// List issuances, newest first (admins).
    List {
        #[arg(long)]
        principal: Option<String>,
        #[arg(long)]
        account: Option<String>,
        #[arg(long)]
        container: Option<String>,
        /// active, expired or revoked.
        #[arg(long)]
        status: Option<String>,
        /// RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        limit: Option<String>,
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one issuance.
    Show { id: String },
    /// Find the issuance behind a leaked SAS URL (admins). Give `-` to read it from standard input.
    Lookup { url: String },
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
        Command::Keygen => server::keygen(),
        Command::Policy(PolicyCommand::Check(c)) => server::policy_check(c.config.as_deref()),
        Command::Policy(PolicyCommand::Explain {
            config,
            principal,
            request,
        }) => server::policy_explain(config.config.as_deref(), &principal, &request.to_json()),
        Command::Serve(c) => block_on(server::serve(c.config)),
        Command::Healthcheck(c) => block_on(server::healthcheck(c.config.as_deref())),
        Command::Config(ConfigCommand::Check(c)) => {
            block_on(check::config_check(c.config.as_deref()))
        }
        Command::Ledger(LedgerCommand::Verify {
            config,
            json,
            anchor,
        }) => block_on(server::ledger_verify(
            config.config.as_deref(),
            json,
            &anchor,
        )),
        Command::Ledger(LedgerCommand::Export {
            config,
            format,
            after,
        }) => block_on(server::ledger_export(
            config.config.as_deref(),
            format,
            after,
        )),
        Command::Ledger(LedgerCommand::Head(c)) => {
            block_on(server::ledger_head(c.config.as_deref()))
        }
        Command::Dev(DevCommand::Seed(c)) => block_on(server::dev_seed(c.config.as_deref())),
        Command::Mint {
            request,
            output,
            auth,
            oidc_token_file,
            audience,
        } => block_on(client::mint(
            &request.to_json(),
            output,
            &client::CredentialArgs {
                auth,
                oidc_token_file,
                audience,
            },
        )),
        Command::Issuances(IssuancesCommand::List {
            principal,
            account,
            container,
            status,
            since,
            until,
            limit,
            cursor,
            json,
        }) => block_on(client::list(client::ListArgs {
            filters: vec![
                ("principal", principal),
                ("account", account),
                ("container", container),
                ("status", status),
                ("since", since),
                ("until", until),
                ("limit", limit),
                ("cursor", cursor),
            ],
            json,
        })),
        Command::Issuances(IssuancesCommand::Show { id }) => block_on(client::show(&id)),
        Command::Revoke { id, reason } => block_on(client::revoke(&id, &reason)),
        Command::Emergency(EmergencyCommand::RevokePolicies { account, reason }) => {
            block_on(client::emergency("revoke-policies", &account, &reason))
        }
        Command::Emergency(EmergencyCommand::RevokeDelegationKeys { account, reason }) => block_on(
            client::emergency("revoke-delegation-keys", &account, &reason),
        ),
        Command::Issuances(IssuancesCommand::Lookup { url }) => block_on(client::lookup(&url)),
    }
}

fn block_on(f: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(f),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(1)
        }
    }
}
