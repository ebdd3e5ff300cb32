//! The training scheduler: a FIFO queue persisted in SQLite, drained by at most `workers`
//! jobs at once, each training on a blocking thread.
//!
//! The queue lives in the `jobs` table, not in memory, so queued jobs survive a restart;
//! a dispatcher task claims the oldest queued job whenever a worker slot is free.

mod run;
mod stream;
mod trial;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{watch, Notify, Semaphore};
use uuid::Uuid;

use crate::models::ModelCache;
use crate::nn::{DataShape, Mode, ValidSpec};
use crate::store::{Dataset, Job, JobStatus, NewJob, Store, StoreError};

/// Handle to the scheduler; cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    models: ModelCache,
    workers: usize,
    /// Cores shared by the running jobs (see `Inner::threads_now`).
    cores: usize,
    /// Datasets larger than this (as f32) are streamed from the store, not loaded.
    dataset_memory_bytes: usize,
    /// A job was queued.
    wake: Notify,
    /// One permit per worker slot; a running job holds one.
    slots: Arc<Semaphore>,
    /// Cancellation flags of running jobs, polled by the training loop between batches.
    cancels: Mutex<HashMap<Uuid, Arc<AtomicBool>>>,
    /// Set on shutdown: running jobs stop within a batch and go back to the queue.
    stopping: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
}

/// What `cancel` did.
pub enum Cancellation {
    /// The job was queued and is now cancelled.
    Done(Job),
    /// The job is running and stops within one batch.
    Requested(Job),
}

#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("job {id} already {}", status.as_str())]
    Finished { id: Uuid, status: JobStatus },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Inner {
    /// Threads for a trial starting now: the cores shared among the jobs running now
    /// (this one included), so a lone job uses them all and `workers` jobs started
    /// together don't oversubscribe them. The engine gives the same bits for any count.
    fn threads_now(&self) -> usize {
        let running = self.workers.saturating_sub(self.slots.available_permits());
        (self.cores / running.max(1)).max(1)
    }
}

impl Scheduler {
    /// Re-queues jobs a previous process left running, then starts dispatching.
    pub async fn start(
        store: Store,
        models: ModelCache,
        workers: usize,
        cores: usize,
        dataset_memory_bytes: usize,
    ) -> Result<Self, StoreError> {
        let requeued = store.requeue_running().await?;
        if requeued > 0 {
            tracing::warn!(jobs = requeued, "re-queued jobs interrupted by the last shutdown; they resume from their checkpoints");
        }
        let (stop, stopped) = watch::channel(false);
        let inner = Arc::new(Inner {
            store,
            models,
            workers,
            cores,
            dataset_memory_bytes,
            wake: Notify::new(),
            slots: Arc::new(Semaphore::new(workers)),
            cancels: Mutex::default(),
            stopping: Arc::default(),
            stop,
        });
        tokio::spawn(dispatch(inner.clone(), stopped));
        tracing::info!(workers, cores, "scheduler started");
        Ok(Self { inner })
    }

    /// Queues a validated spec for `dataset`.
    pub async fn submit(
        &self,
        dataset: &Dataset,
        spec: &ValidSpec,
        submitted: Value,
    ) -> Result<Job, StoreError> {
        let (monitor, mode) = spec.monitor();
        let job = self
            .inner
            .store
            .insert_job(NewJob {
                dataset_id: dataset.id,
                spec: submitted,
                batch_sizes: spec.batch_sizes().to_vec(),
                epochs: spec.epochs(),
                monitor: monitor.to_owned(),
                maximize: matches!(mode, Mode::Max),
            })
            .await?;
        tracing::info!(job = %job.id, dataset = %dataset.id, status = "queued", "job queued");
        self.inner.wake.notify_one();
        Ok(job)
    }

    pub async fn cancel(&self, id: Uuid) -> Result<Cancellation, CancelError> {
        let store = &self.inner.store;
        if store.cancel_queued(id).await? {
            tracing::info!(job = %id, status = "cancelled", "queued job cancelled");
            return Ok(Cancellation::Done(store.job(id).await?));
        }
        let job = store.job(id).await?;
        if job.status.is_finished() {
            return Err(CancelError::Finished {
                id,
                status: job.status,
            });
        }
        // Running (or claimed a moment ago): the flag may be created here before the
        // dispatcher registers it, which then finds it already set.
        self.inner.flag(id).store(true, Ordering::Relaxed);
        tracing::info!(job = %id, "cancellation requested");
        Ok(Cancellation::Requested(job))
    }

    /// Stops dispatching and interrupts running jobs, which go back to the queue with
    /// their checkpoints; returns once none is running.
    pub async fn shutdown(&self) {
        self.inner.stopping.store(true, Ordering::Relaxed);
        self.inner.stop.send_replace(true);
        let all = u32::try_from(self.inner.workers).unwrap_or(u32::MAX);
        let _ = self.inner.slots.acquire_many(all).await;
    }
}

/// What spec validation needs to know about a stored dataset.
pub fn data_shape(dataset: &Dataset) -> DataShape {
    DataShape {
        features: dataset.features(),
        targets: dataset.targets(),
        target_min: dataset.target_stats.iter().map(|s| s.min).collect(),
        target_max: dataset.target_stats.iter().map(|s| s.max).collect(),
        target_integral: dataset.target_stats.iter().map(|s| s.integral).collect(),
    }
}

impl Inner {
    fn flag(&self, id: Uuid) -> Arc<AtomicBool> {
        let mut cancels = self.cancels.lock().unwrap_or_else(PoisonError::into_inner);
        cancels.entry(id).or_default().clone()
    }

    fn forget(&self, id: Uuid) {
        self.cancels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }
}

async fn dispatch(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    loop {
        let slot = tokio::select! {
            slot = inner.slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = stop.changed() => return,
        };
        let job = loop {
            if *stop.borrow() {
                return;
            }
            match inner.store.claim_next_job().await {
                Ok(Some(job)) => break job,
                Ok(None) => tokio::select! {
                    () = inner.wake.notified() => {}
                    _ = stop.changed() => return,
                },
                Err(err) => {
                    tracing::error!(error = %err, "cannot claim the next job; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        let cancel = inner.flag(job.id);
        tokio::spawn(run::run(inner.clone(), job, cancel, slot));
    }
}
