//! A training job's threads.
//!
//! The epoch loop forks and joins two to three times a batch (the row gather, the
//! shards, the optimizer pass). Called from a thread outside any rayon pool, each
//! `rayon::join` is queued to the global pool and the caller sleeps until a pool
//! thread, woken for it, has run both halves: two or three thread wake-ups a batch.
//! Run on a worker of a pool of its own, the loop keeps the first half of each join
//! and the other worker, still spinning from the last join, takes the second.

/// Runs `work` on a rayon pool of `threads` workers made for it. Inline when one thread
/// is all it has, or when the pool's threads cannot be started: the job then runs as it
/// would without this, the same bits, only its joins slower.
pub fn on_job_threads<R: Send>(threads: usize, work: impl FnOnce() -> R + Send) -> R {
    let pool = (threads > 1)
        .then(|| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("train-{i}"))
                .build()
                .ok()
        })
        .flatten();
    match pool {
        Some(pool) => pool.install(work),
        None => work(),
    }
}
