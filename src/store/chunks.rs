//! Reading a dataset one chunk at a time, for training on datasets larger than memory.

use sqlx::Row;

use super::{chunk_codec, Dataset, Result, Store, StoreError};

impl Store {
    /// Rows of each chunk of `dataset`, in order; checked against the dataset's row count.
    /// Rows per chunk that training reads (those with a target).
    pub async fn dataset_chunk_rows(&self, dataset: &Dataset) -> Result<Vec<usize>> {
        let rows: Vec<i64> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT rows FROM dataset_chunks WHERE dataset_id = $1 ORDER BY idx")
                .bind(dataset.id.to_string())
                .fetch_all(pool)
                .await
        })?;
        let mut rows: Vec<usize> = rows.into_iter().map(|r| r as usize).collect();
        let total: usize = rows.iter().sum();
        if total != dataset.rows {
            return Err(StoreError::Corrupt(format!(
                "dataset {} should have {} rows but its chunks hold {total}",
                dataset.id, dataset.rows
            )));
        }
        if dataset.leaves_rows_out() {
            // Which rows go depends on the cells: one pass over the chunks counts them.
            for (idx, rows) in rows.iter_mut().enumerate() {
                *rows = self.dataset_chunk(dataset, idx, Vec::new()).await?.len()
                    / (dataset.features() + dataset.targets());
            }
        }
        Ok(rows)
    }

    /// How many labelled rows of `dataset` miss a cell of `required` (one pass over the
    /// chunks: which rows do depends on the cells).
    pub async fn rows_missing(&self, dataset: &Dataset, required: &[usize]) -> Result<usize> {
        use chunk_codec::cell::{decode, Cell};
        let width = dataset.features() + dataset.targets();
        let labelled = Dataset {
            left_out: Default::default(),
            ..dataset.clone()
        };
        let mut missing = 0;
        let mut values = Vec::new();
        for idx in 0..self.dataset_chunk_count(dataset).await? {
            values = self.dataset_chunk(&labelled, idx, values).await?;
            let rows = values.chunks_exact(width);
            missing += rows
                .filter(|row| {
                    let mut cells = required.iter().map(|&j| decode(row[j]));
                    cells.any(|c| matches!(c, Cell::Missing))
                })
                .count();
        }
        Ok(missing)
    }

    /// Chunk `idx` of `dataset` as rows of features then targets, in `values` (emptied
    /// first; its allocation is reused, which spares the page faults of a fresh one),
    /// without the rows whose target is missing.
    pub async fn dataset_chunk(
        &self,
        dataset: &Dataset,
        idx: usize,
        values: Vec<f32>,
    ) -> Result<Vec<f32>> {
        let mut values = self.stored_chunk(dataset, idx, values).await?;
        dataset.training_rows(&mut values);
        Ok(values)
    }

    /// Chunk `idx` of `dataset` as stored: every row, a text label as its level code (see
    /// [`Dataset::training_rows`] for the rows training reads).
    pub async fn stored_chunk(
        &self,
        dataset: &Dataset,
        idx: usize,
        mut values: Vec<f32>,
    ) -> Result<Vec<f32>> {
        let width = dataset.features() + dataset.targets();
        let sql = "SELECT rows, data FROM dataset_chunks WHERE dataset_id = $1 AND idx = $2";
        let id = dataset.id.to_string();
        let found = on_pool!(self, pool => {
            let row = sqlx::query(sql)
                .bind(&id)
                .bind(idx as i64)
                .fetch_optional(pool)
                .await?;
            match row {
                Some(row) => {
                    let rows: i64 = row.try_get(0)?;
                    // Borrowed from the row: decoding into a Vec<u8> first copied the chunk
                    // once more.
                    let data: &[u8] = row.try_get(1)?;
                    chunk_codec::check(data, rows as usize, width).map_err(|e| {
                        StoreError::Corrupt(format!("dataset {} has {e}", dataset.id))
                    })?;
                    values.clear();
                    values.extend(chunk_codec::values(data));
                    Ok::<_, StoreError>(true)
                }
                None => Ok(false),
            }
        })?;
        if !found {
            return Err(StoreError::Corrupt(format!(
                "dataset {} has no chunk {idx}",
                dataset.id
            )));
        }
        Ok(values)
    }

    /// How many chunks hold `dataset`'s rows.
    pub async fn dataset_chunk_count(&self, dataset: &Dataset) -> Result<usize> {
        let count: i64 = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM dataset_chunks WHERE dataset_id = $1")
                .bind(dataset.id.to_string())
                .fetch_one(pool)
                .await
        })?;
        Ok(count as usize)
    }
}
