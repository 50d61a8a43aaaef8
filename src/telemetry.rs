//! Logging. Conventions: log ids, names and decisions, never credentials, keys, signatures,
//! SAS URLs, request bodies or headers. Requests are logged by method, path, status and
//! latency only (see `api::router`).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber, writing to standard error. `RUST_LOG` overrides `level`.
pub fn init(json: bool, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    // Installing twice (tests) is harmless: the first subscriber stays.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
