//! Splitting CSV into records on a thread of its own, so tokenizing and number parsing
//! (each about half of the work) run on two cores.

use std::io::Read;
use std::sync::mpsc;

use csv::ByteRecord;

use super::IngestError;

/// Records handed over per message: enough to make channel traffic negligible.
const BATCH: usize = 1024;

/// A batch of records; the `ByteRecord`s are reused once the consumer sends it back.
pub struct Batch {
    records: Vec<ByteRecord>,
    len: usize,
}

impl Batch {
    pub fn records(&self) -> &[ByteRecord] {
        &self.records[..self.len]
    }
}

/// Calls `consume` on every record of `reader` in order, tokenizing on a scoped thread.
/// A tokenizer error surfaces after the records before it were consumed, so the first
/// bad line is always the one reported.
pub fn for_each_record<R: Read + Send>(
    reader: csv::Reader<R>,
    mut consume: impl FnMut(&ByteRecord) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    let (full_tx, full_rx) = mpsc::sync_channel::<Result<Batch, IngestError>>(4);
    let (empty_tx, empty_rx) = mpsc::channel::<Batch>();
    std::thread::scope(|scope| {
        scope.spawn(move || tokenize(reader, &full_tx, &empty_rx));
        for batch in full_rx {
            let batch = batch?;
            for record in batch.records() {
                consume(record)?;
            }
            // The tokenizer may have finished already; then the batch is simply dropped.
            let _ = empty_tx.send(batch);
        }
        Ok(())
    })
}

fn tokenize<R: Read>(
    mut reader: csv::Reader<R>,
    full: &mpsc::SyncSender<Result<Batch, IngestError>>,
    empty: &mpsc::Receiver<Batch>,
) {
    loop {
        let mut batch = empty.try_recv().unwrap_or(Batch {
            records: Vec::with_capacity(BATCH),
            len: 0,
        });
        batch.len = 0;
        let mut failure = None;
        let mut done = false;
        while batch.len < BATCH {
            if batch.len == batch.records.len() {
                batch.records.push(ByteRecord::new());
            }
            match reader.read_byte_record(&mut batch.records[batch.len]) {
                Ok(true) => batch.len += 1,
                Ok(false) => {
                    done = true;
                    break;
                }
                Err(err) => {
                    failure = Some(IngestError::Csv(err.to_string()));
                    break;
                }
            }
        }
        // A send fails only when the consumer stopped (it found a bad row): stop too.
        if batch.len > 0 && full.send(Ok(batch)).is_err() {
            return;
        }
        if let Some(err) = failure {
            let _ = full.send(Err(err));
            return;
        }
        if done {
            return;
        }
    }
}
