//! The encoding's trained part: one embedding table per column with `output_mode:
//! "embedding"`, a row of `dim` values per slot. A batch reads few rows of a table, so its
//! gradient is kept sparse: only the rows the batch touched are written and listed, and
//! the optimizer updates only those (as Keras' optimizers apply an `Embedding`'s sparse
//! gradient), leaving the other rows and their moments as they were.

use ndarray::{Array2, ArrayView2};
use safetensors::SafeTensors;

use super::{Encoding, How};
use crate::nn::model::tensor_codec::{read_f32, TensorList};
use crate::nn::ops::alloc::{zeros2, OutOfMemory};
use crate::nn::ops::rng::Rng;

/// Keras `Embedding`'s default initializer: `RandomUniform(-0.05, 0.05)`.
const INIT_LIMIT: f64 = 0.05;

impl How {
    /// The rows and width of the column's embedding table, if it has one.
    fn table_shape(&self) -> Option<(usize, usize)> {
        match self {
            How::Embed {
                kept, num_oov, dim, ..
            } => Some((num_oov + kept.len(), *dim)),
            _ => None,
        }
    }
}

/// ∂L/∂table of each embedded column of one shard's batch, in column order.
#[derive(Clone, Debug)]
pub(crate) struct TableGrads {
    /// Zero outside the rows in `touched`.
    pub tables: Vec<Array2<f32>>,
    /// The rows written, ascending once a backward pass ends.
    pub touched: Vec<Vec<u32>>,
    /// Whether a row is in `touched`, so each is listed once.
    marked: Vec<Vec<bool>>,
}

impl TableGrads {
    /// Zero gradients for the tables of `encoding`.
    pub fn for_encoding(encoding: &Encoding) -> Result<TableGrads, OutOfMemory> {
        let shapes: Vec<_> = encoding
            .columns
            .iter()
            .filter_map(|c| c.how.table_shape())
            .collect();
        Ok(TableGrads {
            tables: shapes
                .iter()
                .map(|&shape| zeros2(shape, "an embedding gradient"))
                .collect::<Result<_, _>>()?,
            touched: vec![Vec::new(); shapes.len()],
            marked: shapes.iter().map(|&(rows, _)| vec![false; rows]).collect(),
        })
    }

    /// Clears what the last batch wrote, row by row.
    fn clear(&mut self) {
        for ((table, touched), marked) in self
            .tables
            .iter_mut()
            .zip(&mut self.touched)
            .zip(&mut self.marked)
        {
            for &r in touched.iter() {
                table.row_mut(r as usize).fill(0.0);
                marked[r as usize] = false;
            }
            touched.clear();
        }
    }
}

impl Encoding {
    /// Whether the encoding has trained tables.
    pub fn is_trained(&self) -> bool {
        self.columns.iter().any(|c| c.how.table_shape().is_some())
    }

    /// Values in its tables (Keras counts them as the `Embedding` layers' parameters).
    pub fn params(&self) -> usize {
        self.table_lengths().sum()
    }

    /// The lengths of the tables, in the order the optimizer visits them.
    pub fn table_lengths(&self) -> impl Iterator<Item = usize> + '_ {
        self.columns
            .iter()
            .filter_map(|c| c.how.table_shape())
            .map(|(rows, dim)| rows * dim)
    }

    /// The trained table of column `i`, when it is embedded.
    pub fn table(&self, i: usize) -> Option<ArrayView2<'_, f32>> {
        self.tables.get(i)?.as_ref().map(Array2::view)
    }

    /// The tables, in column order.
    pub fn tables_mut(&mut self) -> impl Iterator<Item = &mut Array2<f32>> {
        self.tables.iter_mut().flatten()
    }

    /// Fresh tables drawn from `rng`, row by row in column order.
    pub fn init_tables(&mut self, rng: &mut Rng) -> Result<(), OutOfMemory> {
        for (column, table) in self.columns.iter().zip(&mut self.tables) {
            *table = match column.how.table_shape() {
                Some(shape) => {
                    let mut t = zeros2(shape, "an embedding table")?;
                    t.iter_mut()
                        .for_each(|w| *w = ((2.0 * rng.uniform() - 1.0) * INIT_LIMIT) as f32);
                    Some(t)
                }
                None => None,
            };
        }
        Ok(())
    }

    fn table_name(layer: &str, column: &str) -> String {
        format!("{layer}.{column}.embeddings")
    }

    /// The tables as `{layer}.{column}.embeddings` [slots, dim].
    pub fn push_tensors(&self, layer: &str, list: &mut TensorList) {
        for (column, table) in self.columns.iter().zip(&self.tables) {
            if let Some(t) = table {
                list.push(
                    Encoding::table_name(layer, &column.name),
                    t.shape().to_vec(),
                    t.iter().copied(),
                );
            }
        }
    }

    /// The tables written by [`Encoding::push_tensors`] under `layer`.
    pub fn read_tables(&mut self, st: &SafeTensors<'_>, layer: &str) -> Result<(), String> {
        for (column, table) in self.columns.iter().zip(&mut self.tables) {
            if let Some((rows, dim)) = column.how.table_shape() {
                let name = Encoding::table_name(layer, &column.name);
                let values = read_f32(st, &name, &[rows, dim])?;
                *table = Some(Array2::from_shape_vec((rows, dim), values).expect("shape checked"));
            }
        }
        Ok(())
    }

    /// ∂L/∂tables from ∂L/∂output `d` of the cells `x` (after a training forward of the
    /// same rows), replacing the last batch's gradient.
    pub fn backward(&self, x: ArrayView2<'_, f32>, d: ArrayView2<'_, f32>, grads: &mut TableGrads) {
        grads.clear();
        let mut at = 0;
        let mut k = 0;
        for (i, (column, slots)) in self.columns.iter().zip(&self.slots).enumerate() {
            let width = column.how.width();
            if let (Some((_, dim)), Some(slots)) = (column.how.table_shape(), slots) {
                let (table, touched, marked) = (
                    &mut grads.tables[k],
                    &mut grads.touched[k],
                    &mut grads.marked[k],
                );
                for (cells, dy) in x.rows().into_iter().zip(d.rows()) {
                    let slot = slots.slot(cells[i]) as usize;
                    if !marked[slot] {
                        marked[slot] = true;
                        touched.push(slot as u32);
                    }
                    let dy = dy.slice(ndarray::s![at..at + dim]);
                    table.row_mut(slot).zip_mut_with(&dy, |g, &v| *g += v);
                }
                touched.sort_unstable();
                k += 1;
            }
            at += width;
        }
    }
}
