//! Where a CSV upload's time goes, without HTTP: parsing alone, SQLite writes alone, and
//! the whole store path (parse + insert + commit) on a body cut into 64 KiB frames the way
//! hyper delivers it. Rounds are interleaved so machine load hits every stage alike.
//!
//! `cargo run --release --example upload_probe -- bench-data/blobs784.csv [rounds]`

use std::time::Instant;

use bytes::Bytes;
use nnserve::ingest::{parse_csv, store_csv, CsvOptions};
use nnserve::store::{NewDataset, Store, Table, DEFAULT_PG_CONNECTIONS};

const FRAME: usize = 64 << 10;
const SQLITE_CHUNK: usize = 8 << 20;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: upload_probe FILE.csv [rounds]"))?;
    let rounds: usize = args.next().map_or(Ok(5), |r| r.parse())?;
    let body = std::fs::read(&path)?;
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("probe.db");
    let store = Store::connect(db.to_str().expect("UTF-8 path"), DEFAULT_PG_CONNECTIONS).await?;

    let mut stored_bytes = 0;
    let (mut parse, mut sqlite, mut whole) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let start = Instant::now();
        let mut floats = 0;
        parse_csv(&body[..], &CsvOptions::default(), |chunk| {
            floats += chunk.data.len();
            Ok(())
        })?;
        parse.push(start.elapsed().as_secs_f64());
        stored_bytes = floats;

        let start = Instant::now();
        let id = write_blobs(&store, stored_bytes).await?;
        sqlite.push(start.elapsed().as_secs_f64());

        let frames: Vec<Result<Bytes, std::convert::Infallible>> = body
            .chunks(FRAME)
            .map(|frame| Ok(Bytes::copy_from_slice(frame)))
            .collect();
        let start = Instant::now();
        let stream = futures_util::stream::iter(frames);
        let dataset = store_csv(&store, stream, CsvOptions::default(), None, usize::MAX).await?;
        whole.push(start.elapsed().as_secs_f64());
        // Outside the clocks, so every round starts from the same database size.
        store.delete_dataset(id).await?;
        store.delete_dataset(dataset.id).await?;
        eprintln!(
            "round {round}: parse {:.3} s, sqlite {:.3} s, store_csv {:.3} s",
            parse[round], sqlite[round], whole[round]
        );
    }
    let mb = body.len() as f64 / 1e6;
    println!(
        "{path} ({mb:.1} MB of CSV, {:.1} MB of f32), medians of {rounds}:",
        stored_bytes as f64 / 1e6
    );
    println!(
        "  parse only        {:7.3} s  {:6.1} MB/s",
        median(&parse),
        mb / median(&parse)
    );
    println!(
        "  SQLite only       {:7.3} s  {:6.1} MB/s of CSV",
        median(&sqlite),
        mb / median(&sqlite)
    );
    println!(
        "  store_csv (whole) {:7.3} s  {:6.1} MB/s",
        median(&whole),
        mb / median(&whole)
    );
    Ok(())
}

/// The SQLite side of an upload of `bytes` bytes of f32: 8 MiB chunks in one transaction.
async fn write_blobs(store: &Store, bytes: usize) -> anyhow::Result<uuid::Uuid> {
    let chunk = vec![0x3f_u8; SQLITE_CHUNK];
    let mut writer = store.begin_dataset().await?;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(SQLITE_CHUNK);
        writer.insert_chunk(n / 4, &chunk[..n]).await?;
        left -= n;
    }
    let dataset = writer
        .commit(NewDataset {
            name: "probe".into(),
            table: Table {
                rows: bytes / 4,
                columns: vec!["x".into()],
                feature_names: vec!["x".into()],
                target_names: Vec::new(),
                target_stats: Vec::new(),
                chunk_rows: SQLITE_CHUNK / 4,
                column_reports: Vec::new(),
                unlabelled_rows: 0,
                na_values: None,
            },
        })
        .await?;
    Ok(dataset.id)
}

fn median(xs: &[f64]) -> f64 {
    let mut xs = xs.to_vec();
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}
