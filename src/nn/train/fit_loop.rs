//! The epoch loop shared by `fit` and `fit_streaming`: train, validate, record, call back.

use std::time::Instant;

use crate::nn::data::batch::BatchSource;
use crate::nn::error::TrainError;
use crate::nn::optim;
use crate::nn::spec::check::ValidSpec;
use crate::nn::train::epoch::EpochLoop;
use crate::nn::train::record::EpochRecord;
use crate::nn::train::state::TrainingState;
use crate::nn::train::{FitObserver, FitOptions, FitOutcome};

/// The epoch loop over any sources. `read_failed` reports a streamed source's read
/// error after each pass (a source ends its pass early when a read fails).
pub(crate) fn epochs(
    spec: &ValidSpec,
    options: &FitOptions,
    mut state: TrainingState,
    train_source: &mut dyn BatchSource,
    mut val_source: Option<&mut dyn BatchSource>,
    read_failed: &mut dyn FnMut() -> Result<(), TrainError>,
    observer: &mut dyn FitObserver,
) -> Result<FitOutcome, TrainError> {
    let ts = spec.spec();
    let optimizer = optim::build(&ts.optimizer);
    let mut epochs = EpochLoop::new(
        spec,
        &state.model.net,
        options,
        train_source.rows(),
        val_source.as_ref().map(|s| s.rows()),
    )?;
    while state.progress.epoch < ts.epochs && !state.progress.stopped_early {
        let epoch = state.progress.epoch + 1;
        let started = Instant::now();
        let lr = state.progress.learning_rate();
        let trained = epochs.train_epoch(
            epoch,
            &mut state,
            train_source,
            optimizer.as_ref(),
            observer,
        );
        read_failed()?;
        let (loss, tally) = trained?;
        let mut metrics = tally.values(&ts.metrics, "");
        let mut val_loss = None;
        if let Some(source) = val_source.as_deref_mut() {
            let (loss, val_metrics) = epochs.validate(&state.model.net, source);
            read_failed()?;
            val_loss = Some(loss);
            metrics.extend(val_metrics);
        }
        let mut record = EpochRecord {
            epoch,
            loss,
            val_loss,
            metrics,
            learning_rate: EpochRecord::rate_as_written(lr),
            seconds: started.elapsed().as_secs_f64(),
            overfitting: false,
        };
        state.end_epoch(spec, &mut record);
        observer.on_epoch_end(&record, &state);
    }
    Ok(state.finish())
}
