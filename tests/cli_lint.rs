//! `sasgate lint` and `sasgate scan`, run as the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use chrono::Utc;
use sasgate::sas::name::{AccountName, BlobName, ContainerName};
use sasgate::sas::sign::{BlobSas, Target, sign_service};
use sasgate::secret::SigningKey;

const INCIDENT: &str = "https://robustnessws4285631339.blob.core.windows.net/?sv=2020-08-04&ss=bfqt&srt=sco&sp=rwdlacupitfx&se=2051-10-06T07:09:59Z&st=2021-10-05T23:09:59Z&spr=https,http&sig=c2VjcmV0LXNpZ25hdHVyZS1ub3QtdG8tYmUtZWNob2Vk%3D";

fn sasgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sasgate"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A 15-minute blob read SAS with `spr=https`, as sasgate mints it (backdated start).
fn short_read_sas() -> String {
    let now = Utc::now();
    let sas = BlobSas::new(
        AccountName::parse("acct").unwrap(),
        ContainerName::parse("data").unwrap(),
        Target::Blob(BlobName::parse("models/a.bin").unwrap()),
        now - chrono::Duration::minutes(15),
        now + chrono::Duration::minutes(15),
    );
    let key = SigningKey::from_base64("a2V5a2V5a2V5").unwrap();
    let token = sign_service(&sas, None, &key).unwrap();
    token.url(
        &url::Url::parse("https://acct.blob.core.windows.net").unwrap(),
        &sas.container,
        sas.target.path(),
    )
}

#[test]
fn the_incident_url_fails_naming_account_scope_and_lifetime() {
    let out = sasgate(&["lint", INCIDENT]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("CRITICAL account_sas"), "{t}");
    assert!(t.contains("CRITICAL lifetime_over_7_days"), "{t}");
    assert!(
        !t.contains("c2VjcmV0"),
        "the signature must never be printed: {t}"
    );
}

#[test]
fn a_fifteen_minute_https_blob_read_passes() {
    let url = short_read_sas();
    let out = sasgate(&["lint", &url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // The same SAS fails a stricter threshold: it has no IP restriction (medium).
    assert_eq!(
        sasgate(&["lint", "--fail-on", "medium", &url])
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn json_output_and_stdin() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sasgate"))
        .args(["lint", "--format", "json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(INCIDENT.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "account");
    assert_eq!(v["worst"], "critical");
    assert_eq!(v["findings"][0]["code"], "account_sas");
    assert!(v["params"].get("sig").is_none());
}

#[test]
fn not_a_sas_is_a_usage_error() {
    let out = sasgate(&["lint", "https://example.com/?a=b"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("no signature"), "{}", text(&out));
}

#[test]
fn scan_finds_sas_in_files_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src/.git")).unwrap();
    std::fs::write(
        dir.path().join("src/notebook.py"),
        format!("import x\n\nURL = \"{INCIDENT}\"\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("README.md"),
        format!("Download: {}\n", short_read_sas()),
    )
    .unwrap();
    std::fs::write(dir.path().join("src/.git/config"), format!("{INCIDENT}\n")).unwrap();
    let mut binary = b"\0\x01".to_vec();
    binary.extend_from_slice(INCIDENT.as_bytes());
    std::fs::write(dir.path().join("blob.bin"), binary).unwrap();
    std::fs::write(
        dir.path().join("env.sh"),
        "export AZURE_SAS='sv=2022-11-02&ss=b&srt=co&sp=rl&se=2099-01-01&sig=x'\n",
    )
    .unwrap();

    let out = sasgate(&["scan", dir.path().to_str().unwrap()]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("src/notebook.py:3: CRITICAL"), "{t}");
    assert!(t.contains("env.sh:1: CRITICAL"), "{t}");
    assert!(t.contains("README.md:1: MEDIUM"), "{t}");
    assert!(!t.contains(".git/config"), "{t}");
    assert!(!t.contains("blob.bin"), "{t}");
    assert!(!t.contains("c2VjcmV0"), "{t}");

    // A pre-commit hook on the clean file alone passes.
    let out = sasgate(&["scan", dir.path().join("README.md").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = sasgate(&[
        "scan",
        "--format",
        "json",
        "--fail-on",
        "never",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let hits: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(hits.as_array().unwrap().len(), 3);
}
