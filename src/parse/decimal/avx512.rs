//! The AVX-512 kernel of [`super::plain_row`]: a block's masks from one 64-byte compare each;
//! eight queued tokens' bytes fetched with one gather, read with each step of the one-token
//! reader (`plain_row::short_token`) on eight 64-bit lanes (variable shifts give 0 for counts
//! of 64 and more, which the scalar reader spends checked shifts on), and stored with one
//! scatter. `row` compiles the whole row loop for
//! these features, so that the kernel is inlined into it and bit counts are single
//! instructions.

use std::arch::x86_64::*;

use super::plain_row::{fallback_token, read_row, Block, Kernel};
use super::token_queue::TokenQueue;

pub fn available() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512dq")
        && is_x86_feature_detected!("avx512cd")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("popcnt")
        && is_x86_feature_detected!("lzcnt")
        && is_x86_feature_detected!("bmi1")
}

/// `plain_row::plain_row` after its checks, for CPUs where [`available`] holds.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512cd,avx512vl,popcnt,lzcnt,bmi1")]
pub fn row(text: &[u8], pos: usize, sep: u8, end: u8, out: &mut [f32]) -> Option<usize> {
    read_row::<Avx512>(text, pos, sep, end, out)
}

struct Avx512;

impl Kernel for Avx512 {
    #[inline(always)]
    fn classify(bytes: &[u8; 64], sep: u8, end: u8) -> Block {
        // SAFETY: inlined only into `row`, which has these features; `bytes` holds 64.
        unsafe {
            let w = _mm512_loadu_si512(bytes.as_ptr().cast());
            let is = |c: u8| _mm512_cmpeq_epi8_mask(w, _mm512_set1_epi8(c as i8));
            let digit = _mm512_cmplt_epu8_mask(
                _mm512_sub_epi8(w, _mm512_set1_epi8(b'0' as i8)),
                _mm512_set1_epi8(10),
            );
            let exponent = _mm512_cmpeq_epi8_mask(
                _mm512_or_si512(w, _mm512_set1_epi8(0x20)),
                _mm512_set1_epi8(b'e' as i8),
            );
            let (sep, end, space) = (is(sep), is(end), is(b' '));
            let known = digit | is(b'.') | is(b'-') | is(b'+') | exponent | space | sep | end;
            Block {
                sep,
                end,
                space,
                zero: is(b'0'),
                other: !known,
            }
        }
    }

    /// One gather of the eight tokens' last 8 bytes, the reader on eight lanes, and one
    /// scatter of the plain ones' values; the others one by one through [`fallback_token`].
    #[inline(always)]
    fn read(text: &[u8], queue: &TokenQueue, count: usize, out: &mut [f32]) -> bool {
        let queued = (1u16 << count).wrapping_sub(1) as u8;
        debug_assert!(queue.slots[..count]
            .iter()
            .all(|&s| (s as usize) < out.len()));
        // SAFETY: inlined only into `row`, which has these features. The gather reads
        // `text[end - 8..end]` of queued tokens only, and the scatter writes their slots:
        // `TokenQueue`'s contract gives `8 <= end <= text.len()` and `slot < out.len()`.
        let plain = unsafe {
            let ends = _mm256_loadu_si256(queue.ends.as_ptr().cast());
            let starts = _mm256_loadu_si256(queue.starts.as_ptr().cast());
            let words = _mm512_mask_i32gather_epi64::<1>(
                _mm512_setzero_si512(),
                queued,
                _mm256_sub_epi32(ends, _mm256_set1_epi32(8)),
                text.as_ptr().cast(),
            );
            let lens = _mm512_cvtepu32_epi64(_mm256_sub_epi32(ends, starts));
            let (values, plain) = read8(words, lens);
            let slots = _mm256_loadu_si256(queue.slots.as_ptr().cast());
            _mm256_mask_i32scatter_ps::<4>(out.as_mut_ptr(), plain & queued, slots, values);
            plain
        };
        let mut ok = true;
        let mut rest = queued & !plain;
        while rest != 0 {
            let k = rest.trailing_zeros() as usize;
            let (start, end) = (queue.starts[k] as usize, queue.ends[k] as usize);
            let (value, number) = fallback_token(text, start, end);
            out[queue.slots[k] as usize] = value;
            ok &= number;
            rest &= rest - 1;
        }
        ok
    }
}

/// `plain_row::short_token` on eight lanes, step for step, after one leading space if a token
/// has one; bit k of the mask says whether token k is plain.
#[inline(always)]
fn read8(w: __m512i, len: __m512i) -> (__m256, u8) {
    // SAFETY: inlined only into `row`, which has these features.
    unsafe {
        let splat = |v: u64| _mm512_set1_epi64(v as i64);
        let (zeros, all) = (splat(0x3030_3030_3030_3030), splat(u64::MAX));
        let t = _mm512_srlv_epi64(w, _mm512_slli_epi64(_mm512_sub_epi64(splat(8), len), 3));
        let space =
            _mm512_cmpeq_epi64_mask(_mm512_and_si512(t, splat(0xFF)), splat(u64::from(b' ')));
        let t = _mm512_mask_srli_epi64(t, space, t, 8);
        let len = _mm512_mask_sub_epi64(len, space, len, splat(1));
        let len_ok = _mm512_cmplt_epu64_mask(_mm512_sub_epi64(len, splat(1)), splat(8));
        let first = _mm512_and_si512(t, splat(0xFF));
        let neg = _mm512_cmpeq_epi64_mask(first, splat(u64::from(b'-')));
        let t = _mm512_mask_srli_epi64(t, neg, t, 8);
        let n_bits = _mm512_slli_epi64(_mm512_mask_sub_epi64(len, neg, len, splat(1)), 3);
        let past = _mm512_sllv_epi64(all, n_bits);
        let t = _mm512_or_si512(_mm512_andnot_si512(past, t), _mm512_and_si512(zeros, past));
        // zero_bytes(t ^ '.')
        let low7 = splat(0x7F7F_7F7F_7F7F_7F7F);
        let x = _mm512_xor_si512(t, splat(0x2E2E_2E2E_2E2E_2E2E));
        let y = _mm512_or_si512(
            _mm512_or_si512(_mm512_add_epi64(_mm512_and_si512(x, low7), low7), x),
            low7,
        );
        let dots = _mm512_andnot_si512(y, all);
        let has_dot = _mm512_test_epi64_mask(dots, dots);
        // The lowest dot's high bit, less 7: the dot's offset in bits; 64 without a dot.
        let lowest = _mm512_and_si512(dots, _mm512_sub_epi64(_mm512_setzero_si512(), dots));
        let top = _mm512_sub_epi64(splat(63 - 7), _mm512_lzcnt_epi64(lowest));
        let dot_bits = _mm512_mask_mov_epi64(splat(64), has_dot, top);
        let int_bits = _mm512_min_epu64(dot_bits, n_bits);
        let below = _mm512_andnot_si512(_mm512_sllv_epi64(all, dot_bits), all);
        let squeezed = _mm512_or_si512(
            _mm512_or_si512(
                _mm512_and_si512(t, below),
                _mm512_andnot_si512(below, _mm512_srli_epi64(t, 8)),
            ),
            _mm512_maskz_mov_epi64(has_dot, splat(0x30 << 56)),
        );
        let digit_bits = _mm512_mask_sub_epi64(n_bits, has_dot, n_bits, splat(8));
        let fill = _mm512_sub_epi64(splat(64), digit_bits);
        let aligned = _mm512_or_si512(
            _mm512_sllv_epi64(squeezed, fill),
            _mm512_andnot_si512(_mm512_sllv_epi64(all, fill), zeros),
        );
        // all_digits(aligned)
        let high = splat(0xF0F0_F0F0_F0F0_F0F0);
        let nibbles = _mm512_or_si512(
            _mm512_and_si512(aligned, high),
            _mm512_srli_epi64(
                _mm512_and_si512(
                    _mm512_add_epi64(aligned, splat(0x0606_0606_0606_0606)),
                    high,
                ),
                4,
            ),
        );
        let digits_ok = _mm512_cmpeq_epi64_mask(nibbles, splat(0x3333_3333_3333_3333));
        let one_dot = _mm512_testn_epi64_mask(dots, _mm512_sub_epi64(dots, splat(1)));
        let has_int = _mm512_test_epi64_mask(int_bits, int_bits);
        let dot_inside =
            !has_dot | _mm512_cmplt_epu64_mask(_mm512_add_epi64(dot_bits, splat(8)), n_bits);
        let no_lead_zero = _mm512_cmpeq_epi64_mask(int_bits, splat(8))
            | _mm512_cmpneq_epi64_mask(_mm512_and_si512(t, splat(0xFF)), splat(u64::from(b'0')));
        // swar8(aligned - '0')
        let val = _mm512_sub_epi64(aligned, zeros);
        let val = _mm512_add_epi64(
            _mm512_add_epi64(_mm512_slli_epi64(val, 3), _mm512_slli_epi64(val, 1)),
            _mm512_srli_epi64(val, 8),
        );
        let mask = splat(0x0000_00FF_0000_00FF);
        let val = _mm512_add_epi64(
            _mm512_mullo_epi64(_mm512_and_si512(val, mask), splat(100 + (1_000_000 << 32))),
            _mm512_mullo_epi64(
                _mm512_and_si512(_mm512_srli_epi64(val, 16), mask),
                splat(1 + (10_000 << 32)),
            ),
        );
        let mantissa = _mm512_srli_epi64(val, 32);
        let fits = _mm512_cmple_epu64_mask(mantissa, splat(1 << 24));
        let plain = len_ok & digits_ok & one_dot & has_int & dot_inside & no_lead_zero & fits;
        // Fraction digits: n - int_len - 1 with a dot, 0 without (at most 6).
        let frac = _mm512_srli_epi64(_mm512_sub_epi64(n_bits, int_bits), 3);
        let frac = _mm512_maskz_sub_epi64(has_dot, frac, splat(1));
        let pow10 = _mm256_setr_ps(1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7);
        let divisor = _mm256_permutexvar_ps(_mm512_cvtepi64_epi32(frac), pow10);
        let value = _mm256_div_ps(_mm512_cvtepu64_ps(mantissa), divisor);
        let sign = _mm256_maskz_mov_epi32(neg, _mm256_set1_epi32(i32::MIN));
        (_mm256_or_ps(value, _mm256_castsi256_ps(sign)), plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::decimal::plain_row::short_token;

    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512cd,avx512vl")]
    fn read8_here(words: &[u64; 8], lens: &[u64; 8]) -> ([f32; 8], u8) {
        let mut values = [0.0; 8];
        // SAFETY: the arrays hold 64 bytes each and `values` 32.
        let plain = unsafe {
            let words = _mm512_loadu_si512(words.as_ptr().cast());
            let lens = _mm512_loadu_si512(lens.as_ptr().cast());
            let (v, plain) = read8(words, lens);
            _mm256_storeu_ps(values.as_mut_ptr(), v);
            plain
        };
        (values, plain)
    }

    #[test]
    fn the_wide_reader_agrees_with_the_scalar_one_bit_for_bit() {
        if !available() {
            eprintln!("no AVX-512 here: the scalar reader is the only one");
            return;
        }
        let (mut words, mut lens) = ([0; 8], [0; 8]);
        let tokens = super::super::plain_row::tests::tokens();
        let mut plain_seen = 0;
        for (n, group) in tokens.chunks(8).enumerate() {
            // What precedes a token in its 8-byte load must not matter.
            let before = ["99999999", ",,,,,,,,", "-.-.-.-.", "        "][n % 4];
            for (k, token) in group.iter().enumerate() {
                let text = format!("{before}{token}");
                words[k] = u64::from_le_bytes(*text.as_bytes().last_chunk().expect("8"));
                lens[k] = token.len() as u64;
            }
            // SAFETY: `available` said the CPU has the features.
            let (values, plain) = unsafe { read8_here(&words, &lens) };
            for (k, token) in group.iter().enumerate() {
                let want = short_token(words[k], token.len());
                let got = (plain & (1 << k) != 0).then_some(values[k]);
                assert_eq!(got.map(f32::to_bits), want.map(f32::to_bits), "{token:?}");
                plain_seen += usize::from(want.is_some());
            }
        }
        assert!(
            plain_seen > tokens.len() / 8,
            "only {plain_seen} plain tokens"
        );
    }
}
