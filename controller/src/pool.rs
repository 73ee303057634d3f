//! The threads that unseal: a fixed set fed from a queue.
//!
//! Unsealing is pure CPU (private-key operations), so it runs off the async runtime, on one
//! thread per core. Why not `spawn_blocking` behind a semaphore: there, when an unseal ends,
//! the next starts only after the runtime has polled the reconcile waiting for the permit and
//! that reconcile has spawned its task, and on a machine whose cores are busy unsealing that
//! hop leaves them idle (cold start of 4,000 SealedSecrets on 2 cores: 11 % idle). Here a thread
//! that finishes takes the next queued job at once.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;
use tracing::warn;

type Job = Box<dyn FnOnce() + Send>;

/// A job ended in a panic (its thread lives on).
#[derive(Debug, thiserror::Error)]
#[error("the unseal job panicked")]
pub struct Panicked;

/// A fixed set of threads running jobs in the order they are queued. Dropping the pool lets
/// the threads finish the queue and end.
#[derive(Debug)]
pub struct UnsealPool {
    queue: mpsc::Sender<Job>,
}

impl UnsealPool {
    /// Starts `threads` threads (at least one).
    pub fn new(threads: usize) -> Self {
        let (queue, jobs) = mpsc::channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        for index in 0..threads.max(1) {
            let jobs = jobs.clone();
            let started = std::thread::Builder::new()
                .name(format!("unseal-{index}"))
                .spawn(move || work(&jobs));
            if let Err(error) = started {
                warn!(%error, "starting an unseal thread failed");
            }
        }
        UnsealPool { queue }
    }

    /// Runs `f` on one of the pool's threads.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Panicked> {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(f());
        });
        if let Err(mpsc::SendError(job)) = self.queue.send(job) {
            // No thread could be started: the runtime's blocking threads do the work instead.
            return match tokio::task::spawn_blocking(job).await {
                Ok(()) => result.await.map_err(|_| Panicked),
                Err(_) => Err(Panicked),
            };
        }
        // A panicking job drops `done` unsent.
        result.await.map_err(|_| Panicked)
    }
}

/// One thread's loop: the next job, until the pool is dropped and the queue is empty.
fn work(jobs: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else { return };
        // The job's own result channel reports the panic; the thread carries on.
        let _ = catch_unwind(AssertUnwindSafe(job));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[tokio::test]
    async fn runs_jobs_on_its_threads_and_survives_a_panic() {
        let pool = UnsealPool::new(2);
        let name = pool
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .expect("runs");
        assert!(name.is_some_and(|n| n.starts_with("unseal-")));

        let panicked = pool.run(|| -> u32 { panic!("boom") }).await;
        assert!(panicked.is_err());

        let results = futures::future::join_all((0..16).map(|i| pool.run(move || i * 2))).await;
        let results: HashSet<_> = results.into_iter().map(|r| r.expect("runs")).collect();
        assert_eq!(results, (0..16).map(|i| i * 2).collect());
    }
}
