//! The training scheduler: a FIFO queue persisted in the database, drained by at most
//! `workers` jobs at once, each training on a blocking thread.
//!
//! The queue lives in the `jobs` table, not in memory, so queued jobs survive a restart and
//! every instance on a shared database drains the same queue: a dispatcher task claims the
//! oldest queued job (or one whose lease expired) whenever a worker slot is free, and a
//! heartbeat task renews the leases of the jobs this instance runs, stopping those it lost
//! and those some instance asked to cancel.

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

use crate::nn::{
    human, training_memory, DataShape, MemoryEstimate, SpecError, TrainingSpec, ValidSpec,
};
use crate::serving::ModelCache;
use crate::store::{
    crash_message, Dataset, Job, JobRegistry, JobRows, JobStatus, LeftOut, NewJob, Store,
    StoreError, MAX_CRASHES,
};

/// How much the scheduler runs and admits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Training jobs that run at once.
    pub workers: usize,
    /// Cores shared by the running jobs.
    pub cores: usize,
    /// Datasets larger than this (as f32) are streamed from the store, not loaded.
    pub dataset_memory_bytes: usize,
    /// Stored chunks' size: loading a dataset holds one chunk beside the rows.
    pub dataset_chunk_bytes: usize,
    /// Jobs that may wait in the queue.
    pub max_queued_jobs: u64,
    /// Largest estimated peak memory of one job.
    pub max_job_memory_bytes: u64,
    /// How often the leases of running jobs are renewed, cancellations asked elsewhere
    /// picked up, and the queue looked at for jobs other instances queued.
    pub heartbeat: Duration,
}

/// Why a job was not queued.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(
        "{limit} jobs are already queued (--max-queued-jobs); retry in {retry_after_seconds} s"
    )]
    QueueFull {
        limit: u64,
        retry_after_seconds: u64,
    },
    #[error(
        "the job would need an estimated {estimate} at its peak, over the limit of {} \
         (--max-job-memory-bytes); use fewer or narrower layers, a smaller batch_size, or \
         a smaller dataset", human(*limit))]
    TooLarge {
        estimate: MemoryEstimate,
        limit: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a client waits before submitting again when the queue is full: about what the
/// queue's head needs to start, short enough to keep a client's retry loop responsive.
const QUEUE_FULL_RETRY_SECONDS: u64 = 30;

/// Handle to the scheduler; cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    models: ModelCache,
    limits: Limits,
    /// Held from counting the queue to inserting, so concurrent submissions cannot
    /// overfill it.
    admission: tokio::sync::Mutex<()>,
    /// A job was queued.
    wake: Notify,
    /// One permit per worker slot; a running job holds one.
    slots: Arc<Semaphore>,
    /// The flags of the jobs running here, polled by the training loop between batches.
    running: Mutex<HashMap<Uuid, JobFlags>>,
    /// Set on shutdown: running jobs stop within a batch and go back to the queue.
    stopping: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
}

/// What stops a running job at its next batch, beside a shutdown.
#[derive(Clone, Default)]
pub(super) struct JobFlags {
    /// A user cancelled it.
    pub cancel: Arc<AtomicBool>,
    /// Another instance took it over: nothing more is written for it here.
    pub lost: Arc<AtomicBool>,
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
        let running = self
            .limits
            .workers
            .saturating_sub(self.slots.available_permits());
        (self.limits.cores / running.max(1)).max(1)
    }
}

impl Scheduler {
    /// Re-queues jobs a previous process left running (on a database no other instance
    /// shares; on a shared one they are taken over when their leases expire), then starts
    /// dispatching.
    pub async fn start(
        store: Store,
        models: ModelCache,
        limits: Limits,
    ) -> Result<Self, StoreError> {
        if !store.is_shared() {
            let after_crash = store.requeue_running().await?;
            if after_crash.requeued > 0 {
                tracing::warn!(
                    jobs = after_crash.requeued,
                    "re-queued jobs the last process left running; they resume from their checkpoints"
                );
            }
            for id in &after_crash.failed {
                tracing::error!(job = %id, status = "failed", "the process died {MAX_CRASHES} times in a row running this job; failed instead of resumed");
            }
        }
        let (stop, stopped) = watch::channel(false);
        let (workers, cores) = (limits.workers, limits.cores);
        let inner = Arc::new(Inner {
            store,
            models,
            slots: Arc::new(Semaphore::new(workers)),
            limits,
            admission: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            running: Mutex::default(),
            stopping: Arc::default(),
            stop,
        });
        tokio::spawn(dispatch(inner.clone(), stopped.clone()));
        tokio::spawn(heartbeat(inner.clone(), stopped));
        let instance = inner.store.holder().instance;
        tracing::info!(workers, cores, %instance, "scheduler started");
        Ok(Self { inner })
    }

    /// Queues a validated spec for `dataset` split into `train_rows` and
    /// `validation_rows`, if the queue has room and the job fits the memory limit.
    pub async fn submit(
        &self,
        dataset: &Dataset,
        spec: &ValidSpec,
        submitted: Value,
        registry: JobRegistry,
    ) -> Result<Job, SubmitError> {
        let (train_rows, validation_rows) = spec.split_sizes();
        let limits = &self.inner.limits;
        let dataset_bytes = dataset_bytes(dataset);
        let budget = limits.dataset_memory_bytes as u64;
        let chunk = dataset_bytes.min(limits.dataset_chunk_bytes as u64);
        let data_bytes = if dataset_bytes > budget {
            stream::streamed_peak_bytes(budget, chunk)
        } else {
            // Loading reads one stored chunk at a time: SQLite assembles its blob from
            // overflow pages, sqlx copies it out, then it is decoded into the rows.
            dataset_bytes + 2 * chunk
        };
        let estimate = training_memory(spec, train_rows, validation_rows, data_bytes);
        if estimate.bytes > limits.max_job_memory_bytes {
            return Err(SubmitError::TooLarge {
                estimate,
                limit: limits.max_job_memory_bytes,
            });
        }
        let _admission = self.inner.admission.lock().await;
        if self.inner.store.queued_jobs().await? >= limits.max_queued_jobs {
            return Err(SubmitError::QueueFull {
                limit: limits.max_queued_jobs,
                retry_after_seconds: QUEUE_FULL_RETRY_SECONDS,
            });
        }
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
                mode,
                estimated_peak_bytes: estimate.bytes,
                rows: {
                    let (training, validation) = spec.split_sizes();
                    JobRows {
                        training,
                        validation,
                        unlabelled: dataset.unlabelled_rows,
                        dropped: dataset.left_out.rows,
                    }
                },
                registry,
            })
            .await?;
        tracing::info!(job = %job.id, dataset = %dataset.id, status = "queued", estimated_peak_bytes = estimate.bytes, "job queued");
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
        // Running, here or on another instance: the one holding it sees the request at its
        // next heartbeat; here, at once.
        store.request_cancel(id).await?;
        if let Some(flags) = self.inner.flags(id) {
            flags.cancel.store(true, Ordering::Relaxed);
        }
        tracing::info!(job = %id, "cancellation requested");
        Ok(Cancellation::Requested(store.job(id).await?))
    }

    /// Stops dispatching and interrupts running jobs, which go back to the queue with
    /// their checkpoints; returns once none is running.
    pub async fn shutdown(&self) {
        self.inner.stopping.store(true, Ordering::Relaxed);
        self.inner.stop.send_replace(true);
        let all = u32::try_from(self.inner.limits.workers).unwrap_or(u32::MAX);
        let _ = self.inner.slots.acquire_many(all).await;
    }
}

/// A dataset's rows as the engine holds them in memory (f32 features and targets).
fn dataset_bytes(dataset: &Dataset) -> u64 {
    (dataset.rows as u64)
        .saturating_mul((dataset.features() + dataset.targets()) as u64)
        .saturating_mul(4)
}

/// Sets `dataset` to leave out the `rows` labelled rows that miss a value of `valid`'s
/// `missing: "drop_row"` columns, and validates `spec` again on the rows left (its split
/// sizes depend on them).
pub fn leave_out(
    spec: &TrainingSpec,
    valid: ValidSpec,
    dataset: &mut Dataset,
    rows: usize,
) -> Result<ValidSpec, SpecError> {
    let required = valid.drop_row_columns();
    if required.is_empty() {
        return Ok(valid);
    }
    dataset.left_out = LeftOut { required, rows };
    spec.validate(&data_shape(dataset))
}

/// What spec validation needs to know about a stored dataset.
pub fn data_shape(dataset: &Dataset) -> DataShape {
    DataShape {
        rows: dataset.labelled_rows(),
        features: dataset.features(),
        targets: dataset.targets(),
        target_min: dataset.target_stats.iter().map(|s| s.min).collect(),
        target_max: dataset.target_stats.iter().map(|s| s.max).collect(),
        target_integral: dataset.target_stats.iter().map(|s| s.integral).collect(),
        columns: dataset.feature_columns(),
        class_names: dataset.class_names(),
        missing_markers: dataset.na_values.clone(),
    }
}

/// How often a job's write is tried again while the database does not answer.
const RETRY_WRITE_EVERY: Duration = Duration::from_millis(500);

impl Inner {
    /// Runs a running job's write until the database answers it: an outage of the
    /// database pauses the job's writes (its epochs wait in order; training goes on)
    /// instead of failing the job. Gives up when the service stops; when the database
    /// comes back after another instance took the job over, the write says so.
    async fn until_answered<T, F, W>(&self, job: Uuid, mut write: W) -> Result<T, StoreError>
    where
        W: FnMut() -> F,
        F: std::future::Future<Output = Result<T, StoreError>>,
    {
        let mut warned = false;
        loop {
            match write().await {
                Err(err) if err.is_unavailable() && !self.stopping.load(Ordering::Relaxed) => {
                    if !warned {
                        tracing::warn!(job = %job, error = %err, "the database does not answer; the job's writes wait for it");
                        warned = true;
                    }
                    tokio::time::sleep(RETRY_WRITE_EVERY).await;
                }
                other => return other,
            }
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, JobFlags>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn flags(&self, id: Uuid) -> Option<JobFlags> {
        self.running().get(&id).cloned()
    }

    fn forget(&self, id: Uuid) {
        self.running().remove(&id);
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
                // Jobs queued on other instances, and leases that expire, are found by
                // looking again after a heartbeat.
                Ok(None) => tokio::select! {
                    () = inner.wake.notified() => {}
                    () = tokio::time::sleep(inner.limits.heartbeat) => {}
                    _ = stop.changed() => return,
                },
                Err(err) => {
                    tracing::error!(error = %err, "cannot claim the next job; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        if job.crashes >= MAX_CRASHES {
            tracing::error!(job = %job.id, status = "failed", "the job's process died {MAX_CRASHES} times in a row running it; failed instead of resumed");
            let failed = inner
                .store
                .finish_job(job.id, JobStatus::Failed, Some(&crash_message()))
                .await;
            if let Err(err) = failed {
                tracing::error!(job = %job.id, error = %err, "cannot record the failure");
            }
            continue;
        }
        let flags = JobFlags::default();
        inner.running().insert(job.id, flags.clone());
        tokio::spawn(run::run(inner.clone(), job, flags, slot));
    }
}

/// Renews this instance's leases every heartbeat, and stops its jobs that were taken over
/// or that some instance asked to cancel. When the database does not answer, the jobs go
/// on: their writes are checked against the lease when it answers again.
async fn heartbeat(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(inner.limits.heartbeat) => {}
            _ = stop.changed() => return,
        }
        // Taken before renewing: a job claimed meanwhile is not yet known to the renewal.
        let running: Vec<(Uuid, JobFlags)> = inner
            .running()
            .iter()
            .map(|(id, flags)| (*id, flags.clone()))
            .collect();
        if running.is_empty() {
            continue;
        }
        let held = match inner.store.renew_leases().await {
            Ok(held) => held,
            Err(err) => {
                tracing::warn!(error = %err, "cannot renew the leases of the running jobs");
                continue;
            }
        };
        for (id, flags) in running {
            match held.iter().find(|h| h.id == id) {
                Some(h) if h.cancel_requested => flags.cancel.store(true, Ordering::Relaxed),
                Some(_) => {}
                // Taken over, or ended a moment ago (then the flag is never read): the job's
                // run says which when it stops.
                None => flags.lost.store(true, Ordering::Relaxed),
            }
        }
    }
}
