//! Eight tokens of a row read at once. With AVX-512 each step of [`super::plain`]'s
//! one-token reader runs on eight 64-bit lanes: ~8 instructions a token instead of ~130,
//! and the variable shifts give 0 for counts of 64 and more, which the scalar reader spends
//! checked shifts on. Without AVX-512 the tokens go through the scalar reader one by one.

use super::plain::{careful, short_token};

/// Tokens found but not read yet: the 8 bytes that end each, its length, and the index of
/// its value in the row.
pub struct Batch {
    words: [u64; 8],
    lens: [u64; 8],
    slots: [u32; 8],
    /// Where each token starts and ends in the text, for [`careful`] when it is not plain.
    spans: [(usize, usize); 8],
    count: usize,
    wide: bool,
}

impl Batch {
    pub fn new() -> Batch {
        Batch {
            words: [0; 8],
            lens: [0; 8],
            slots: [0; 8],
            spans: [(0, 0); 8],
            count: 0,
            wide: wide(),
        }
    }

    /// Adds the token `text[start..at]` (one leading space allowed) whose value goes to
    /// `slot`; reads the batch into `out` once it is full. `false` if a token read is not a
    /// number.
    #[inline(always)]
    pub fn push(
        &mut self,
        text: &[u8],
        start: usize,
        at: usize,
        slot: usize,
        out: &mut [f32],
    ) -> bool {
        let start = start + usize::from(text[start] == b' ');
        let k = self.count;
        self.words[k] = u64::from_le_bytes(text[at - 8..at].try_into().expect("8 bytes"));
        self.lens[k] = (at - start) as u64;
        self.slots[k] = slot as u32;
        self.spans[k] = (start, at);
        self.count += 1;
        self.count < 8 || self.flush(text, out)
    }

    /// Reads the tokens held into `out`; `false` if one is not a number.
    pub fn flush(&mut self, text: &[u8], out: &mut [f32]) -> bool {
        let count = std::mem::take(&mut self.count);
        let (values, plain) = self.read(count);
        let mut ok = true;
        for k in 0..count {
            let value = if plain & (1 << k) != 0 {
                values[k]
            } else {
                let (start, at) = self.spans[k];
                let (value, number) = careful(text, start, at);
                ok &= number;
                value
            };
            out[self.slots[k] as usize] = value;
        }
        ok
    }

    /// The values of the first `count` tokens, and which of them were plain.
    #[inline(always)]
    fn read(&self, count: usize) -> ([f32; 8], u8) {
        #[cfg(target_arch = "x86_64")]
        if self.wide {
            // SAFETY: `wide` says the CPU has these features.
            return unsafe { read8_avx512(&self.words, &self.lens) };
        }
        let mut values = [0.0; 8];
        let mut plain = 0;
        let tokens = self.words.iter().zip(&self.lens).take(count);
        for (k, (value, (&word, &len))) in values.iter_mut().zip(tokens).enumerate() {
            if let Some(v) = short_token(word, len as usize) {
                *value = v;
                plain |= 1 << k;
            }
        }
        (values, plain)
    }
}

#[cfg(target_arch = "x86_64")]
fn wide() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512dq")
        && is_x86_feature_detected!("avx512cd")
        && is_x86_feature_detected!("avx512vl")
}

#[cfg(not(target_arch = "x86_64"))]
fn wide() -> bool {
    false
}

/// [`short_token`] on eight lanes, step for step; bit k of the mask says whether token k is
/// plain.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512cd,avx512vl")]
fn read8_avx512(words: &[u64; 8], lens: &[u64; 8]) -> ([f32; 8], u8) {
    use std::arch::x86_64::*;
    let splat = |v: u64| _mm512_set1_epi64(v as i64);
    let (zeros, all) = (splat(0x3030_3030_3030_3030), splat(u64::MAX));
    // SAFETY: both arrays hold 64 bytes.
    let (w, len) = unsafe {
        (
            _mm512_loadu_si512(words.as_ptr().cast()),
            _mm512_loadu_si512(lens.as_ptr().cast()),
        )
    };
    let len_ok = _mm512_cmplt_epu64_mask(_mm512_sub_epi64(len, splat(1)), splat(8));
    let t = _mm512_srlv_epi64(w, _mm512_slli_epi64(_mm512_sub_epi64(splat(8), len), 3));
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
    let value = _mm256_or_ps(value, _mm256_castsi256_ps(sign));
    let mut values = [0.0f32; 8];
    // SAFETY: `values` holds 32 bytes.
    unsafe { _mm256_storeu_ps(values.as_mut_ptr(), value) };
    (values, plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wide_reader_agrees_with_the_scalar_one_bit_for_bit() {
        let mut batch = Batch::new();
        if !batch.wide {
            eprintln!("no AVX-512 here: the scalar reader is the only one");
            return;
        }
        let tokens = super::super::plain::tests::tokens();
        let mut plain_seen = 0;
        for (n, group) in tokens.chunks(8).enumerate() {
            // What precedes a token in its 8-byte load must not matter.
            let before = ["99999999", ",,,,,,,,", "-.-.-.-.", "        "][n % 4];
            for (k, token) in group.iter().enumerate() {
                let text = format!("{before}{token}");
                batch.words[k] = u64::from_le_bytes(*text.as_bytes().last_chunk().expect("8"));
                batch.lens[k] = token.len() as u64;
            }
            let (values, plain) = batch.read(group.len());
            for (k, token) in group.iter().enumerate() {
                let want = short_token(batch.words[k], token.len());
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
