//! A small tmpfs that a test can fill up, to make a ledger unwritable for real (disk full) and
//! writable again, without restarting anything.
//!
//! Mounting needs root (as on this project's machines and CI). Without it the test is skipped
//! with a loud message, except under `CI`, where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs, unmounted on drop.
pub struct Tmpfs {
    dir: tempfile::TempDir,
    filler: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `4m`), or returns `None` (after saying so loudly) where
    /// mounting is not permitted outside CI.
    pub fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::Builder::new()
            .prefix("sasgate-tmpfs-")
            .tempdir()
            .unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => {
                let filler = dir.path().join("filler");
                Some(Self { dir, filler })
            }
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI must be able to mount a tmpfs (run as root): {why}"
                );
                eprintln!(
                    "\n*** SKIPPED: cannot mount a tmpfs here ({why}); run as root to test a full disk ***\n"
                );
                None
            }
        }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills every free byte, so that any write fails with "no space left on device".
    pub fn fill(&self) {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&self.filler).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        loop {
            if f.write_all(&chunk).is_err() {
                break;
            }
        }
        // Also the last partial block.
        while f.write_all(&[0u8; 512]).is_ok() {}
        let _ = f.sync_all();
    }

    /// Frees the space again.
    pub fn unfill(&self) {
        std::fs::remove_file(&self.filler).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
