//! A throwaway PostgreSQL server for tests: Debian's `postgresql` package (installed with
//! apt-get when missing and we are root), `initdb` into a temporary directory, a free
//! loopback port, run as the unprivileged `postgres` user when the tests run as root.
//! Stopped and removed when dropped.

use super::{free_port, temp_dir};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The user the database runs as when tests run as root (initdb refuses root).
const PG_USER: &str = "postgres";

static INSTALL: Mutex<()> = Mutex::new(());

/// The newest `/usr/lib/postgresql/<major>/bin`, installing the package when it is missing.
fn bin_dir() -> PathBuf {
    let _once = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(dir) = find_bin_dir() {
        return dir;
    }
    assert!(
        is_root(),
        "PostgreSQL is not installed: install Debian's `postgresql` package (apt-get install -y postgresql)"
    );
    eprintln!("installing Debian's postgresql package for the fleet tests");
    let run = |args: &[&str]| {
        let ok = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "`apt-get {}` failed: install Debian's `postgresql` package",
            args.join(" ")
        );
    };
    run(&["update", "-q"]);
    run(&["install", "-y", "-q", "postgresql"]);
    find_bin_dir().expect("postgresql installed but no /usr/lib/postgresql/*/bin/initdb")
}

fn find_bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let major = e.file_name().to_string_lossy().parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// uid and gid of the `postgres` user.
fn pg_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, PG_USER]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

/// A running PostgreSQL server.
pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    pub port: u16,
    ids: Option<(u32, u32)>,
    child: Option<Child>,
}

impl Postgres {
    /// Initializes a cluster and starts it.
    pub fn start() -> Postgres {
        let bin = bin_dir();
        let ids = is_root().then(pg_ids);
        let root = temp_dir("pg");
        let data = root.join("data");
        if let Some((uid, gid)) = ids {
            std::os::unix::fs::chown(&root, Some(uid), Some(gid)).unwrap();
        }
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .args(["-A", "trust", "-U", "portcullis", "--no-sync", "-E", "UTF8", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let out = as_user(&mut initdb, ids).output().unwrap();
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let mut pg = Postgres {
            bin,
            data,
            port: free_port(),
            ids,
            child: None,
        };
        pg.run();
        pg
    }

    /// Starts the server on the existing cluster and waits until it accepts connections.
    pub fn run(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut cmd = Command::new(self.bin.join("postgres"));
            cmd.arg("-D")
                .arg(&self.data)
                .args(["-p", &self.port.to_string(), "-k"])
                .arg(&self.data)
                .args(["-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"])
                // Tests lose nothing to a power cut; a process crash (kill -9) keeps what
                // the kernel holds either way.
                .args(["-c", "fsync=off"])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let mut child = as_user(&mut cmd, self.ids).spawn().unwrap();
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: a previous instance still held the port or memory
                }
                if self.sql("SELECT 1").is_ok() {
                    self.child = Some(child);
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Kills the server with SIGKILL (a crash), waiting for its backends to go.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.sql("SELECT 1").is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `postgres://portcullis@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://portcullis@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs SQL with psql; its unaligned output, or psql's error.
    pub fn sql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args([
                "-U",
                "portcullis",
                "-d",
                "postgres",
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// The data directory (for inspection).
    pub fn data(&self) -> &Path {
        &self.data
    }
}

fn as_user(cmd: &mut Command, ids: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = ids {
        cmd.gid(gid).uid(uid);
    }
    cmd
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(root) = self.data.parent() {
            let _ = std::fs::remove_dir_all(root);
        }
    }
}
