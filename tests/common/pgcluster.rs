//! A private PostgreSQL server per test, which the test may stop and start at will without
//! disturbing the shared server on 5432 that other tests use.
//!
//! The binaries come from `/usr/lib/postgresql/<version>/bin` (the newest version found), or from
//! the directory in `SASGATE_PG_BIN`. `initdb` (trust authentication, user `postgres`) writes the
//! cluster into a temporary directory, and the server listens on a free loopback port with its
//! Unix socket in that directory. PostgreSQL refuses to run as root, so as root every command
//! runs as the `postgres` OS user (`runuser`), which then owns the directory. Without binaries
//! the test is skipped with a loud message, except under `CI`, where it fails.
//!
//! Everything is stopped (`-m immediate`) and removed on drop, also when the test fails.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A running (or deliberately stopped) private cluster.
pub struct PgCluster {
    bin: PathBuf,
    port: u16,
    data: PathBuf,
    log: PathBuf,
    as_postgres: bool,
    // Last, so the directory is removed after the server is stopped.
    dir: tempfile::TempDir,
}

/// How `pg_ctl stop` shuts the server down.
#[derive(Clone, Copy, Debug)]
pub enum StopMode {
    /// Disconnects every client, rolls back open transactions, checkpoints.
    Fast,
    /// Kills every server process at once, as a crash would; the next start recovers from WAL.
    Immediate,
}

impl StopMode {
    fn as_str(self) -> &'static str {
        match self {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// The newest `/usr/lib/postgresql/*/bin` holding `initdb` and `pg_ctl`, or `SASGATE_PG_BIN`.
fn find_bin() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("SASGATE_PG_BIN") {
        let bin = PathBuf::from(bin);
        return if bin.join("initdb").is_file() && bin.join("pg_ctl").is_file() {
            Ok(bin)
        } else {
            Err(format!(
                "SASGATE_PG_BIN={} holds no initdb and pg_ctl",
                bin.display()
            ))
        };
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("/usr/lib/postgresql: {e}"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| "no /usr/lib/postgresql/<version>/bin with initdb and pg_ctl".into())
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PgCluster {
    /// Creates and starts a cluster, or returns `None` (after saying so loudly) when PostgreSQL
    /// is not installed, outside CI.
    pub fn start() -> Option<Self> {
        let bin = match find_bin() {
            Ok(bin) => bin,
            Err(why) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI must have the PostgreSQL server binaries: {why}"
                );
                eprintln!(
                    "\n*** SKIPPED: no PostgreSQL server binaries ({why}); install postgresql or set SASGATE_PG_BIN ***\n"
                );
                return None;
            }
        };
        let as_postgres = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let dir = tempfile::Builder::new()
            .prefix("sasgate-pg-")
            .tempdir()
            .unwrap();
        if as_postgres {
            let out = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "chown postgres {}: {}",
                dir.path().display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut cluster = Self {
            data: dir.path().join("data"),
            log: dir.path().join("postgres.log"),
            bin,
            port: 0,
            as_postgres,
            dir,
        };
        let out = cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data.display().to_string(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        assert!(out.status.success(), "initdb failed:\n{}", text(&out));
        // A port can be taken between choosing it and the server binding it: try a few.
        let mut failures = Vec::new();
        for _ in 0..3 {
            cluster.port = free_port();
            match cluster.pg_ctl_start() {
                Ok(()) => return Some(cluster),
                Err(e) => failures.push(e),
            }
        }
        panic!(
            "the private PostgreSQL did not start:\n{}",
            failures.join("\n---\n")
        );
    }

    /// The URL sasgate's ledger uses: `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server log so far, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the server and waits until it is down.
    pub fn stop(&self, mode: StopMode) {
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data.display().to_string(),
                "-m",
                mode.as_str(),
                "-w",
                "-t",
                "60",
                "stop",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl stop -m {} failed:\n{}\n{}",
            mode.as_str(),
            text(&out),
            self.log()
        );
    }

    /// Starts the stopped server again on the same port and waits until it accepts connections
    /// (`pg_ctl -w` polls for that itself).
    pub fn restart(&self) {
        if let Err(e) = self.pg_ctl_start() {
            panic!("the private PostgreSQL did not start again:\n{e}");
        }
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data.display().to_string(),
                "-l",
                &self.log.display().to_string(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{}\n{}", text(&out), self.log()))
        }
    }

    /// Runs one of the binaries, as `postgres` when this process is root.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("PGDATA")
            .env_remove("PGPORT")
            .env_remove("PGHOST");
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()))
    }

    /// Where the cluster lives.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.data.join("postmaster.pid").exists() {
            let _ = self.run(
                "pg_ctl",
                &[
                    "-D",
                    &self.data.display().to_string(),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
            );
        }
    }
}
