//! Inference workspaces kept with a model between predicts. A fresh workspace for a
//! 500-row half of a W1 predict is ~2 MB of zeroed pages: faulted in, zeroed and unmapped again
//! on every request.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use crate::nn::model::network::{Network, Workspace};
use crate::nn::ops::alloc::OutOfMemory;

/// Workspaces kept at most: one per thread of a two-thread predict.
const KEEP: usize = 2;

/// A workspace larger than this is dropped after use rather than kept, so that a cached
/// wide model does not pin hundreds of megabytes.
const KEEP_MAX_BYTES: usize = 16 << 20;

#[derive(Default)]
pub(crate) struct WorkspacePool(Mutex<Vec<Workspace>>);

impl WorkspacePool {
    /// A workspace for a forward pass (no training) of up to `rows` rows.
    pub fn take(&self, net: &Network, rows: usize) -> Result<Workspace, OutOfMemory> {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match kept.iter().position(|ws| ws.capacity() >= rows) {
            Some(i) => Ok(kept.swap_remove(i)),
            None => Workspace::new(net, rows, false),
        }
    }

    pub fn give(&self, ws: Workspace) {
        if ws.bytes() > KEEP_MAX_BYTES {
            return;
        }
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() < KEEP {
            kept.push(ws);
        }
    }
}

/// A clone starts with no buffers of its own.
impl Clone for WorkspacePool {
    fn clone(&self) -> Self {
        WorkspacePool::default()
    }
}

/// Buffers are not part of what a model is.
impl PartialEq for WorkspacePool {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl fmt::Debug for WorkspacePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WorkspacePool")
    }
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;

    use super::*;
    use crate::nn::layers::Dense;
    use crate::nn::model::network::Layer;
    use crate::nn::spec::Activation;

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
        let (net, pool) = (net(), WorkspacePool::default());
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
        assert_eq!(pool.0.lock().unwrap().len(), KEEP);
        pool.give(Workspace::new(&net, KEEP_MAX_BYTES, false).unwrap());
        assert!(
            pool.0.lock().unwrap().iter().all(|ws| ws.capacity() == 10),
            "too big to keep"
        );
    }
}
