//! Fail closed: no token without a durable record, recovery without a restart, nothing lost to
//! a crash, and no secret in the logs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::app::{
    MODEL, list_all, model_request, seed, spawn_app_with_ledger, spawn_binary, write_setup,
};
use common::azurite::{Azurite, KEY, Tls};
use common::tmpfs::Tmpfs;
use serde_json::Value;

#[tokio::test]
async fn with_the_ledger_unwritable_mints_get_503_and_no_token_then_recover_without_restart() {
    let Some(disk) = Tmpfs::mount("4m") else {
        return;
    };
    let app = spawn_app_with_ledger(Some(&disk.path().join("ledger.db"))).await;
    let (status, _) = app.mint(&app.alice, model_request()).await;
    assert_eq!(status, 201, "works before the fault");

    let _ = disk.fill();
    for _ in 0..3 {
        let (status, body) = app.mint(&app.alice, model_request()).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["code"], "ledger_unavailable");
        assert!(body["error_id"].as_str().unwrap().starts_with("err_"));
        assert!(
            body.get("url").is_none() && body.get("sas").is_none(),
            "no token: {body}"
        );
        assert!(!body.to_string().contains("sig="), "{body}");
    }
    let r = app
        .http
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503, "not ready while the ledger cannot write");

    disk.unfill();
    let (status, body) = app.mint(&app.alice, model_request()).await;
    assert_eq!(status, 201, "recovers without a restart: {body}");
    assert_eq!(
        app.download(body["url"].as_str().unwrap()).await,
        (200, MODEL.to_vec())
    );
    let r = app
        .http
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Exactly the two successful issuances are recorded.
    let page = app
        .ledger
        .list(&Default::default(), chrono::Utc::now(), 100, None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
}

#[tokio::test]
async fn every_token_a_client_received_survives_a_sigkill() {
    let azurite = Azurite::start(Tls::Https).await;
    seed(&azurite).await;
    let setup = write_setup(&azurite, None);
    let log = setup.dir.path().join("run1.log");
    let mut binary = spawn_binary(&setup.config, 0, &log).await;
    let address = binary.address.clone();

    // Eight clients mint in a loop; the server is killed while they do.
    let received = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for client in 0..8 {
        let (received, stop, address, key) = (
            received.clone(),
            stop.clone(),
            address.clone(),
            setup.alice.clone(),
        );
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut errors = 0;
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && errors < 50 {
                // A distinct blob per request, so that every token is distinct.
                n += 1;
                let body = serde_json::json!({"account": "devstoreaccount1", "container": "models", "blob": format!("published/c{client}/m{n}.bin")});
                match http.post(format!("{address}/v1/tokens")).bearer_auth(&key).json(&body).send().await {
                    Ok(r) if r.status() == 201 => {
                        if let Ok(v) = r.json::<Value>().await {
                            received.lock().unwrap().push(v["url"].as_str().unwrap().to_owned());
                        }
                    }
                    _ => errors += 1,
                }
            }
        }));
    }
    // Kill once a good number of tokens went out (polled, with a deadline).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while received.lock().unwrap().len() < 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "too few mints succeeded"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pid = binary.child.id();
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let _ = binary.child.wait();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let tokens = received.lock().unwrap().clone();
    drop(binary);
    let distinct: BTreeSet<_> = tokens.iter().collect();
    assert_eq!(distinct.len(), tokens.len(), "every token is distinct");

    // Restart on the same ledger and look every received token up by its signature.
    let binary = spawn_binary(&setup.config, 0, &setup.dir.path().join("run2.log")).await;
    let http = reqwest::Client::new();
    let hashes: BTreeSet<String> = list_all(&http, &binary.address, &setup.admin, 1000)
        .await
        .iter()
        .map(|i| i["signature_sha256"].as_str().unwrap().to_owned())
        .collect();
    let missing: Vec<_> = tokens
        .iter()
        .filter(|url| {
            !hashes.contains(
                &sasgate::sas::parse::parse(url)
                    .unwrap()
                    .signature_sha256()
                    .unwrap(),
            )
        })
        .collect();
    println!(
        "clients received {} tokens before SIGKILL; ledger holds {} issuances; missing {}",
        tokens.len(),
        hashes.len(),
        missing.len()
    );
    assert!(
        missing.is_empty(),
        "{} tokens were handed out without a durable record",
        missing.len()
    );
}

#[tokio::test]
async fn a_full_run_logs_no_key_no_api_key_and_no_signature() {
    let azurite = Azurite::start(Tls::Https).await;
    seed(&azurite).await;
    let setup = write_setup(&azurite, None);
    let log = setup.dir.path().join("serve.log");
    let binary = spawn_binary(&setup.config, 0, &log).await;
    let http = reqwest::Client::new();
    let mut sigs = Vec::new();
    for key in [&setup.alice, &setup.ci, &setup.admin] {
        for body in [
            model_request(),
            serde_json::json!({"account": "devstoreaccount1", "container": "ci-build", "blob": "a", "permissions": "cw"}),
        ] {
            let r = http
                .post(format!("{}/v1/tokens", binary.address))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            if r.status() == 201 {
                let v: Value = r.json().await.unwrap();
                let parsed = sasgate::sas::parse::parse(v["url"].as_str().unwrap()).unwrap();
                sigs.push(parsed.param("sig").unwrap().to_owned());
            }
        }
    }
    let _ = http
        .post(format!("{}/v1/tokens", binary.address))
        .bearer_auth("sgk_wrong_key_value")
        .json(&model_request())
        .send()
        .await
        .unwrap();
    let _ = http
        .get(format!("{}/v1/issuances", binary.address))
        .bearer_auth(&setup.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(sigs.len(), 2, "alice and ci each got one token");
    // A broker link, redeemed once: its code is a secret too.
    let link: Value = http
        .post(format!("{}/v1/links", binary.address))
        .bearer_auth(&setup.alice)
        .json(&serde_json::json!({"account": "devstoreaccount1", "container": "shared", "blob": "paper.pdf"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code = link["link"]
        .as_str()
        .unwrap()
        .rsplit("/l/")
        .next()
        .unwrap()
        .to_owned();
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirect
        .get(format!("{}/l/{code}", binary.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let redirected = sasgate::sas::parse::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    sigs.push(redirected.param("sig").unwrap().to_owned());
    // SIGTERM: a graceful stop, whose messages are part of the run too.
    let pid = binary.child.id();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let mut binary = binary;
    let status = binary.child.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0");

    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.contains("issued"), "the run was logged:\n{logs}");
    let encoded = |s: &str| sasgate::sas::encode::encode_query_value(s);
    let mut secrets: Vec<String> = vec![
        KEY.into(),
        KEY[..20].into(),
        setup.alice.clone(),
        setup.ci.clone(),
        setup.admin.clone(),
        "sgk_wrong_key_value".into(),
    ];
    secrets.push(code.clone());
    for s in &sigs {
        secrets.push(s.clone());
        secrets.push(encoded(s));
    }
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a secret reached the logs");
    }
    assert!(!logs.contains("sig="), "no SAS query string in the logs");
}
