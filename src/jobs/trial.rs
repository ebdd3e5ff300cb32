//! One trial (one batch size) of a job: training on a blocking thread while the async side
//! stores each epoch the moment it ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;
use uuid::Uuid;

use super::run::{to_json, JobError, Rows};
use super::{Inner, JobFlags};
use crate::nn::{
    self, EpochRecord, FitObserver, FitOptions, FitOutcome, Samples, TrainError, TrainingState,
    ValidSpec,
};
use crate::store::{Checkpoint, EpochRow};

pub(super) struct Trial {
    pub job: Uuid,
    pub index: usize,
    pub batch_size: usize,
    pub spec: ValidSpec,
    pub rows: Rows,
}

/// What the training thread reports, in order.
enum TrialReport {
    /// The checkpoint could not be resumed (e.g. written by another engine version): the
    /// trial starts over, so its stored epochs must go first.
    Restarted {
        reason: String,
    },
    Epoch(FinishedEpoch),
}

struct FinishedEpoch {
    record: EpochRecord,
    /// The serialised training state: the checkpoint to resume from.
    state: Vec<u8>,
    /// The epoch where overfitting began, once recognised.
    overfitting: Option<usize>,
}

impl Trial {
    pub async fn run(
        self,
        inner: &Arc<Inner>,
        flags: &JobFlags,
        resume: Option<Checkpoint>,
    ) -> Result<FitOutcome, JobError> {
        let (progress, mut reports) = mpsc::unbounded_channel();
        // Raised when storing an epoch fails, so training stops instead of running blind.
        let abort = Arc::new(AtomicBool::new(false));
        let mut observer = Observer {
            progress,
            stop: [
                flags.cancel.clone(),
                flags.lost.clone(),
                inner.stopping.clone(),
                abort.clone(),
            ],
        };
        let options = FitOptions {
            batch_size: self.batch_size,
            threads: inner.threads_now(),
        };
        let (spec, rows) = (self.spec.clone(), self.rows.clone());
        if let Some(checkpoint) = &resume {
            tracing::info!(
                trial = self.index,
                epoch = checkpoint.epoch,
                "resuming from checkpoint"
            );
        }
        let span = tracing::Span::current();
        let runtime = tokio::runtime::Handle::current();
        let threads = options.threads;
        let training = on_training_thread(threads, move || {
            let _entered = span.enter();
            let train = |checkpoint: Option<&[u8]>, observer: &mut Observer| match &rows {
                Rows::Memory(matrix) => {
                    let data = Samples::new(matrix.x.view(), matrix.y.view());
                    match checkpoint {
                        Some(c) => nn::resume(&spec, data, None, &options, c, observer),
                        None => nn::fit(&spec, data, None, &options, observer),
                    }
                }
                Rows::Streamed { rows, memory_bytes } => {
                    let mut source = rows.reader(runtime.clone());
                    let budget = *memory_bytes;
                    match checkpoint {
                        Some(c) => {
                            nn::resume_streaming(&spec, &mut source, &options, budget, c, observer)
                        }
                        None => nn::fit_streaming(&spec, &mut source, &options, budget, observer),
                    }
                }
            };
            if let Some(checkpoint) = resume {
                match train(Some(&checkpoint.state), &mut observer) {
                    Err(TrainError::Checkpoint(reason)) => {
                        let _ = observer.progress.send(TrialReport::Restarted { reason });
                    }
                    other => return other,
                }
            }
            train(None, &mut observer)
        });
        let mut failure = None;
        while let Some(report) = reports.recv().await {
            if failure.is_some() {
                continue;
            }
            if let Err(err) = self.store(inner, report).await {
                abort.store(true, Ordering::Relaxed);
                failure = Some(err);
            }
        }
        let outcome = training.await?;
        match failure {
            Some(err) => Err(err),
            None => Ok(outcome?),
        }
    }

    async fn store(&self, inner: &Inner, report: TrialReport) -> Result<(), JobError> {
        let FinishedEpoch {
            record,
            state,
            overfitting,
        } = match report {
            TrialReport::Epoch(epoch) => epoch,
            TrialReport::Restarted { reason } => {
                tracing::warn!(trial = self.index, %reason, "checkpoint unusable; the trial starts over");
                inner.store.reset_trial(self.job, self.index).await?;
                return Ok(());
            }
        };
        let row = EpochRow {
            trial: self.index,
            epoch: record.epoch,
            batch_size: self.batch_size,
            record: to_json(&record)?,
        };
        inner
            .until_answered(self.job, || {
                inner
                    .store
                    .record_epoch(self.job, &row, &state, overfitting)
            })
            .await?;
        tracing::info!(
            trial = self.index,
            epoch = record.epoch,
            loss = record.loss,
            val_loss = ?record.val_loss,
            seconds = record.seconds,
            "epoch finished"
        );
        Ok(())
    }
}

/// Hands finished epochs to the async side without blocking training on the database.
struct Observer {
    progress: mpsc::UnboundedSender<TrialReport>,
    /// User cancellation, a lost lease, shutdown, storage failure.
    stop: [Arc<AtomicBool>; 4],
}

impl FitObserver for Observer {
    fn on_epoch_end(&mut self, record: &EpochRecord, state: &TrainingState) {
        let _ = self.progress.send(TrialReport::Epoch(FinishedEpoch {
            record: record.clone(),
            state: state.to_bytes(),
            overfitting: state.overfitting_epoch(),
        }));
    }

    fn cancelled(&self) -> bool {
        // A closed channel means the task storing the epochs is gone (runtime shutting
        // down): nobody would record what training does next.
        self.stop.iter().any(|flag| flag.load(Ordering::Relaxed)) || self.progress.is_closed()
    }
}

/// Starts `work` at once on a blocking thread with `threads` compute threads. A panic
/// there (in any of its threads) becomes this job's error; the process and the other
/// jobs go on.
fn on_training_thread<T: Send + 'static>(
    threads: usize,
    work: impl FnOnce() -> T + Send + 'static,
) -> impl std::future::Future<Output = Result<T, JobError>> {
    let handle = tokio::task::spawn_blocking(move || nn::on_job_threads(threads, work));
    async move { handle.await.map_err(|e| JobError::Panicked(e.to_string())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_in_a_training_thread_is_the_jobs_error_only() {
        // In one of the job's compute threads, not the thread that started the work.
        let failed = on_training_thread(2, || {
            rayon::broadcast(|ctx| {
                assert!(ctx.index() == 0, "compute thread {} failed", ctx.index())
            })
        })
        .await;
        assert!(
            matches!(&failed, Err(JobError::Panicked(m)) if m.contains("compute thread 1 failed")),
            "{failed:?}"
        );
        for threads in [1, 2] {
            let failed = on_training_thread(threads, || -> usize { panic!("injected") }).await;
            assert!(matches!(failed, Err(JobError::Panicked(m)) if m.contains("injected")));
            assert_eq!(on_training_thread(threads, || 7).await.unwrap(), 7);
        }
    }
}
