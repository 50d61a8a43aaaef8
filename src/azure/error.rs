//! Errors of the outbound Azure Storage calls.
//!
//! No variant carries a key, an `Authorization` header, a bearer token or the service's free-text
//! `<Message>` (Azure's authentication failures quote the request's signature there). What is kept
//! is what an operator needs: the operation, the HTTP status, Azure's stable error code and the
//! request id to quote to Azure support.

/// An outbound Azure Storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum AzureError {
    /// The service answered with an unexpected HTTP status.
    #[error(
        "{operation}: Azure Storage answered HTTP {status}{}{}",
        code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default(),
        request_id.as_deref().map(|r| format!(", request id {r}")).unwrap_or_default()
    )]
    Status {
        /// The client method, e.g. `set_container_acl`.
        operation: &'static str,
        /// The HTTP status code.
        status: u16,
        /// Azure's error code (`x-ms-error-code` header, else the body's `<Code>`), e.g.
        /// `ContainerNotFound`, `AuthenticationFailed`.
        code: Option<String>,
        /// `x-ms-request-id`, for Azure support.
        request_id: Option<String>,
    },
    /// The request could not be sent or its response could not be received (DNS, TCP, TLS,
    /// timeout).
    #[error("{operation}: could not reach Azure Storage: {}", chain(source))]
    Transport {
        /// The client method.
        operation: &'static str,
        /// The underlying error (the URL it names carries no credential).
        #[source]
        source: reqwest::Error,
    },
    /// The service answered with a body this client cannot read.
    #[error("{operation}: unreadable response from Azure Storage: {detail}")]
    InvalidResponse {
        /// The client method.
        operation: &'static str,
        /// What was wrong (never the body itself).
        detail: String,
    },
    /// The call was refused before sending, because the input cannot succeed.
    #[error("{operation}: {reason}")]
    InvalidInput {
        /// The client method.
        operation: &'static str,
        /// What to change.
        reason: String,
    },
    /// The client could not be built (bad endpoint, unreadable or invalid CA file).
    #[error("cannot set up the Azure Storage client: {0}")]
    Config(String),
}

impl AzureError {
    /// The HTTP status, when the service answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Azure's error code, when the service gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Status { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// The client operation that failed, when there was one.
    pub fn operation(&self) -> Option<&'static str> {
        match self {
            Self::Status { operation, .. }
            | Self::Transport { operation, .. }
            | Self::InvalidResponse { operation, .. }
            | Self::InvalidInput { operation, .. } => Some(operation),
            Self::Config(_) => None,
        }
    }
}

/// The error and its causes, `a: b: c` (a TLS or DNS failure is only named deep in the chain).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_error_names_operation_status_code_and_request_id() {
        let err = AzureError::Status {
            operation: "get_container_acl",
            status: 404,
            code: Some("ContainerNotFound".into()),
            request_id: Some("abc".into()),
        };
        assert_eq!(
            err.to_string(),
            "get_container_acl: Azure Storage answered HTTP 404 (ContainerNotFound), request id abc"
        );
        assert_eq!(err.status(), Some(404));
        assert_eq!(err.code(), Some("ContainerNotFound"));
        assert_eq!(err.operation(), Some("get_container_acl"));
        let bare = AzureError::Status {
            operation: "put_blob",
            status: 500,
            code: None,
            request_id: None,
        };
        assert_eq!(
            bare.to_string(),
            "put_blob: Azure Storage answered HTTP 500"
        );
    }
}
