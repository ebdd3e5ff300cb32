//! Parsing plain blocks on every core while rows, line numbers and the first error stay in
//! upload order: a block is cut at its last newline, parsed on rayon's pool by whichever
//! thread is free, and its rows go to the chunker only after every block before it.

use std::collections::BTreeMap;
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;

use memchr::memrchr;

use super::block::{is_plain, parse_block, ParsedBlock};
use super::chunker::Sink;
use super::layout::Layout;
use super::{Chunk, IngestError};

/// Bytes of CSV per block: large enough that hand-over costs vanish, small enough that the
/// blocks in flight stay a few MiB.
pub const BLOCK: usize = 1 << 20;

/// Blocks in flight per thread of the pool: enough that no thread waits for the reader,
/// few enough that the blocks held stay a few MiB.
const BLOCKS_PER_THREAD: u64 = 2;

/// The part of the body that must go through the csv crate: from the first block that is
/// not plain to the end, and the number of lines before it.
pub struct Fallback {
    pub bytes: Vec<u8>,
    pub lines_before: u64,
}

type Parsed = Result<ParsedBlock, IngestError>;

/// Parses `buf` and then the rest of `reader` (all after the header, which was line
/// `lines_before`) block by block into `chunker`, until the end or the first block that is
/// not plain, which is handed back.
pub fn parse_plain_blocks<R, F>(
    reader: &mut R,
    mut buf: Vec<u8>,
    layout: &Layout,
    lines_before: u64,
    chunker: &mut Sink<'_, F>,
) -> Result<Option<Fallback>, IngestError>
where
    R: Read,
    F: FnMut(Chunk) -> Result<(), IngestError>,
{
    let in_flight = BLOCKS_PER_THREAD * rayon::current_num_threads() as u64;
    let (done_tx, done_rx) = mpsc::channel::<(u64, Parsed)>();
    // In place: reading the body and applying results stay on this (blocking) thread, and
    // the scope waits for every block it spawned on every way out.
    rayon::in_place_scope(|scope| {
        let mut order = InOrder {
            done: done_rx,
            pending: BTreeMap::new(),
            next: 0,
            lines_before,
        };
        let mut sent = 0;
        loop {
            let (end, cut) = next_cut(reader, &mut buf)?;
            if buf.is_empty() {
                break;
            }
            if !is_plain(&buf[..cut], end) {
                order.drain(sent, chunker)?;
                return Ok(Some(Fallback {
                    bytes: buf,
                    lines_before: order.lines_before,
                }));
            }
            let mut rest = Vec::with_capacity(BLOCK + BLOCK / 4);
            rest.extend_from_slice(&buf[cut..]);
            buf.truncate(cut);
            let block = std::mem::replace(&mut buf, rest);
            while sent - order.next >= in_flight {
                order.take_one(chunker)?;
            }
            let (seq, done_tx) = (sent, done_tx.clone());
            scope.spawn(move |_| {
                // A panic must not leave the collector waiting for this block forever.
                let parsed = catch_unwind(AssertUnwindSafe(|| parse_block(&block, layout)))
                    .unwrap_or_else(|_| Err(IngestError::Csv("the CSV parser failed".into())));
                // The collector is gone only when the upload already failed.
                let _ = done_tx.send((seq, parsed));
            });
            sent += 1;
            if end {
                break;
            }
        }
        order.drain(sent, chunker)?;
        Ok(None)
    })
}

/// Blocks' results as the workers finish them, applied in block order.
struct InOrder {
    done: mpsc::Receiver<(u64, Parsed)>,
    pending: BTreeMap<u64, Parsed>,
    next: u64,
    lines_before: u64,
}

impl InOrder {
    fn take_one<F>(&mut self, chunker: &mut Sink<'_, F>) -> Result<(), IngestError>
    where
        F: FnMut(Chunk) -> Result<(), IngestError>,
    {
        let (seq, parsed) = self
            .done
            .recv()
            .map_err(|_| IngestError::Csv("the CSV parser threads stopped".into()))?;
        self.pending.insert(seq, parsed);
        while let Some(parsed) = self.pending.remove(&self.next) {
            let before = self.lines_before;
            let block = parsed.map_err(|err| err.map_line(|line| before + line))?;
            let lines = block.lines;
            chunker.push(block)?;
            self.lines_before += lines;
            self.next += 1;
        }
        Ok(())
    }

    fn drain<F>(&mut self, sent: u64, chunker: &mut Sink<'_, F>) -> Result<(), IngestError>
    where
        F: FnMut(Chunk) -> Result<(), IngestError>,
    {
        while self.next < sent {
            self.take_one(chunker)?;
        }
        Ok(())
    }
}

/// Reads until `buf` holds a block's worth ending at a newline, or the end of the body.
/// Returns whether the body ended and where the block ends.
fn next_cut<R: Read>(reader: &mut R, buf: &mut Vec<u8>) -> Result<(bool, usize), IngestError> {
    let mut want = BLOCK;
    loop {
        if fill(reader, buf, want)? {
            return Ok((true, buf.len()));
        }
        if let Some(i) = memrchr(b'\n', buf) {
            return Ok((false, i + 1));
        }
        // A line longer than a block: read on.
        want += BLOCK;
    }
}

/// Reads until `buf` holds `want` bytes; true when the body ended first.
pub fn fill<R: Read>(reader: &mut R, buf: &mut Vec<u8>, want: usize) -> Result<bool, IngestError> {
    let missing = want.saturating_sub(buf.len()) as u64;
    let read = reader
        .by_ref()
        .take(missing)
        .read_to_end(buf)
        .map_err(|e| IngestError::Body(e.to_string()))?;
    Ok((read as u64) < missing)
}
