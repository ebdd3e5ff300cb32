//! Scratch buffers kept with a model between predicts, for both prediction paths: the
//! gemm path's workspaces and the few-rows path's row buffers. A fresh workspace is megabytes
//! of zeroed pages that would be faulted in, zeroed and unmapped again on every request.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use crate::nn::model::network::{Network, Workspace};
use crate::nn::ops::alloc::OutOfMemory;

/// Workspaces kept at most: one per thread of a two-thread predict.
const KEEP: usize = 2;

/// A workspace larger than this is dropped after use rather than kept, so that a cached
/// wide model does not pin hundreds of megabytes.
const KEEP_MAX_BYTES: usize = 16 << 20;

/// Buffers for the row-by-row path: two activation buffers, a pre-activation buffer and the
/// positions of an input's non-zero values.
#[derive(Default)]
pub(crate) struct RowBuffers {
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    pub z: Vec<f32>,
    pub nonzero: Vec<u32>,
}

#[derive(Default)]
pub(crate) struct Scratch {
    workspaces: Mutex<Vec<Workspace>>,
    rows: Mutex<Vec<RowBuffers>>,
}

impl Scratch {
    /// Row buffers for the few-rows path, returned after `f`.
    pub fn with_row_buffers<T>(&self, f: impl FnOnce(&mut RowBuffers) -> T) -> T {
        let taken = self
            .rows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut buffers = taken.unwrap_or_default();
        let result = f(&mut buffers);
        let mut kept = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() < KEEP {
            kept.push(buffers);
        }
        result
    }

    /// A workspace for a forward pass (no training) of up to `rows` rows.
    pub fn take(&self, net: &Network, rows: usize) -> Result<Workspace, OutOfMemory> {
        let mut kept = self
            .workspaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match kept.iter().position(|ws| ws.capacity() >= rows) {
            Some(i) => Ok(kept.swap_remove(i)),
            None => Workspace::new(net, rows, false),
        }
    }

    pub fn give(&self, ws: Workspace) {
        if ws.bytes() > KEEP_MAX_BYTES {
            return;
        }
        let mut kept = self
            .workspaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if kept.len() < KEEP {
            kept.push(ws);
        }
    }
}

/// A clone starts with no buffers of its own.
impl Clone for Scratch {
    fn clone(&self) -> Self {
        Scratch::default()
    }
}

impl fmt::Debug for Scratch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Scratch")
    }
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;

    use super::*;
    use crate::nn::layers::{Dense, Layer};
    use crate::nn::ops::activation::Activation;

    fn net() -> Network {
        Network {
            input_width: 3,
            layers: vec![Layer::Dense(Dense {
                kernel: Array2::zeros((3, 2)),
                bias: None,
                activation: Activation::Linear,
                l1: 0.0,
                l2: 0.0,
            })],
        }
    }

    #[test]
    fn a_kept_workspace_serves_any_request_it_can_hold() {
        let (net, pool) = (net(), Scratch::default());
        let ws = pool.take(&net, 100).unwrap();
        assert_eq!(ws.capacity(), 100);
        pool.give(ws);
        assert_eq!(
            pool.take(&net, 40).unwrap().capacity(),
            100,
            "the kept one, not a new one"
        );
        assert_eq!(
            pool.take(&net, 40).unwrap().capacity(),
            40,
            "none kept: a new one"
        );
        for _ in 0..3 {
            pool.give(Workspace::new(&net, 10, false).unwrap());
        }
        assert_eq!(pool.workspaces.lock().unwrap().len(), KEEP);
        pool.give(Workspace::new(&net, KEEP_MAX_BYTES, false).unwrap());
        assert!(
            pool.workspaces
                .lock()
                .unwrap()
                .iter()
                .all(|ws| ws.capacity() == 10),
            "too big to keep"
        );
    }
}
