//! `sasgate lint` and `sasgate scan`.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{FailOn, Format};
use crate::sas::lint::{Report, find_candidates, lint as grade};
use crate::sas::parse::parse;

/// Files larger than this are not scanned.
const MAX_SCAN_BYTES: u64 = 10 * 1024 * 1024;

pub(super) fn lint(input: &str, format: Format, fail_on: FailOn, now: DateTime<Utc>) -> ExitCode {
    let text = if input == "-" {
        let mut s = String::new();
        if std::io::stdin().read_to_string(&mut s).is_err() {
            eprintln!("error: standard input is not UTF-8 text");
            return ExitCode::from(2);
        }
        s
    } else {
        input.to_owned()
    };
    let parsed = match parse(&text) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let report = grade(&parsed, now);
    match format {
        Format::Json => println!("{}", to_json(&report)),
        Format::Human => print_human(&report),
    }
    exit_for(fail_on.reached_by(report.worst))
}

fn exit_for(failed: bool) -> ExitCode {
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".to_owned())
}

fn where_of(report: &Report) -> String {
    match &report.location {
        Some(l) => {
            let mut s = format!("{} account {}", l.host, l.account.as_deref().unwrap_or("?"));
            if let Some(c) = &l.container {
                s.push_str(&format!(", container {c}"));
            }
            if let Some(b) = &l.blob {
                s.push_str(&format!(", blob {b}"));
            }
            s
        }
        None => "a bare query string".to_owned(),
    }
}

fn print_human(report: &Report) {
    println!(
        "{:?} SAS on {} — worst: {}",
        report.kind,
        where_of(report),
        report.worst.label()
    );
    for f in &report.findings {
        println!("  {:<8} {:<22} {}", f.severity.label(), f.code, f.message);
    }
}

#[derive(Serialize)]
struct Hit {
    path: String,
    line: usize,
    report: Report,
}

pub(super) fn scan(
    paths: &[PathBuf],
    format: Format,
    fail_on: FailOn,
    now: DateTime<Utc>,
) -> ExitCode {
    let mut files = Vec::new();
    for p in paths {
        collect(p, &mut files);
    }
    let mut hits = Vec::new();
    let mut unreadable = 0usize;
    for file in &files {
        let Some(text) = read_text(file) else {
            unreadable += 1;
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            for candidate in find_candidates(line) {
                if let Ok(parsed) = parse(candidate) {
                    hits.push(Hit {
                        path: file.display().to_string(),
                        line: n + 1,
                        report: grade(&parsed, now),
                    });
                }
            }
        }
    }
    match format {
        Format::Json => println!("{}", to_json(&hits)),
        Format::Human => {
            for h in &hits {
                let codes: Vec<&str> = h
                    .report
                    .findings
                    .iter()
                    .filter(|f| f.severity >= crate::sas::lint::Severity::Medium)
                    .map(|f| f.code)
                    .collect();
                println!(
                    "{}:{}: {} {:?} SAS on {} ({})",
                    h.path,
                    h.line,
                    h.report.worst.label(),
                    h.report.kind,
                    where_of(&h.report),
                    codes.join(", ")
                );
            }
            eprintln!(
                "scanned {} files ({} skipped), found {} SAS",
                files.len(),
                unreadable,
                hits.len()
            );
        }
    }
    exit_for(hits.iter().any(|h| fail_on.reached_by(h.report.worst)))
}

/// Walks `path`: a file is taken as is, a directory recursively, `.git` and symbolic links
/// skipped. Entries are sorted so output is stable.
fn collect(path: &Path, out: &mut Vec<PathBuf>) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        eprintln!("warning: cannot read {}", path.display());
        return;
    };
    if meta.is_file() {
        out.push(path.to_owned());
    } else if meta.is_dir() {
        if path.file_name().is_some_and(|n| n == ".git") {
            return;
        }
        let Ok(entries) = std::fs::read_dir(path) else {
            eprintln!("warning: cannot list {}", path.display());
            return;
        };
        let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        children.sort();
        for c in children {
            collect(&c, out);
        }
    }
}

/// The file as text, or `None` for binary (a NUL byte), oversized or unreadable files.
fn read_text(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.len() > MAX_SCAN_BYTES {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    if bytes.contains(&0) {
        return None;
    }
    Some(String::from_utf8_lossy(&bytes).into_owned())
}
