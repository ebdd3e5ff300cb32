//! The machine's fp32 peak, measured in the same run as the workloads: every core runs
//! independent fused multiply-adds on registers alone. The host's speed drifts over
//! minutes (and differs from the machine `../shared/bench` was measured on), so "% of
//! peak" is only meaningful against a peak measured beside the epochs it divides.

use std::time::Instant;

/// GFLOP/s of all cores together (the best of three rounds, each ~0.2 s), or `None`
/// on a CPU without FMA.
pub fn measure() -> Option<f64> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (0..3).filter_map(|_| all_cores(cores)).reduce(f64::max)
}

fn all_cores(cores: usize) -> Option<f64> {
    std::thread::scope(|s| {
        let runs: Vec<_> = (0..cores).map(|_| s.spawn(one_core)).collect();
        runs.into_iter()
            .map(|r| r.join().expect("peak thread"))
            .sum::<Option<f64>>()
    })
}

/// Iterations of 24 independent vector FMAs.
const ITERATIONS: u64 = 4_000_000;

fn one_core() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        let started = Instant::now();
        // SAFETY: each kernel runs only on a CPU that reports its features.
        let lanes = if is_x86_feature_detected!("avx512f") {
            std::hint::black_box(unsafe { x86::fma512(ITERATIONS) });
            16
        } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            std::hint::black_box(unsafe { x86::fma256(ITERATIONS) });
            8
        } else {
            return None;
        };
        let flop = (ITERATIONS * 24 * lanes * 2) as f64;
        Some(flop / started.elapsed().as_secs_f64() / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    // 24 accumulators: more than FMA latency × ports (4 × 2), so the loop is bound by
    // FMA throughput alone. a·0.999999 + 1e-7 stays near 0.1: no overflow, no denormals.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma512(iterations: u64) -> f32 {
        let mut acc = [_mm512_set1_ps(1.0); 24];
        let (x, y) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
        for _ in 0..iterations {
            for a in acc.iter_mut() {
                *a = _mm512_fmadd_ps(*a, x, y);
            }
        }
        let sum = acc
            .iter()
            .fold(_mm512_setzero_ps(), |s, &a| _mm512_add_ps(s, a));
        _mm512_reduce_add_ps(sum)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma256(iterations: u64) -> f32 {
        let mut acc = [_mm256_set1_ps(1.0); 24];
        let (x, y) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
        for _ in 0..iterations {
            for a in acc.iter_mut() {
                *a = _mm256_fmadd_ps(*a, x, y);
            }
        }
        let sum = acc
            .iter()
            .fold(_mm256_setzero_ps(), |s, &a| _mm256_add_ps(s, a));
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), sum);
        lanes.iter().sum()
    }
}
