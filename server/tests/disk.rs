//! Disk faults: on a full disk (a small tmpfs) pushes fail cleanly and store nothing,
//! decisions that A1 requires a record for are denied (the audit policy applies), and
//! both recover by themselves once space returns, with the audit chain intact.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped. Needs root, as
/// the PostgreSQL harness does.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(name: &str, size: &str) -> Tmpfs {
        let dir = temp_dir(name);
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "cannot mount a tmpfs on {} (the test needs root)",
            dir.display()
        );
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `dir` to the last byte; returns the filler's path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.write_all(&[0]);
    let _ = f.sync_all();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_pushes_cleanly_denies_unaudited_allows_and_recovers() {
    let fs = Tmpfs::mount("full-disk", "4m");
    let data = fs.0.join("data");
    let server = TestServer::start_with(&data, Some("clinic-portal"), |c| {
        if let Some(a) = &mut c.audit {
            a.all_decisions = true;
            a.sync_every = Duration::from_millis(10);
        }
    })
    .await;
    let mut c = server.authz().await;
    let mut a = server.admin().await;
    assert!(is_allow(&decide(&mut c, ann_reads()).await));

    let filler = fill(&fs.0);
    // A push cannot be stored: a clear refusal, and nothing half-written stays behind.
    let err = a
        .push_snapshot(admin(push_request(example("clinic-portal"))))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("full"), "{}", err.message());
    let leftovers: Vec<_> = std::fs::read_dir(data.join("versions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    // Audited allows turn into denies once the trail cannot write (deny policy, A1).
    // The audit policy applies.
    eventually(Duration::from_secs(10), || {
        let mut c = c.clone();
        async move { decide(&mut c, ann_reads()).await.reason == "audit_unavailable" }
    })
    .await;

    // Space returns: both recover by themselves.
    std::fs::remove_file(filler).unwrap();
    // The audit trail recovers.
    eventually(Duration::from_secs(10), || {
        let mut c = c.clone();
        async move { is_allow(&decide(&mut c, ann_reads()).await) }
    })
    .await;
    let pushed = a
        .push_snapshot(admin(push_request(example("clinic-portal"))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pushed.version, 2);
    server.stop().await.unwrap();

    // The chain is whole, and says where it broke and recovered.
    let audit = data.join("audit");
    let verified = portcullis_server::audit::verify(&audit).unwrap();
    assert!(matches!(verified, Ok(n) if n > 0), "{verified:?}");
    let text: String = std::fs::read_dir(&audit)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(text.contains("\"kind\":\"audit_recovered\""));
}
