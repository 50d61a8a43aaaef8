//! A small tmpfs that a test can fill up, to make a ledger unwritable for real (disk full) and
//! writable again, without restarting anything.
//!
//! Mounting needs root (as on this project's machines and CI). Without it the test is skipped
//! with a loud message, except under `CI`, where it fails.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs, unmounted on drop (also when the test fails).
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

    /// Fills every free byte, down to the last one, so that any write fails with ENOSPC.
    /// Returns how many bytes it wrote.
    pub fn fill(&self) -> u64 {
        let mut file = std::fs::File::create(&self.filler).unwrap();
        let mut written = 0u64;
        for chunk in [64 * 1024, 4096, 512, 1] {
            let block = vec![0u8; chunk];
            loop {
                match file.write(&block) {
                    Ok(0) => break,
                    Ok(n) => written += n as u64,
                    Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                    Err(e) => panic!("filling the disk: {e}"),
                }
            }
        }
        let _ = file.sync_all();
        written
    }

    /// Frees the space again.
    pub fn unfill(&self) {
        std::fs::remove_file(&self.filler).unwrap();
    }

    /// `mount -o remount,<mode>`: Linux refuses `ro` with EBUSY while a file on the mount is
    /// open for writing.
    pub fn remount(&self, mode: &str) -> Result<(), String> {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(self.dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}
