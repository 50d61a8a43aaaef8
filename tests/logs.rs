//! The real binary's log, as an operator's collector sees it (standard error is a file, so the
//! default `log.format = "auto"` writes JSON lines): every line is one JSON object, every line of
//! a request carries the `request_id` the client got in `x-request-id`, and nothing on the
//! never-log list (docs/LOGGING.md) is written, whatever the request.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use common::app::{model_request, seed, spawn_binary, write_setup};
use common::azurite::{Azurite, Tls};
use serde_json::Value;

#[tokio::test]
async fn logs_are_json_lines_with_the_request_id_and_nothing_from_the_never_log_list() {
    let azurite = Azurite::start(Tls::Https).await;
    seed(&azurite).await;
    let setup = write_setup(&azurite, None);
    let log = setup.dir.path().join("sasgate.log");
    let binary = spawn_binary(&setup.config, 0, &log).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let address = &binary.address;

    // request id (from the response header) -> what the request was
    let mut requests = BTreeMap::new();
    let mut remember = |what: &str, r: &reqwest::Response| {
        let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(id.starts_with("req_"), "{id}");
        requests.insert(id, what.to_owned());
    };

    let post = |path: &str, key: &str, body: &Value| {
        http.post(format!("{address}{path}"))
            .bearer_auth(key)
            .json(body)
            .send()
    };

    // A mint (the SAS and its signature must not be logged).
    let r = post("/v1/tokens", &setup.alice, &model_request())
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    remember("mint", &r);
    let minted: Value = r.json().await.unwrap();
    let sig = raw_signature(minted["url"].as_str().unwrap());

    // A link and its redemption (the link code must not be logged, nor the redirect's SAS).
    let r = post("/v1/links", &setup.alice, &model_request())
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    remember("link", &r);
    let link: Value = r.json().await.unwrap();
    // The setup's public_url is not this process's port: redeem on the real address.
    let code = link["link"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let link_url = format!("{address}/l/{code}");
    let r = http.get(&link_url).send().await.unwrap();
    assert_eq!(r.status(), 302);
    remember("redeem", &r);
    let redirect_sig = raw_signature(r.headers()["location"].to_str().unwrap());

    // A wrong API key and a JWT-shaped garbage credential (neither may be logged), and a body
    // carrying a secret-looking reason (bodies are never logged).
    let wrong_key = "sgk_wrongwrongwrongwrongwrongwrongwrongwrong";
    let r = post("/v1/tokens", wrong_key, &model_request())
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    remember("wrong key", &r);
    let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJtZSJ9.c2lnbmF0dXJlLXNlY3JldA";
    let r = post("/v1/tokens", jwt, &model_request()).await.unwrap();
    assert_eq!(r.status(), 401);
    remember("jwt", &r);
    let body_secret = "body-secret-7f3a9c";
    let mut request = model_request();
    request["reason"] = Value::from(body_secret);
    request["blob"] = Value::from("../secrets/x");
    let r = post("/v1/tokens", &setup.alice, &request).await.unwrap();
    assert_eq!(r.status(), 400);
    remember("bad name", &r);
    drop(binary);

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    assert!(lines.len() > 10, "{text}");
    for line in &lines {
        assert!(
            line["timestamp"].is_string() && line["level"].is_string(),
            "{line}"
        );
        assert!(line["message"].is_string(), "flattened event: {line}");
    }
    // Every request's response line carries its id, and so does every other line written while
    // it was handled (the rejected credential warnings, the `issued` line).
    for (id, what) in &requests {
        let of_request: Vec<&Value> = lines
            .iter()
            .filter(|l| l["span"]["request_id"] == id.as_str())
            .collect();
        assert!(
            of_request.iter().any(|l| l["message"] == "response"),
            "{what}: no response line for {id}:\n{text}"
        );
        assert!(
            of_request.iter().all(|l| l["span"]["path"].is_string()),
            "{what}: {of_request:?}"
        );
    }
    let issued = lines
        .iter()
        .find(|l| l["message"] == "issued")
        .unwrap_or_else(|| panic!("no issued line:\n{text}"));
    assert_eq!(issued["issuance"], minted["id"]);
    assert!(
        issued["span"]["request_id"]
            .as_str()
            .unwrap()
            .starts_with("req_")
    );
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "rejected credential" && l["span"]["request_id"].is_string()),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l["span"]["path"] == "/l/<code>"),
        "a link's path is logged without its code:\n{text}"
    );

    // The never-log list.
    for (what, secret) in [
        ("the minted SAS signature", sig.as_str()),
        ("the redirect's SAS signature", redirect_sig.as_str()),
        ("the link code", code.as_str()),
        ("alice's API key", setup.alice.as_str()),
        ("a wrong API key", wrong_key),
        ("a JWT", jwt),
        ("a JWT's signature", "c2lnbmF0dXJlLXNlY3JldA"),
        ("a request body", body_secret),
        ("the account key", common::azurite::KEY),
    ] {
        assert!(!text.contains(secret), "{what} is in the log:\n{text}");
    }
    assert!(!text.contains("sig="), "{text}");
    assert!(!text.to_lowercase().contains("authorization"), "{text}");
}

/// The `sig` parameter without its percent-encoding (the log must hold neither form; the
/// encoded one is checked through `sig=`).
fn raw_signature(url: &str) -> String {
    let query = url.split_once('?').unwrap().1;
    let sig = query
        .split('&')
        .find_map(|p| p.strip_prefix("sig="))
        .unwrap();
    percent_encoding::percent_decode_str(sig)
        .decode_utf8()
        .unwrap()
        .into_owned()
}
