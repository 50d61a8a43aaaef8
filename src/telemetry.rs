//! Logging: one line per event on standard error, as JSON (for a log pipeline) or as text (for a
//! person at a terminal). What may and may not be logged is written down in `docs/LOGGING.md`;
//! the short form is: ids, names, decisions, statuses and timings, never a credential, key,
//! signature, SAS, broker link code, request body or header.
//!
//! Every line written while a request is handled carries that request's `request_id` (the
//! `x-request-id` response header, set by `api::router`), so one request's lines can be found
//! from the id a user reports or a problem document's `error_id`.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// How log lines are written (`log.format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Text when standard error is a terminal, JSON lines otherwise (a container, a service
    /// manager, a pipe): what a person or a collector reading the stream needs.
    Auto,
    Json,
    Text,
}

impl LogFormat {
    /// Whether lines are JSON, given whether standard error is a terminal.
    pub fn is_json(self, stderr_is_terminal: bool) -> bool {
        match self {
            LogFormat::Auto => !stderr_is_terminal,
            LogFormat::Json => true,
            LogFormat::Text => false,
        }
    }
}

/// Installs the global subscriber, writing to standard error. `RUST_LOG` overrides `level`.
///
/// A JSON line is one object: `timestamp`, `level`, the event's fields (`message` among them)
/// at the top level, and `span` with the innermost span's fields (for a request: `method`,
/// `path`, `request_id`).
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    // Installing twice (tests) is harmless: the first subscriber stays.
    let _ = if format.is_json(std::io::stderr().is_terminal()) {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::LogFormat;

    #[test]
    fn auto_is_text_on_a_terminal_and_json_otherwise() {
        assert!(!LogFormat::Auto.is_json(true));
        assert!(LogFormat::Auto.is_json(false));
        assert!(LogFormat::Json.is_json(true));
        assert!(!LogFormat::Text.is_json(false));
    }
}
