//! Threads for admin work at the lowest scheduling priority the OS grants, so a large
//! push cannot take CPU from checks (the async threads keep their normal priority): one
//! where pushes and catch-ups compile (the compiler's scoped threads, validation beside
//! resolving and the self-check's, inherit its priority), and one where the file store
//! writes versions (a version's bytes copied into the page cache and fsynced: 7 ms of CPU
//! for a 5 MB bundle on a tokio blocking thread at normal priority, which held the core
//! from the checks for as long). Pushes are serialized by the engine's writer lock, so one
//! thread each costs no throughput.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;

type Job = Box<dyn FnOnce() + Send>;

/// A handle to a low-priority thread; the thread ends when the handle is dropped.
#[derive(Debug)]
pub struct LowPriorityThread {
    jobs: mpsc::Sender<Job>,
    name: &'static str,
}

/// The thread is gone, or a job on it panicked.
#[derive(Debug, thiserror::Error)]
#[error("the {0} thread failed: {1}")]
pub struct LowPriorityError(&'static str, &'static str);

impl From<LowPriorityError> for crate::store::StoreError {
    fn from(e: LowPriorityError) -> Self {
        crate::store::StoreError::Io(std::io::Error::other(e))
    }
}

impl LowPriorityThread {
    /// Starts the thread `name` and lowers its priority (a warning when the OS refuses).
    pub fn start(name: &'static str) -> std::io::Result<LowPriorityThread> {
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new().name(name.into()).spawn(move || {
            if let Err(e) = thread_priority::ThreadPriority::Min.set_for_current() {
                tracing::warn!("cannot lower the {name} thread's priority ({e:?}); it runs at normal priority");
            }
            for job in rx {
                // A panicking job answers its caller with an error; the thread lives on.
                let _ = catch_unwind(AssertUnwindSafe(job));
            }
        })?;
        Ok(LowPriorityThread { jobs, name })
    }

    /// Runs `f` on the thread and waits for its result without blocking the async threads.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, LowPriorityError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| LowPriorityError(self.name, "it has stopped"))?;
        rx.await.map_err(|_| LowPriorityError(self.name, "a job panicked"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_in_order_and_a_panic_does_not_stop_the_thread() {
        let t = LowPriorityThread::start("compile").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.run(|| 2 + 2).await.ok(), Some(4));
        let name = t
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .ok()
            .flatten();
        assert_eq!(name.as_deref(), Some("compile"));
        let failed = t.run(|| panic!("boom")).await;
        assert!(failed.is_err());
        assert_eq!(t.run(|| "still here").await.ok(), Some("still here"));
    }
}
