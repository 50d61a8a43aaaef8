//! The OpenAPI document at `/openapi.json`: served by the running app exactly as committed in
//! `tests/snapshots/openapi.json`, OpenAPI 3.1, covering every route, every problem code and
//! every way an operation fails, with every `$ref` resolving.
//!
//! After a deliberate API change, refresh the snapshot with
//! `UPDATE_SNAPSHOTS=1 cargo test --test openapi` and review the diff.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::app::spawn_app;
use sasgate::api::problem::Code;
use serde_json::{Value, json};

/// Every operation the API serves, as `METHOD path`. Adding a route means adding it here.
const OPERATIONS: &[&str] = &[
    "GET /healthz",
    "GET /l/{code}",
    "GET /metrics",
    "GET /openapi.json",
    "GET /readyz",
    "GET /v1/issuances",
    "GET /v1/issuances/{id}",
    "GET /v1/ledger/head",
    "GET /v1/ledger/verify",
    "POST /v1/emergency/revoke-delegation-keys",
    "POST /v1/emergency/revoke-policies",
    "POST /v1/issuances/lookup",
    "POST /v1/issuances/{id}/revoke",
    "POST /v1/links",
    "POST /v1/lint",
    "POST /v1/revocations",
    "POST /v1/tokens",
];

/// Operations that answer the same to everyone and have no 4xx.
const CANNOT_FAIL_WITH_4XX: &[&str] = &["GET /healthz", "GET /readyz", "GET /openapi.json"];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn snapshot_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/openapi.json")
}

fn pretty(doc: &Value) -> String {
    let mut text = serde_json::to_string_pretty(doc).unwrap();
    text.push('\n');
    text
}

/// The document as the library builds it (the same the app serves; see the snapshot test).
fn document() -> Value {
    serde_json::to_value(sasgate::api::openapi_document()).unwrap()
}

/// `(operation, "METHOD path")` for every operation in the document.
fn operations(doc: &Value) -> Vec<(&Value, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if METHODS.contains(&method.as_str()) {
                out.push((op, format!("{} {path}", method.to_uppercase())));
            }
        }
    }
    out
}

/// Resolves a local `$ref` (`#/components/...`).
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// A response object with any `$ref` followed.
fn response<'a>(doc: &'a Value, r: &'a Value) -> &'a Value {
    match r.get("$ref").and_then(Value::as_str) {
        Some(reference) => resolve(doc, reference).unwrap_or_else(|| panic!("{reference}")),
        None => r,
    }
}

/// Whether `r` is a problem response: `application/problem+json` with the Problem schema.
fn is_problem(doc: &Value, r: &Value) -> bool {
    response(doc, r)["content"]["application/problem+json"]["schema"]["$ref"]
        == "#/components/schemas/Problem"
}

#[tokio::test]
async fn the_app_serves_the_committed_document_without_authentication() {
    let app = spawn_app().await;
    let r = app
        .http
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let served: Value = r.json().await.unwrap();
    app.stop().await;
    assert_eq!(served, document(), "the app serves what the library builds");

    let actual = pretty(&served);
    let path = snapshot_path();
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    // Compared as JSON values, so that key order (serde_json's preserve_order) does not matter.
    if serde_json::from_str::<Value>(&expected).ok().as_ref() != Some(&served) {
        // The first line that differs, as a hint (the snapshot is written by `pretty` too).
        let fresh = Path::new(env!("CARGO_TARGET_TMPDIR")).join("openapi.json");
        std::fs::write(&fresh, &actual).unwrap();
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "the API's OpenAPI document differs from {} from line {}:\n  committed: {}\n  served:    {}\n\
             see the whole change with: diff -u {} {}\n\
             if the change is intended, run UPDATE_SNAPSHOTS=1 cargo test --test openapi and commit the snapshot",
            path.display(),
            line + 1,
            expected.lines().nth(line).unwrap_or("<end of file>"),
            actual.lines().nth(line).unwrap_or("<end of file>"),
            path.display(),
            fresh.display(),
        );
    }
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let app = spawn_app().await;
    let fallback = "no such endpoint; see /openapi.json";
    for (_, operation) in operations(&document()) {
        let (method, path) = operation.split_once(' ').unwrap();
        let url = format!(
            "{}{}",
            app.address,
            path.replace("{id}", "iss_none").replace("{code}", "none")
        );
        let r = app
            .http
            .request(method.parse().unwrap(), url)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_ne!(status, 405, "{operation}: {body}");
        assert_ne!(body["detail"], fallback, "{operation} is not routed");
    }
    app.stop().await;
}

#[test]
fn the_document_is_openapi_3_1_and_lists_every_operation_once() {
    let doc = document();
    let version = doc["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1."), "{version}");

    let found: Vec<String> = operations(&doc).into_iter().map(|(_, o)| o).collect();
    let found_set: BTreeSet<&str> = found.iter().map(String::as_str).collect();
    let expected: BTreeSet<&str> = OPERATIONS.iter().copied().collect();
    assert_eq!(found_set, expected);
    assert_eq!(
        found.len(),
        OPERATIONS.len(),
        "an operation is listed twice"
    );

    let ids: Vec<&str> = operations(&doc)
        .into_iter()
        .map(|(op, name)| {
            op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{name} has no operationId"))
        })
        .collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "operation ids repeat: {ids:?}");
}

#[test]
fn the_problem_schema_lists_every_code() {
    let doc = document();
    let schema = &doc["components"]["schemas"]["Code"];
    let listed: Vec<&str> = schema["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let all: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(listed, all);
    for code in Code::ALL {
        // The text form is what serialises, and its status is an error status.
        assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        assert!(code.status().is_client_error() || code.status().is_server_error());
    }
    assert_eq!(
        doc["components"]["schemas"]["Problem"]["properties"]["code"]["$ref"],
        "#/components/schemas/Code"
    );
    // Every status a code is sent with is documented on some operation.
    let statuses: BTreeSet<String> = operations(&doc)
        .iter()
        .flat_map(|(op, _)| op["responses"].as_object().unwrap().keys().cloned())
        .collect();
    // Except 405 `method_not_allowed`, the answer to a method an operation does not have, which
    // an OpenAPI document cannot attach to any operation (it is checked below instead).
    for code in Code::ALL.iter().filter(|c| **c != Code::MethodNotAllowed) {
        assert!(
            statuses.contains(code.status().as_str()),
            "{} ({}) is documented on no operation",
            code.as_str(),
            code.status()
        );
    }
}

#[test]
fn every_failure_is_a_documented_problem() {
    let doc = document();
    for (op, name) in operations(&doc) {
        let responses = op["responses"].as_object().unwrap();
        for (status, r) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                assert!(
                    is_problem(&doc, r),
                    "{name} {status} is not a problem document"
                );
            }
        }
        assert!(responses.contains_key("500"), "{name} documents no 500");
        if !CANNOT_FAIL_WITH_4XX.contains(&name.as_str()) {
            assert!(
                responses.keys().any(|s| s.starts_with('4')),
                "{name} documents no 4xx"
            );
        }
        // Authenticated operations say so, and document the 401 with its challenge.
        let secured = op["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
        if secured {
            let unauthorized = response(&doc, &responses["401"]);
            assert!(
                unauthorized["headers"].get("WWW-Authenticate").is_some(),
                "{name}"
            );
        } else {
            assert!(
                !responses.contains_key("401"),
                "{name} has a 401 but no security"
            );
        }
        for (status, r) in responses {
            if status == "429" || status == "503" {
                assert!(
                    response(&doc, r)["headers"].get("Retry-After").is_some(),
                    "{name} {status}"
                );
            }
        }
    }
    let public: BTreeSet<String> = operations(&doc)
        .into_iter()
        .filter(|(op, _)| op.get("security").is_none())
        .map(|(_, name)| name)
        .collect();
    let expected: BTreeSet<String> = [
        "GET /healthz",
        "GET /readyz",
        "GET /openapi.json",
        "GET /l/{code}",
    ]
    .map(String::from)
    .into();
    assert_eq!(public, expected);
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[test]
fn the_special_responses_are_documented() {
    let doc = document();
    let redeem = &doc["paths"]["/l/{code}"]["get"]["responses"];
    assert!(redeem["302"]["headers"].get("Location").is_some());
    assert!(is_problem(&doc, &redeem["410"]));
    let metrics = &doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"];
    assert!(
        metrics
            .as_object()
            .unwrap()
            .keys()
            .all(|k| k.starts_with("text/plain")),
        "{metrics}"
    );
    let list = &doc["paths"]["/v1/issuances"]["get"]["parameters"];
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "principal",
            "account",
            "container",
            "status",
            "since",
            "until",
            "limit",
            "cursor"
        ]
    );
}

#[test]
fn every_reference_resolves() {
    fn walk<'a>(v: &'a Value, refs: &mut Vec<&'a str>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    refs.push(r);
                }
                map.values().for_each(|v| walk(v, refs));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, refs)),
            _ => {}
        }
    }
    let doc = document();
    let mut refs = Vec::new();
    walk(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in &refs {
        assert!(r.starts_with("#/components/"), "a non-local reference: {r}");
        assert!(resolve(&doc, r).is_some(), "{r} does not resolve");
    }
    // And nothing in the components is left unused.
    for kind in ["schemas", "responses"] {
        for name in doc["components"][kind].as_object().unwrap().keys() {
            let target = format!("#/components/{kind}/{name}");
            assert!(refs.contains(&target.as_str()), "{target} is never used");
        }
    }
}

/// The answers no operation lists are problem documents too: an undeclared method (405), an
/// unknown path (404). `POST /v1/lint` grades a SAS for any principal and refuses junk.
#[tokio::test]
async fn undeclared_methods_and_paths_get_problem_documents_and_lint_grades() {
    let app = spawn_app().await;
    for (method, path, status, code) in [
        ("DELETE", "/v1/tokens", 405, "method_not_allowed"),
        ("PUT", "/v1/issuances", 405, "method_not_allowed"),
        ("GET", "/v2/tokens", 404, "not_found"),
    ] {
        let r = app
            .http
            .request(method.parse().unwrap(), format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{method} {path}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{method} {path}"
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], code, "{method} {path}: {body}");
    }

    let lint = |key: String, body: Value| {
        let http = app.http.clone();
        let url = format!("{}/v1/lint", app.address);
        async move {
            let r = http
                .post(url)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    // The 2023 incident's shape: an account SAS for ~30 years.
    let incident = "https://acct.blob.core.windows.net/?sv=2020-08-04&ss=bfqt&srt=sco&sp=rwdlacup&se=2051-10-06T07:09:59Z&st=2021-10-06T07:09:59Z&spr=https&sig=c2lnbmF0dXJl";
    let (status, report) = lint(app.alice.clone(), json!({"url": incident})).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["kind"], "account");
    assert_eq!(report["worst"], "critical");
    assert!(report["params"].get("sig").is_none(), "{report}");
    assert!(!report.to_string().contains("c2lnbmF0dXJl"), "{report}");
    let (status, problem) = lint(app.alice.clone(), json!({"url": "not a sas"})).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, problem) = lint(app.alice.clone(), json!({"link": incident})).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, _) = lint(String::new(), json!({"url": incident})).await;
    assert_eq!(status, 401);
    app.stop().await;
}
