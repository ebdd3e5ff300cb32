//! Prediction for a handful of rows: each row through each layer on its own (each kind's
//! `forward_row`), where gemm's blocked product would cost more than it saves.

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::nn::layers::RowScratch;
use crate::nn::model::network::Network;
use crate::nn::model::scratch::RowBuffers;

/// Up to this many rows, `Model::predict` goes row by row; from here on gemm's blocked
/// product, which reads each kernel once per block of rows, is faster.
pub(crate) const MAX_ROWS: usize = 4;

/// The forward pass (dropout off) of each row of `x` into the same row of `out`.
pub(crate) fn forward_rows(
    net: &Network,
    x: ArrayView2<'_, f32>,
    mut out: ArrayViewMut2<'_, f32>,
    buffers: &mut RowBuffers,
) {
    let widest = net
        .layers
        .iter()
        .fold((net.input_width, net.input_width), |(w, max), l| {
            let w = l.width(w);
            (w, max.max(w))
        })
        .1;
    let RowBuffers { a, b, z, nonzero } = buffers;
    for buf in [&mut *a, &mut *b, &mut *z] {
        buf.resize(widest, 0.0);
    }
    nonzero.resize(widest, 0);
    for (row, mut target) in x.rows().into_iter().zip(out.rows_mut()) {
        let mut width = row.len();
        match row.as_slice() {
            Some(values) => a[..width].copy_from_slice(values),
            None => a.iter_mut().zip(row).for_each(|(a, v)| *a = *v),
        }
        for layer in &net.layers {
            let scratch = RowScratch { z, nonzero };
            if let Some(written) = layer.forward_row(&a[..width], b, scratch) {
                width = written;
                std::mem::swap(a, b);
            }
        }
        for (t, v) in target.iter_mut().zip(&a[..width]) {
            *t = *v;
        }
    }
}
