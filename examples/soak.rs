//! Soak driver (issue 9 item 4): drives a live sasgate at a fixed request rate for a fixed time,
//! with a realistic mix of traffic, and samples the server's resident memory as it goes. Not
//! shipped; `scripts/soak.sh` starts Azurite and sasgate and runs it:
//!
//! ```text
//! SOAK_ADMIN_KEY=sgk_… SOAK_RESEARCHER_KEY=sgk_… cargo run --release --example soak -- \
//!     --url http://127.0.0.1:PORT --rate 200 --duration 10m --pid PID [--ledger PATH]
//! ```
//!
//! (`--admin-key`/`--researcher-key` work too, but put the keys in `ps`.)
//!
//! Open loop: request `i` is due at `start + i / rate`, whatever happened to the earlier ones,
//! and its latency counts from when it was due (so a slow server cannot hide behind a client
//! that waits for it: no coordinated omission). The driver records how late it sent anything;
//! it has fallen behind if it could not keep the rate (achieved below 95% of the target) or hit
//! `--max-in-flight`.
//!
//! The mix, per 20 requests: 6 researcher mints of a published model, 2 of a dataset with a
//! reason, 2 bound to a stored access policy (`researchers-read-reports`), 1 refused mint (a
//! week-long TTL, 403 `ttl_exceeds_policy`, which writes a denial), 2 link creations, 4 link
//! redemptions (302, redirect not followed), 1 admin page of `GET /v1/issuances`, 2 `/healthz`.
//! It expects the containers and policies that `sasgate dev seed` and `policy/` give.
//!
//! An error is any status other than the one expected, a transport error or time-out, a 201
//! without its URL (or link), a 302 without a SAS in `Location`, or a request not sent because
//! `--max-in-flight` were outstanding.
//!
//! Memory: `VmRSS` (and `RssAnon`, `RssFile`, `Threads`) of `--pid` from `/proc/<pid>/status`
//! at the start, every `--sample-every` and at the end. **Flat** means both:
//! 1. the least-squares slope of RSS over the second half of the run (the first half is
//!    warm-up: allocator arenas, connection pools, caches filling) is below `--max-slope-pct`
//!    (default 1) percent of the RSS at the half-way sample, per minute; and
//! 2. the RSS at the end is below `--max-growth` (default 1.10) times the half-way sample.
//!
//! See `scripts/soak.sh` for why these thresholds catch a real leak, what is bounded, and what
//! the thread count next to each sample explains when it fails.
//!
//! The last line is the figure `scripts/reliability.sh` collects:
//! `RELIABILITY soak <name> rate=<target>/s achieved=<x>/s requests=<n> errors=<n> p50_ms=<x>
//! p99_ms=<x> rss_start_kib=<n> rss_end_kib=<n> rss_slope_kib_per_min=<x>`. The exit status is
//! 0 only with no error, a flat RSS and the rate kept.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::time::Instant;

#[derive(Parser)]
#[command(about = "Drive a live sasgate at a fixed rate and watch its memory")]
struct Args {
    /// The server's base URL, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    url: String,
    /// Requests per second (the schedule; open loop).
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// How long to drive it: `600`, `90s`, `10m`, `1h`.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    duration: Duration,
    /// An API key of a principal with the `admin` role.
    #[arg(long, env = "SOAK_ADMIN_KEY", hide_env_values = true)]
    admin_key: String,
    /// An API key of a principal with the `researcher` role (the shipped policy/).
    #[arg(long, env = "SOAK_RESEARCHER_KEY", hide_env_values = true)]
    researcher_key: String,
    /// The sasgate process whose RSS is sampled.
    #[arg(long)]
    pid: u32,
    /// The name on the RELIABILITY line.
    #[arg(long, default_value = "mixed")]
    name: String,
    /// The storage account the policies name.
    #[arg(long, default_value = "devstoreaccount1")]
    account: String,
    /// How often RSS is sampled.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    sample_every: Duration,
    /// Requests outstanding at once before the driver counts a request as not sent (an error).
    #[arg(long, default_value_t = 2000)]
    max_in_flight: usize,
    /// Per-request time-out.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    /// The SQLite ledger file, to show its size (with its WAL) next to the RSS samples.
    #[arg(long)]
    ledger: Option<PathBuf>,
    /// Flatness: the most the second half's RSS slope may be, in percent of the half-way RSS
    /// per minute.
    #[arg(long, default_value_t = 1.0)]
    max_slope_pct: f64,
    /// Flatness: the most the end RSS may be, as a multiple of the half-way RSS.
    #[arg(long, default_value_t = 1.10)]
    max_growth: f64,
    /// Report the RSS samples and trend but do not judge them (a run too short to be past
    /// warm-up, e.g. the 30-second CI flavour).
    #[arg(long)]
    no_rss_verdict: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?}: a whole number with s, m or h"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{s:?}: the unit is s, m or h")),
    };
    if seconds == 0 {
        return Err("must be at least 1s".into());
    }
    Ok(Duration::from_secs(seconds))
}

/// What one request does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    MintModel,
    MintDataset,
    MintPolicyBound,
    MintRefused,
    LinkCreate,
    LinkRedeem,
    ListIssuances,
    Health,
}

const KINDS: [Kind; 8] = [
    Kind::MintModel,
    Kind::MintDataset,
    Kind::MintPolicyBound,
    Kind::MintRefused,
    Kind::LinkCreate,
    Kind::LinkRedeem,
    Kind::ListIssuances,
    Kind::Health,
];

/// Request `i` is `CYCLE[i % 20]`: the mix, interleaved so that every second has all of it.
const CYCLE: [Kind; 20] = [
    Kind::MintModel,
    Kind::LinkCreate,
    Kind::Health,
    Kind::MintModel,
    Kind::MintPolicyBound,
    Kind::LinkRedeem,
    Kind::MintModel,
    Kind::MintDataset,
    Kind::ListIssuances,
    Kind::LinkRedeem,
    Kind::MintModel,
    Kind::MintRefused,
    Kind::LinkRedeem,
    Kind::Health,
    Kind::MintModel,
    Kind::MintPolicyBound,
    Kind::LinkCreate,
    Kind::LinkRedeem,
    Kind::MintModel,
    Kind::MintDataset,
];

impl Kind {
    fn index(self) -> usize {
        KINDS.iter().position(|k| *k == self).unwrap_or(0)
    }

    fn name(self) -> &'static str {
        match self {
            Kind::MintModel => "POST /v1/tokens models",
            Kind::MintDataset => "POST /v1/tokens datasets+reason",
            Kind::MintPolicyBound => "POST /v1/tokens reports (stored policy)",
            Kind::MintRefused => "POST /v1/tokens ttl=7d (403)",
            Kind::LinkCreate => "POST /v1/links",
            Kind::LinkRedeem => "GET /l/{code} (302)",
            Kind::ListIssuances => "GET /v1/issuances?limit=50",
            Kind::Health => "GET /healthz",
        }
    }
}

/// The links redeemed: the newest ones created, used round robin.
const LINK_POOL: usize = 64;

struct Ctx {
    client: reqwest::Client,
    base: String,
    admin: String,
    researcher: String,
    account: String,
    links: Mutex<Vec<String>>,
}

#[derive(Default)]
struct Stats {
    /// Latency in microseconds from when each request was due, per kind.
    latency_us: [Vec<u32>; KINDS.len()],
    errors: [u64; KINDS.len()],
    /// The first few errors, for the report.
    samples: Vec<String>,
}

impl Stats {
    fn record(&mut self, kind: Kind, latency: Duration, outcome: Result<(), String>) {
        let k = kind.index();
        let us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        self.latency_us[k].push(us);
        if let Err(e) = outcome {
            self.errors[k] += 1;
            if self.samples.len() < 20 {
                self.samples.push(format!("{}: {e}", kind.name()));
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn mint_body(ctx: &Ctx, kind: Kind) -> Value {
    let account = ctx.account.as_str();
    match kind {
        Kind::MintDataset => json!({"account": account, "container": "datasets",
            "blob": "survey.csv", "ttl": "15m", "reason": "soak: survey analysis"}),
        Kind::MintPolicyBound => {
            json!({"account": account, "container": "reports", "blob": "q1.txt", "ttl": "15m"})
        }
        Kind::MintRefused => json!({"account": account, "container": "models",
            "blob": "published/hello-model.txt", "ttl": "7d"}),
        Kind::LinkCreate => {
            json!({"account": account, "container": "shared", "blob": "paper.txt"})
        }
        _ => json!({"account": account, "container": "models",
            "blob": "published/hello-model.txt", "ttl": "15m"}),
    }
}

/// The status, the `Location` header and the body (JSON, or Null) of one request.
async fn send(
    req: reqwest::RequestBuilder,
) -> Result<(reqwest::StatusCode, Option<String>, Value), String> {
    let resp = req
        .send()
        .await
        .map_err(|e| format!("transport: {}", chain(&e)))?;
    let status = resp.status();
    let location = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Read the whole body, so that the connection goes back to the pool.
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| format!("reading the body: {}", chain(&e)))?;
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, location, body))
}

/// An error and its sources, `: `-separated (reqwest's own message omits the cause).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn expect_status(got: reqwest::StatusCode, want: u16, body: &Value) -> Result<(), String> {
    if got.as_u16() == want {
        Ok(())
    } else {
        let code = body["code"].as_str().unwrap_or("-");
        Err(format!("status {got} (code {code}), expected {want}"))
    }
}

/// Runs request `i` of kind `kind`; Err says why it counts as an error.
async fn run(ctx: &Ctx, kind: Kind, i: u64) -> Result<(), String> {
    let base = &ctx.base;
    match kind {
        Kind::MintModel | Kind::MintDataset | Kind::MintPolicyBound | Kind::MintRefused => {
            let req = ctx
                .client
                .post(format!("{base}/v1/tokens"))
                .bearer_auth(&ctx.researcher)
                .json(&mint_body(ctx, kind));
            let (status, _, body) = send(req).await?;
            if kind == Kind::MintRefused {
                expect_status(status, 403, &body)?;
                return match body["code"].as_str() {
                    Some("ttl_exceeds_policy") => Ok(()),
                    other => Err(format!("403 with code {other:?}, not ttl_exceeds_policy")),
                };
            }
            expect_status(status, 201, &body)?;
            let url = body["url"].as_str().unwrap_or("");
            if !url.contains("sig=") {
                return Err("201 without a signed url".into());
            }
            if kind == Kind::MintPolicyBound && !url.contains("si=") {
                return Err("201 for a stored-policy rule without si= in the url".into());
            }
            Ok(())
        }
        Kind::LinkCreate => {
            let req = ctx
                .client
                .post(format!("{base}/v1/links"))
                .bearer_auth(&ctx.researcher)
                .json(&mint_body(ctx, kind));
            let (status, _, body) = send(req).await?;
            expect_status(status, 201, &body)?;
            let code = body["link"]
                .as_str()
                .and_then(|l| l.rsplit_once("/l/"))
                .map(|(_, code)| code.to_owned())
                .filter(|c| !c.is_empty())
                .ok_or("201 without a link")?;
            let mut links = lock(&ctx.links);
            if links.len() >= LINK_POOL {
                links.remove(0);
            }
            links.push(code);
            Ok(())
        }
        Kind::LinkRedeem => {
            let code = {
                let links = lock(&ctx.links);
                let n = links.len().max(1);
                let pick = usize::try_from(i).unwrap_or(0) % n;
                links.get(pick).cloned().ok_or("no link to redeem")?
            };
            let req = ctx.client.get(format!("{base}/l/{code}"));
            let (status, location, body) = send(req).await?;
            expect_status(status, 302, &body)?;
            match location {
                Some(l) if l.contains("sig=") => Ok(()),
                _ => Err("302 without a SAS in Location".into()),
            }
        }
        Kind::ListIssuances => {
            let req = ctx
                .client
                .get(format!("{base}/v1/issuances?limit=50"))
                .bearer_auth(&ctx.admin);
            let (status, _, body) = send(req).await?;
            expect_status(status, 200, &body)?;
            match body["items"].as_array() {
                Some(items) if !items.is_empty() => Ok(()),
                _ => Err("200 without issuances".into()),
            }
        }
        Kind::Health => {
            let (status, _, body) = send(ctx.client.get(format!("{base}/healthz"))).await?;
            expect_status(status, 200, &body)
        }
    }
}

/// One memory sample.
#[derive(Clone)]
struct Sample {
    at_s: f64,
    rss_kib: u64,
    anon_kib: u64,
    file_kib: u64,
    threads: u64,
    requests: u64,
    ledger_kib: Option<u64>,
}

/// `VmRSS`, `RssAnon` and `RssFile` of `pid`, in KiB, and its thread count.
fn read_rss(pid: u32) -> Result<(u64, u64, u64, u64), String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("reading /proc/{pid}/status (has sasgate exited?): {e}"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    match (
        field("VmRSS:"),
        field("RssAnon:"),
        field("RssFile:"),
        field("Threads:"),
    ) {
        (Some(rss), Some(anon), Some(file), Some(threads)) => Ok((rss, anon, file, threads)),
        _ => Err(format!(
            "no VmRSS/RssAnon/RssFile/Threads in /proc/{pid}/status"
        )),
    }
}

/// The ledger file and its WAL, in KiB.
fn ledger_kib(path: &Path) -> Option<u64> {
    let main = std::fs::metadata(path).ok()?.len();
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal = std::fs::metadata(PathBuf::from(wal)).map_or(0, |m| m.len());
    Some((main + wal) / 1024)
}

/// Least-squares slope of (minutes, KiB) points, in KiB per minute.
fn slope_kib_per_min(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    if sxx == 0.0 { 0.0 } else { sxy / sxx }
}

/// The value at quantile `q` of sorted `v`, in milliseconds.
fn quantile_ms(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * (sorted.len() - 1) as f64).round() as usize;
    f64::from(sorted[rank.min(sorted.len() - 1)]) / 1000.0
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match soak(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs the soak; Ok(passed).
async fn soak(args: Args) -> Result<bool, String> {
    if args.rate == 0 {
        return Err("--rate must be at least 1".into());
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(args.timeout)
        .pool_max_idle_per_host(args.max_in_flight)
        // sasgate closes an idle HTTP/1 keep-alive connection after 10 s (src/app.rs,
        // HEADER_READ_TIMEOUT); a client that kept it longer would now and then send on a
        // connection the server is closing, an error of the client's making.
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))?;
    let ctx = Arc::new(Ctx {
        client,
        base: args.url.trim_end_matches('/').to_owned(),
        admin: args.admin_key.clone(),
        researcher: args.researcher_key.clone(),
        account: args.account.clone(),
        links: Mutex::new(Vec::new()),
    });
    read_rss(args.pid)?;

    // Set-up, not counted: a few links to redeem, and one issuance for the admin page.
    for i in 0..8 {
        run(&ctx, Kind::LinkCreate, i)
            .await
            .map_err(|e| format!("set-up (creating a link): {e}"))?;
    }
    run(&ctx, Kind::MintModel, 0)
        .await
        .map_err(|e| format!("set-up (a first mint): {e}"))?;

    let total = u64::from(args.rate) * args.duration.as_secs();
    println!(
        "soak {}: {} requests/s for {} s ({total} requests) against {}, RSS of pid {} every {} s",
        args.name,
        args.rate,
        args.duration.as_secs(),
        ctx.base,
        args.pid,
        args.sample_every.as_secs()
    );

    let stats = Arc::new(Mutex::new(Stats::default()));
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();

    // The sampler: at 0, every sample_every, and once more after the drain (below).
    let sampler = {
        let (done, stop, pid, every, ledger) = (
            done.clone(),
            stop.clone(),
            args.pid,
            args.sample_every,
            args.ledger.clone(),
        );
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut next = start;
            loop {
                let (rss_kib, anon_kib, file_kib, threads) = read_rss(pid)?;
                samples.push(Sample {
                    at_s: start.elapsed().as_secs_f64(),
                    rss_kib,
                    anon_kib,
                    file_kib,
                    threads,
                    requests: done.load(Ordering::Relaxed),
                    ledger_kib: ledger.as_deref().and_then(ledger_kib),
                });
                next += every;
                while Instant::now() < next {
                    if stop.load(Ordering::Relaxed) {
                        return Ok::<_, String>(samples);
                    }
                    tokio::time::sleep(Duration::from_millis(100).min(next - Instant::now())).await;
                }
            }
        })
    };

    // The schedule.
    let in_flight = Arc::new(Semaphore::new(args.max_in_flight));
    let nanos_per_request = 1_000_000_000f64 / f64::from(args.rate);
    let mut not_sent = 0u64;
    let mut max_lag = Duration::ZERO;
    let mut late = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let due = start + Duration::from_nanos((i as f64 * nanos_per_request) as u64);
        tokio::time::sleep_until(due).await;
        let lag = Instant::now().saturating_duration_since(due);
        max_lag = max_lag.max(lag);
        if lag > Duration::from_millis(100) {
            late += 1;
        }
        let kind = CYCLE[usize::try_from(i % 20).unwrap_or(0)];
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            not_sent += 1;
            lock(&stats).record(
                kind,
                Duration::ZERO,
                Err(format!(
                    "not sent: {} requests in flight",
                    args.max_in_flight
                )),
            );
            continue;
        };
        let (ctx, stats, done) = (ctx.clone(), stats.clone(), done.clone());
        tasks.spawn(async move {
            let outcome = run(&ctx, kind, i).await;
            let latency = due.elapsed();
            lock(&stats).record(kind, latency, outcome);
            done.fetch_add(1, Ordering::Relaxed);
            drop(permit);
        });
        // Reap finished tasks as we go, so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    let sending_s = start.elapsed().as_secs_f64();
    while tasks.join_next().await.is_some() {}
    stop.store(true, Ordering::Relaxed);
    let mut samples = sampler
        .await
        .map_err(|e| format!("the sampler failed: {e}"))??;
    let (rss_kib, anon_kib, file_kib, threads) = read_rss(args.pid)?;
    samples.push(Sample {
        at_s: start.elapsed().as_secs_f64(),
        rss_kib,
        anon_kib,
        file_kib,
        threads,
        requests: done.load(Ordering::Relaxed),
        ledger_kib: args.ledger.as_deref().and_then(ledger_kib),
    });

    // Latency and errors.
    let stats = lock(&stats);
    let sent = total - not_sent;
    let achieved = sent as f64 / sending_s;
    let errors: u64 = stats.errors.iter().sum();
    println!();
    println!(
        "{:<40} {:>8} {:>7} {:>9} {:>9} {:>9}",
        "request", "count", "errors", "p50_ms", "p99_ms", "max_ms"
    );
    let mut all: Vec<u32> = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for kind in KINDS {
        let k = kind.index();
        let mut v = stats.latency_us[k].clone();
        v.sort_unstable();
        println!(
            "{:<40} {:>8} {:>7} {:>9.2} {:>9.2} {:>9.2}",
            kind.name(),
            v.len(),
            stats.errors[k],
            quantile_ms(&v, 0.50),
            quantile_ms(&v, 0.99),
            quantile_ms(&v, 1.0)
        );
        all.extend(v);
    }
    all.sort_unstable();
    let (p50, p99, max) = (
        quantile_ms(&all, 0.50),
        quantile_ms(&all, 0.99),
        quantile_ms(&all, 1.0),
    );
    println!(
        "{:<40} {:>8} {:>7} {:>9.2} {:>9.2} {:>9.2}",
        "all", sent, errors, p50, p99, max
    );
    for s in &stats.samples {
        println!("error: {s}");
    }
    println!(
        "driver: sent {sent} of {total} in {sending_s:.1} s; max lateness {:.1} ms; {late} sent over 100 ms late; {not_sent} not sent (in-flight cap {})",
        max_lag.as_secs_f64() * 1000.0,
        args.max_in_flight
    );

    // Memory.
    println!();
    println!(
        "{:>7} {:>10} {:>10} {:>10} {:>8} {:>10} {:>11}",
        "t_s", "rss_kib", "anon_kib", "file_kib", "threads", "requests", "ledger_kib"
    );
    for s in &samples {
        let ledger = s.ledger_kib.map_or("-".to_owned(), |k| k.to_string());
        println!(
            "{:>7.0} {:>10} {:>10} {:>10} {:>8} {:>10} {:>11}",
            s.at_s, s.rss_kib, s.anon_kib, s.file_kib, s.threads, s.requests, ledger
        );
    }
    let half = args.duration.as_secs_f64() / 2.0;
    let second_half: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.at_s >= half)
        .map(|s| (s.at_s / 60.0, s.rss_kib as f64))
        .collect();
    let slope = slope_kib_per_min(&second_half);
    let first = samples.first().map_or(0, |s| s.rss_kib);
    let last = samples.last().map_or(0, |s| s.rss_kib);
    let mid = samples
        .iter()
        .find(|s| s.at_s >= half)
        .map_or(last, |s| s.rss_kib);
    let slope_limit = mid as f64 * args.max_slope_pct / 100.0;
    let growth = last as f64 / mid.max(1) as f64;
    let flat = second_half.len() >= 2 && slope <= slope_limit && growth <= args.max_growth;
    let verdict = if args.no_rss_verdict {
        "RSS not judged (--no-rss-verdict)"
    } else if flat {
        "flat"
    } else {
        "NOT FLAT"
    };
    println!(
        "RSS trend: second-half slope {slope:.1} KiB/min over {} samples (limit {slope_limit:.1} = {}% of the half-way {mid} KiB per minute); end/half-way {growth:.3} (limit {}); end/start {:.3}; {}",
        second_half.len(),
        args.max_slope_pct,
        args.max_growth,
        last as f64 / first.max(1) as f64,
        verdict
    );
    // Not part of the verdict, but what to look at when it fails: a thread added under load
    // (tokio's blocking pool grows when blocking work piles up) keeps its own allocator heap, so
    // RSS steps with the thread count; a leak instead climbs between steps.
    let threads_max = samples.iter().map(|s| s.threads).max().unwrap_or(0);
    let since_last_change = samples
        .windows(2)
        .rposition(|w| w[0].threads != w[1].threads)
        .map_or(0, |i| i + 1);
    let tail = samples.get(since_last_change..).unwrap_or(&[]);
    let stretch: Vec<(f64, f64)> = tail
        .iter()
        .map(|s| (s.at_s / 60.0, s.rss_kib as f64))
        .collect();
    let stretch_s = match (tail.first(), tail.last()) {
        (Some(a), Some(b)) => b.at_s - a.at_s,
        _ => 0.0,
    };
    println!(
        "threads: {} at the start, {threads_max} at most, {} at the end; over the last {stretch_s:.0} s at a constant thread count ({} samples) the RSS slope is {:.1} KiB/min",
        samples.first().map_or(0, |s| s.threads),
        samples.last().map_or(0, |s| s.threads),
        stretch.len(),
        slope_kib_per_min(&stretch)
    );
    if second_half.len() < 2 && !args.no_rss_verdict {
        println!("RSS trend: too few samples in the second half to judge; run longer");
    }
    let rate_kept = achieved >= 0.95 * f64::from(args.rate) && not_sent == 0;
    if !rate_kept {
        println!(
            "driver: fell behind (achieved {achieved:.1}/s of {}/s, {not_sent} not sent): the figures do not show this rate",
            args.rate
        );
    }
    println!(
        "RELIABILITY soak {} rate={}/s achieved={achieved:.1}/s requests={sent} errors={errors} p50_ms={p50:.2} p99_ms={p99:.2} rss_start_kib={first} rss_end_kib={last} rss_slope_kib_per_min={slope:.1}",
        args.name, args.rate
    );
    Ok(errors == 0 && (flat || args.no_rss_verdict) && rate_kept)
}
