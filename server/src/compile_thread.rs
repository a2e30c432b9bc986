//! Where pushes and catch-ups compile: one dedicated thread at the lowest scheduling
//! priority the OS grants, so a large push cannot take CPU from checks (the async threads
//! keep their normal priority) and one push compiles at a time. The compiler's scoped
//! threads (validation beside resolving; the self-check's, up to `SELF_CHECK_THREADS`, one
//! per core) inherit that priority. Pushes are serialized by the engine's writer lock
//! anyway, so one thread costs no throughput.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;

type Job = Box<dyn FnOnce() + Send>;

/// A handle to the compile thread; the thread ends when the handle is dropped.
#[derive(Debug)]
pub struct CompileThread {
    jobs: mpsc::Sender<Job>,
}

/// The compile thread is gone, or a job on it panicked.
#[derive(Debug, thiserror::Error)]
#[error("the compile thread failed: {0}")]
pub struct CompileThreadError(&'static str);

impl CompileThread {
    /// Starts the thread and lowers its priority (a warning when the OS refuses).
    pub fn start() -> std::io::Result<CompileThread> {
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new().name("compile".into()).spawn(move || {
            if let Err(e) = thread_priority::ThreadPriority::Min.set_for_current() {
                tracing::warn!("cannot lower the compile thread's priority ({e:?}); pushes compile at normal priority");
            }
            for job in rx {
                // A panicking job answers its caller with an error; the thread lives on.
                let _ = catch_unwind(AssertUnwindSafe(job));
            }
        })?;
        Ok(CompileThread { jobs })
    }

    /// Runs `f` on the compile thread and waits for its result without blocking the
    /// async threads.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, CompileThreadError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| CompileThreadError("it has stopped"))?;
        rx.await.map_err(|_| CompileThreadError("a job panicked"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_in_order_and_a_panic_does_not_stop_the_thread() {
        let t = CompileThread::start().unwrap_or_else(|e| panic!("{e}"));
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
