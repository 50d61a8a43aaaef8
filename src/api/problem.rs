//! Errors as `application/problem+json` (RFC 9457), with stable machine-readable codes.
//!
//! This is the one place where failures become HTTP. A 4xx says what to change; a 5xx carries
//! only an error id, and the details go to the server log under that id.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Declares [`Code`] and [`Code::ALL`] from one list, so that the list of every code (which the
/// OpenAPI document and its test rely on) cannot miss a variant.
macro_rules! codes {
    ($($(#[$meta:meta])* $variant:ident,)*) => {
        /// Stable error codes. Their text form never changes once released.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum Code {
            $($(#[$meta])* $variant,)*
        }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];
        }
    };
}

codes! {
    Unauthenticated,
    Forbidden,
    InvalidRequest,
    AccountScopeForbidden,
    TtlExceedsPolicy,
    PermissionNotAllowed,
    ScopeNotAllowed,
    NoMatchingRule,
    ReasonRequired,
    IpRequired,
    InvalidName,
    UnknownAccount,
    LedgerUnavailable,
    NotFound,
    PayloadTooLarge,
    LinkRequired,
    LinkGone,
    StoredPolicyUnavailable,
    SigningUnavailable,
    AzureUnavailable,
    MalformedToken,
    AlgorithmNotAllowed,
    UntrustedIssuer,
    UnknownSigningKey,
    BadSignature,
    TokenExpired,
    TokenNotYetValid,
    WrongAudience,
    MissingClaim,
    OidcUnavailable,
    RateLimited,
    MethodNotAllowed,
    RequestTimeout,
    Internal,
}

impl Code {
    /// The snake_case text of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Unauthenticated => "unauthenticated",
            Code::Forbidden => "forbidden",
            Code::InvalidRequest => "invalid_request",
            Code::AccountScopeForbidden => "account_scope_forbidden",
            Code::TtlExceedsPolicy => "ttl_exceeds_policy",
            Code::PermissionNotAllowed => "permission_not_allowed",
            Code::ScopeNotAllowed => "scope_not_allowed",
            Code::NoMatchingRule => "no_matching_rule",
            Code::ReasonRequired => "reason_required",
            Code::IpRequired => "ip_required",
            Code::InvalidName => "invalid_name",
            Code::UnknownAccount => "unknown_account",
            Code::LedgerUnavailable => "ledger_unavailable",
            Code::NotFound => "not_found",
            Code::PayloadTooLarge => "payload_too_large",
            Code::LinkRequired => "link_required",
            Code::LinkGone => "link_gone",
            Code::StoredPolicyUnavailable => "stored_policy_unavailable",
            Code::SigningUnavailable => "signing_unavailable",
            Code::AzureUnavailable => "azure_unavailable",
            Code::MalformedToken => "malformed_token",
            Code::AlgorithmNotAllowed => "algorithm_not_allowed",
            Code::UntrustedIssuer => "untrusted_issuer",
            Code::UnknownSigningKey => "unknown_signing_key",
            Code::BadSignature => "bad_signature",
            Code::TokenExpired => "token_expired",
            Code::TokenNotYetValid => "token_not_yet_valid",
            Code::WrongAudience => "wrong_audience",
            Code::MissingClaim => "missing_claim",
            Code::OidcUnavailable => "oidc_unavailable",
            Code::RateLimited => "rate_limited",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::RequestTimeout => "request_timeout",
            Code::Internal => "internal",
        }
    }

    /// The HTTP status a problem with this code is sent with.
    pub fn status(self) -> StatusCode {
        match self {
            Code::Unauthenticated
            | Code::MalformedToken
            | Code::AlgorithmNotAllowed
            | Code::UntrustedIssuer
            | Code::UnknownSigningKey
            | Code::BadSignature
            | Code::TokenExpired
            | Code::TokenNotYetValid
            | Code::WrongAudience
            | Code::MissingClaim => StatusCode::UNAUTHORIZED,
            Code::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Code::Forbidden
            | Code::AccountScopeForbidden
            | Code::TtlExceedsPolicy
            | Code::PermissionNotAllowed
            | Code::ScopeNotAllowed
            | Code::NoMatchingRule
            | Code::ReasonRequired
            | Code::IpRequired
            | Code::LinkRequired => StatusCode::FORBIDDEN,
            Code::InvalidRequest | Code::InvalidName | Code::UnknownAccount => {
                StatusCode::BAD_REQUEST
            }
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::LinkGone => StatusCode::GONE,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::LedgerUnavailable
            | Code::StoredPolicyUnavailable
            | Code::SigningUnavailable
            | Code::AzureUnavailable
            | Code::OidcUnavailable
            | Code::RequestTimeout => StatusCode::SERVICE_UNAVAILABLE,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Code::Unauthenticated => "Authentication required",
            Code::Forbidden => "Forbidden",
            Code::InvalidRequest => "Invalid request",
            Code::AccountScopeForbidden => "Account-wide access is never granted",
            Code::TtlExceedsPolicy => "Lifetime exceeds policy",
            Code::PermissionNotAllowed => "Permission not allowed",
            Code::ScopeNotAllowed => "Scope not allowed",
            Code::NoMatchingRule => "No policy rule allows this",
            Code::ReasonRequired => "A reason is required",
            Code::IpRequired => "An IP restriction is required",
            Code::InvalidName => "Invalid name",
            Code::UnknownAccount => "Unknown storage account",
            Code::LedgerUnavailable => "Issuance ledger unavailable",
            Code::NotFound => "Not found",
            Code::PayloadTooLarge => "Request body too large",
            Code::LinkRequired => "This rule issues broker links",
            Code::LinkGone => "Link no longer valid",
            Code::StoredPolicyUnavailable => "Stored access policy unavailable",
            Code::SigningUnavailable => "Signing key unavailable",
            Code::AzureUnavailable => "Azure unavailable",
            Code::MalformedToken => "Malformed token",
            Code::AlgorithmNotAllowed => "Token algorithm not accepted",
            Code::UntrustedIssuer => "Token issuer not trusted",
            Code::UnknownSigningKey => "Unknown token signing key",
            Code::BadSignature => "Token signature invalid",
            Code::TokenExpired => "Token expired",
            Code::TokenNotYetValid => "Token not yet valid",
            Code::WrongAudience => "Token audience not accepted",
            Code::MissingClaim => "Token lacks a required claim",
            Code::OidcUnavailable => "OIDC keys unavailable",
            Code::RateLimited => "Too many mints",
            Code::MethodNotAllowed => "Method not allowed",
            Code::RequestTimeout => "Request took too long",
            Code::Internal => "Internal error",
        }
    }
}

/// A problem document (RFC 9457), sent as `application/problem+json`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:sasgate:problem:<code>`.
    #[serde(rename = "type")]
    #[schema(example = "urn:sasgate:problem:ttl_exceeds_policy")]
    pub kind: String,
    /// A short summary of the code; the same for every problem with that code.
    pub title: &'static str,
    /// The HTTP status, as on the response.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What went wrong and, for a 4xx, what to change.
    pub detail: String,
    pub code: Code,
    /// For policy denials: one reason per rule considered (absent for OIDC callers).
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    #[schema(value_type = Vec<String>, min_items = 1)]
    pub reasons: Box<[String]>,
    /// For 5xx: the id under which the server logged the details.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, pattern = "^err_[0-9a-z_]+$")]
    pub error_id: Option<String>,
    /// For 429: seconds until a retry can succeed (also sent as `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = u32)]
    pub retry_after: Option<u32>,
}

impl Problem {
    /// A 4xx problem with an actionable detail.
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:sasgate:problem:{}", code.as_str()),
            title: code.title(),
            status: code.status().as_u16(),
            detail: detail.into(),
            code,
            reasons: Box::default(),
            error_id: None,
            retry_after: None,
        }
    }

    /// Adds per-rule reasons.
    pub fn with_reasons(mut self, reasons: Vec<String>) -> Self {
        self.reasons = reasons.into_boxed_slice();
        self
    }

    /// A 5xx problem: logs `cause` under a fresh error id and reveals only the id.
    pub fn server(code: Code, cause: &dyn std::fmt::Display) -> Self {
        let error_id = new_error_id();
        tracing::error!(error_id = %error_id, code = code.as_str(), error = %cause, "request failed");
        let mut p = Self::new(
            code,
            "the service could not complete the request; quote the error id when reporting it",
        );
        if code == Code::StoredPolicyUnavailable {
            p.detail = "the token's stored access policy could not be set on the container, so no token was issued; retry later and quote the error id if it persists".into();
        }
        if code == Code::SigningUnavailable {
            p.detail = "no user delegation key could be obtained from Microsoft Entra ID and Azure Storage, so no token was issued; retry in a few seconds and quote the error id if it persists".into();
        }
        if code == Code::LedgerUnavailable {
            p.detail = "the issuance ledger cannot record issuances right now, so no token was issued; retry later and quote the error id if it persists".into();
        }
        p.error_id = Some(error_id);
        p
    }
}

/// `err_` + 16 random hex characters.
pub fn new_error_id() -> String {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return "err_unavailable".into();
    }
    format!(
        "err_{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body =
            serde_json::to_vec(&self).unwrap_or_else(|_| b"{\"code\":\"internal\"}".to_vec());
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            // Every 503 here is a dependency that recovers without a restart.
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
