//! Reading a dataset one chunk at a time, for training on datasets larger than memory.

use super::{Dataset, Result, Store, StoreError};

impl Store {
    /// Rows of each chunk of `dataset`, in order; checked against the dataset's row count.
    pub async fn dataset_chunk_rows(&self, dataset: &Dataset) -> Result<Vec<usize>> {
        let rows: Vec<i64> =
            sqlx::query_scalar("SELECT rows FROM dataset_chunks WHERE dataset_id = ? ORDER BY idx")
                .bind(dataset.id.to_string())
                .fetch_all(&self.pool)
                .await?;
        let rows: Vec<usize> = rows.into_iter().map(|r| r as usize).collect();
        let total: usize = rows.iter().sum();
        if total != dataset.rows {
            return Err(StoreError::Corrupt(format!(
                "dataset {} should have {} rows but its chunks hold {total}",
                dataset.id, dataset.rows
            )));
        }
        Ok(rows)
    }

    /// Chunk `idx` of `dataset` as rows of features then targets.
    pub async fn dataset_chunk(&self, dataset: &Dataset, idx: usize) -> Result<Vec<f32>> {
        let (rows, data): (i64, Vec<u8>) = sqlx::query_as(
            "SELECT rows, data FROM dataset_chunks WHERE dataset_id = ? AND idx = ?",
        )
        .bind(dataset.id.to_string())
        .bind(idx as i64)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("dataset {} has no chunk {idx}", dataset.id)))?;
        let width = dataset.features() + dataset.targets();
        if data.len() != rows as usize * width * 4 {
            return Err(StoreError::Corrupt(format!(
                "dataset {} has a chunk of {} bytes for {rows} rows of {width} values",
                dataset.id,
                data.len()
            )));
        }
        Ok(data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("chunks_exact(4)")))
            .collect())
    }
}
