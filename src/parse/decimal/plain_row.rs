//! The fast path for rows of plain short decimals, the shape CSV-born rows are made of
//! (`0`, `0.1962`, `-12.5`). Read a number at a time, each number's position depends on the
//! previous one's length: the CPU waits on one chain of loads, bit scans and shifts, and
//! mispredicts on zero versus non-zero.
//! Here, as in simdjson's first stage, 64 bytes at a time are classified into bit masks;
//! the separators' positions, and which tokens are bare zeros, come from the masks alone.
//! Zeros cost nothing more, and the other tokens are read eight at a time by
//! [`super::token_queue`], each from one 8-byte load with no branch on its text.

use super::token_queue::TokenQueue;
use super::POW10;

const ZEROS: u64 = 0x3030_3030_3030_3030;

/// Reads `out.len()` JSON numbers starting at `text[pos]`, each separated from the next by
/// `sep` and the last followed by `end`, with at most one space before each value; returns
/// the position just after `end`. Tokens of at most 8 bytes of the shape
/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?` whose digits fit in f32's mantissa take the fast path,
/// other numbers [`super::parse`]; either way each value is bit for bit what `parse` gives.
/// `None` means "read this row the general way": text that is not a number where one
/// belongs, a number f32 cannot hold, any other separator, whitespace elsewhere, and rows
/// that start within 8 bytes of the text's start (a token is read with a load of the 8
/// bytes that end where it ends).
pub fn plain_row(text: &[u8], pos: usize, sep: u8, end: u8, out: &mut [f32]) -> Option<usize> {
    // Token positions are queued as i32 (see `TokenQueue`).
    if pos < 8 || out.is_empty() || text.len() > i32::MAX as usize {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    if super::avx512::available() {
        // SAFETY: the CPU has the features `avx512::row` is compiled for.
        return unsafe { super::avx512::row(text, pos, sep, end, out) };
    }
    read_row::<Portable>(text, pos, sep, end, out)
}

/// How a row's blocks are classified and its tokens read eight at a time: [`Portable`], or
/// with AVX-512 (`super::avx512`).
pub(super) trait Kernel {
    /// One bit per byte of the 64.
    fn classify(bytes: &[u8; 64], sep: u8, end: u8) -> Block;
    /// Reads the first `count` tokens of `queue` into their slots of `out` (see
    /// [`short_token`]); `false` if one is not a number.
    fn read(text: &[u8], queue: &TokenQueue, count: usize, out: &mut [f32]) -> bool;
}

/// [`plain_row`] after its checks, with `K`'s instructions.
#[inline(always)]
pub(super) fn read_row<K: Kernel>(
    text: &[u8],
    pos: usize,
    sep: u8,
    end: u8,
    out: &mut [f32],
) -> Option<usize> {
    // Bare zeros, most values of sparse data (pixels, one-hot columns), are found by the
    // masks alone and never read: they are already in `out`.
    out.fill(0.0);
    let mut block = pos;
    // Values before this block, and where the first token that reaches into it starts.
    let (mut before, mut token_start) = (0, pos);
    // Bit 0: the byte before the block ends a token (the row's `[` does).
    let mut carry = 1;
    // `|`, not `||`: one test a block instead of a branch a value.
    let mut bad = false;
    let mut queue = TokenQueue::new();
    while block < text.len() {
        let masks = Block::at::<K>(text, block, sep, end);
        let mut stops = masks.sep | masks.end;
        let wanted = out.len() - before;
        let row_ends_here = stops.count_ones() as usize >= wanted;
        if row_ends_here {
            stops = first_bits(stops, wanted);
        }
        let starts = (stops << 1) | carry;
        let starts = starts | ((starts & masks.space) << 1);
        let bare_zeros = masks.zero & starts & (stops >> 1);
        let mut read = stops & !(bare_zeros << 1);
        while read != 0 {
            let rel = read.trailing_zeros();
            let earlier = stops & ((1 << rel) - 1);
            let start = match earlier {
                0 => token_start,
                _ => block + 64 - earlier.leading_zeros() as usize,
            };
            let slot = before + earlier.count_ones() as usize;
            // SAFETY: the token ends at a separator found in this block, inside the text, and
            // at or after `pos`, which `plain_row` made at least 8; `stops` was cut to the
            // `wanted` values still missing, so `slot < out.len()`. One `text` and `out` for
            // the whole row.
            bad |= !unsafe { queue.push::<K>(text, start, block + rel as usize, slot, out) };
            read &= read - 1;
        }
        if row_ends_here {
            bad |= !queue.flush::<K>(text, out);
            let last = 63 - stops.leading_zeros();
            let within = u64::MAX >> (63 - last);
            let clean = (masks.other & within == 0) & (masks.end & stops == 1 << last);
            return (!bad & clean).then_some(block + last as usize + 1);
        }
        if bad | (masks.other != 0) | (masks.end != 0) {
            return None;
        }
        if stops != 0 {
            token_start = block + 64 - stops.leading_zeros() as usize;
        }
        before += stops.count_ones() as usize;
        carry = stops >> 63;
        block += 64;
    }
    None
}

/// The lowest `n` set bits of `bits`, which has at least `n`.
#[inline(always)]
fn first_bits(mut bits: u64, n: usize) -> u64 {
    let mut kept = 0;
    for _ in 0..n {
        let lowest = bits & bits.wrapping_neg();
        kept |= lowest;
        bits ^= lowest;
    }
    kept
}

/// The token in `text[start..at]`, after one leading space if it has one.
#[inline(always)]
fn token(text: &[u8], start: usize, at: usize) -> (f32, bool) {
    let len = at - start - usize::from(text[start] == b' ');
    let word = u64::from_le_bytes(text[at - 8..at].try_into().expect("8 bytes"));
    match short_token(word, len) {
        Some(value) => (value, true),
        None => fallback_token(text, start, at),
    }
}

/// The number in `text[start..at]` (one leading space allowed) by [`super::parse`], and
/// whether it is one.
#[cold]
#[inline(never)]
pub(super) fn fallback_token(text: &[u8], start: usize, at: usize) -> (f32, bool) {
    let start = start + usize::from(text[start] == b' ');
    match super::parse(&text[start..]) {
        Ok((value, used)) if start + used == at => (value, true),
        _ => (0.0, false),
    }
}

/// The value of the plain token (see [`plain_row`]) of `len` bytes that ends `word`, if it
/// is one.
#[inline(always)]
pub(super) fn short_token(word: u64, len: usize) -> Option<f32> {
    if len.wrapping_sub(1) >= 8 {
        return None;
    }
    let len = len as u32;
    // Little-endian: the token is the top `len` bytes; move it to the bottom.
    let t = word >> (8 * (8 - len));
    let neg = u32::from(t & 0xFF == u64::from(b'-'));
    let t = t >> (8 * neg);
    let n = len - neg;
    // The bytes past the token become '0', which the tests below take as digits.
    let past = u64::MAX.checked_shl(8 * n).unwrap_or(0);
    let t = (t & !past) | (ZEROS & past);
    let dots = zero_bytes(t ^ 0x2E2E_2E2E_2E2E_2E2E);
    let has_dot = u32::from(dots != 0);
    let dot_at = dots.trailing_zeros() / 8; // 8 without a dot
    let int_len = dot_at.min(n);
    // The dot squeezed out: the bytes after it move down one, and a '0' fills the top.
    let below = !u64::MAX.checked_shl(8 * dot_at).unwrap_or(0);
    let squeezed = (t & below) | ((t >> 8) & !below) | (u64::from(has_dot) * 0x30) << 56;
    // Right-aligned, with '0's above them, the digits read as one integer.
    let fill = 8 * (8 - (n - has_dot));
    let aligned = squeezed.checked_shl(fill).unwrap_or(0)
        | (ZEROS & !u64::MAX.checked_shl(fill).unwrap_or(0));
    let plain = all_digits(aligned)
        & (dots & dots.wrapping_sub(1) == 0)
        & (int_len >= 1)
        & ((has_dot == 0) | (dot_at + 1 < n))
        & ((int_len == 1) | (t & 0xFF != u64::from(b'0')));
    let mantissa = swar8(aligned.wrapping_sub(ZEROS));
    if !plain | (mantissa > 1 << 24) {
        return None;
    }
    let frac_len = (n - int_len).saturating_sub(1);
    let value = mantissa as f32 / POW10[frac_len as usize];
    Some(f32::from_bits(value.to_bits() | neg << 31))
}

/// The high bit of each zero byte of `x`, exactly (no borrow between bytes).
#[inline(always)]
fn zero_bytes(x: u64) -> u64 {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// Whether all eight bytes are ASCII digits (simdjson's `is_made_of_eight_digits_fast`).
#[inline(always)]
fn all_digits(v: u64) -> bool {
    const HIGH_NIBBLES: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    (v & HIGH_NIBBLES) | ((v.wrapping_add(0x0606_0606_0606_0606) & HIGH_NIBBLES) >> 4)
        == 0x3333_3333_3333_3333
}

/// Eight digit values (0..=9), the most significant in the lowest byte, as one number:
/// three multiplications instead of eight (simdjson's `parse_eight_digits_unrolled`).
#[inline(always)]
fn swar8(val: u64) -> u64 {
    const MASK: u64 = 0x0000_00FF_0000_00FF;
    const MUL1: u64 = 100 + (1_000_000 << 32);
    const MUL2: u64 = 1 + (10_000 << 32);
    let val = val.wrapping_mul(10).wrapping_add(val >> 8);
    let val = (val & MASK)
        .wrapping_mul(MUL1)
        .wrapping_add(((val >> 16) & MASK).wrapping_mul(MUL2));
    u64::from((val >> 32) as u32)
}

/// One bit per byte of `text[start..start + 64]` (bytes past the text's end count as
/// spaces).
pub(super) struct Block {
    pub sep: u64,
    pub end: u64,
    pub space: u64,
    pub zero: u64,
    /// Bytes that have no place in a plain row: none of `0-9 . - + e E`, space, `sep`, `end`.
    pub other: u64,
}

impl Block {
    #[inline(always)]
    fn at<K: Kernel>(text: &[u8], start: usize, sep: u8, end: u8) -> Block {
        match text.get(start..start + 64) {
            Some(bytes) => K::classify(bytes.try_into().expect("64 bytes"), sep, end),
            None => {
                let mut padded = [b' '; 64];
                let rest = &text[start..];
                padded[..rest.len()].copy_from_slice(rest);
                K::classify(&padded, sep, end)
            }
        }
    }
}

/// SSE2 (part of x86_64) or plain Rust, and one token at a time.
pub(super) struct Portable;

impl Kernel for Portable {
    #[inline(always)]
    fn classify(bytes: &[u8; 64], sep: u8, end: u8) -> Block {
        classify(bytes, sep, end)
    }

    #[inline(always)]
    fn read(text: &[u8], queue: &TokenQueue, count: usize, out: &mut [f32]) -> bool {
        let mut ok = true;
        for k in 0..count {
            let (start, at) = (queue.starts[k] as usize, queue.ends[k] as usize);
            let (value, number) = token(text, start, at);
            out[queue.slots[k] as usize] = value;
            ok &= number;
        }
        ok
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn classify(bytes: &[u8; 64], sep: u8, end: u8) -> Block {
    use std::arch::x86_64::*;
    let mut masks = [0u64; 5];
    for (k, chunk) in bytes.chunks_exact(16).enumerate() {
        // SAFETY: `chunk` has 16 readable bytes; SSE2 is part of x86_64.
        let lanes = unsafe {
            let w = _mm_loadu_si128(chunk.as_ptr().cast());
            let byte = |c: u8| _mm_set1_epi8(c as i8);
            let is = |c: u8| _mm_cmpeq_epi8(w, byte(c));
            let t = _mm_sub_epi8(w, byte(b'0'));
            let digit = _mm_cmpeq_epi8(_mm_min_epu8(t, byte(9)), t);
            let (sep, end) = (is(sep), is(end));
            let number = _mm_or_si128(
                _mm_or_si128(digit, _mm_or_si128(is(b'.'), is(b'-'))),
                _mm_or_si128(
                    _mm_cmpeq_epi8(_mm_or_si128(w, byte(0x20)), byte(b'e')),
                    is(b'+'),
                ),
            );
            let known = _mm_or_si128(_mm_or_si128(number, is(b' ')), _mm_or_si128(sep, end));
            [sep, end, is(b' '), is(b'0'), known].map(|m| _mm_movemask_epi8(m) as u16)
        };
        for (mask, lane) in masks.iter_mut().zip(lanes) {
            *mask |= u64::from(lane) << (16 * k);
        }
    }
    Block {
        sep: masks[0],
        end: masks[1],
        space: masks[2],
        zero: masks[3],
        other: !masks[4],
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn classify(bytes: &[u8; 64], sep: u8, end: u8) -> Block {
    let mut block = Block {
        sep: 0,
        end: 0,
        space: 0,
        zero: 0,
        other: 0,
    };
    for (i, &c) in bytes.iter().enumerate() {
        let known = c.is_ascii_digit() || b".-+eE ".contains(&c) || c == sep || c == end;
        block.sep |= u64::from(c == sep) << i;
        block.end |= u64::from(c == end) << i;
        block.space |= u64::from(c == b' ') << i;
        block.zero |= u64::from(c == b'0') << i;
        block.other |= u64::from(!known) << i;
    }
    block
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The shape `plain_row` promises to take, written the slow way.
    fn is_plain(token: &str) -> bool {
        let unsigned = token.strip_prefix('-').unwrap_or(token);
        let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        let digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
        token.len() <= 8
            && digits(int)
            && !int.is_empty()
            && (int == "0" || !int.starts_with('0'))
            && digits(frac)
            && (frac.is_empty() != unsigned.contains('.'))
            && format!("{int}{frac}").parse::<u64>().unwrap() <= 1 << 24
    }

    const PREFIX: &str = "{\"instances\": [";

    type RowReader = fn(&[u8], usize, u8, u8, &mut [f32]) -> Option<usize>;

    /// Reads `tokens` as one row of a body; the general parser's values beside it. Also
    /// checks that the scalar kernel reads the row as `plain_row` does (which uses the
    /// AVX-512 one where the CPU has it).
    fn row(tokens: &[&str], sep: &str) -> (Option<Vec<f32>>, Vec<Option<f32>>) {
        let text = format!("{PREFIX}[{}]]}}", tokens.join(sep));
        let read = |kernel: RowReader| {
            let mut out = vec![f32::NAN; tokens.len()];
            kernel(text.as_bytes(), PREFIX.len() + 1, b',', b']', &mut out).map(|end| {
                assert_eq!(end, text.len() - 2, "{text}");
                out
            })
        };
        let fast = read(plain_row);
        let scalar = read(read_row::<Portable>);
        let bits = |v: &Option<Vec<f32>>| {
            v.as_ref()
                .map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
        };
        assert_eq!(bits(&fast), bits(&scalar), "{text}");
        let general = tokens
            .iter()
            .map(|t| match super::super::parse(t.trim_start().as_bytes()) {
                Ok((v, len)) if len == t.trim_start().len() => Some(v),
                _ => None,
            })
            .collect();
        (fast, general)
    }

    pub fn tokens() -> Vec<String> {
        let mut tokens: Vec<String> = [
            "0",
            "-0",
            "0.0",
            "-0.0000",
            "1",
            "-1",
            "0.1962",
            "12345678",
            "12345678.1",
            "16777216",
            "16777217",
            "1677721.7",
            "0.16777217",
            "0.00000001",
            "99999999.9",
            "123456789",
            "1.123456789",
            "01",
            "-",
            "1.",
            ".5",
            "1e5",
            "1E5",
            "1.5e-3",
            "+1",
            "--1",
            "1-",
            "1.2.3",
            "-.5",
            "00.5",
            "0.5e",
            "",
            "-12345678.12345678",
            "123456789012345678901234567890",
            "0.0000000000000000000001",
            "1.000000000000000000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut state: u64 = 7;
        for _ in 0..60_000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let int = (state >> 40) % [1, 10, 1000, 100_000_000][(state as usize >> 3) % 4];
            let frac_len = (state >> 8) as usize % 10;
            let frac = format!("{:09}", (state >> 13) % 1_000_000_000);
            let sign = if state & 1 == 1 { "-" } else { "" };
            tokens.push(match frac_len {
                0 => format!("{sign}{int}"),
                n => format!("{sign}{int}.{}", &frac[..n]),
            });
        }
        tokens
    }

    #[test]
    fn the_token_path_takes_exactly_the_plain_shapes_bit_for_bit() {
        let tokens = tokens();
        let mut taken = 0;
        for token in &tokens {
            // What precedes a token in its 8-byte load must not matter.
            for before in ["99999999", ",,,,,,,,", "-.-.-.-.", "        "] {
                let text = format!("{before}{token}");
                let Some(word) = text.as_bytes().last_chunk::<8>() else {
                    continue;
                };
                match short_token(u64::from_le_bytes(*word), token.len()) {
                    Some(value) => {
                        taken += 1;
                        assert!(is_plain(token), "{token:?} is not plain but was taken");
                        let (want, want_len) = super::super::parse(token.as_bytes())
                            .unwrap_or_else(|_| panic!("{token:?}"));
                        assert_eq!(want_len, token.len(), "{token:?}");
                        assert_eq!(value.to_bits(), want.to_bits(), "{token:?}");
                    }
                    None => assert!(!is_plain(token), "{token:?} is plain but was not taken"),
                }
            }
        }
        assert!(taken > tokens.len(), "the fast path took only {taken}");
    }

    #[test]
    fn rows_agree_with_the_general_parser_bit_for_bit() {
        for token in &tokens() {
            // Alone, and between neighbours that move it across window boundaries.
            for (before, after) in [(0, 0), (1, 2), (13, 0), (20, 7)] {
                let mut cells = vec!["0.5"; before];
                cells.push(token);
                cells.extend(vec!["-7"; after]);
                let (fast, general) = row(&cells, ",");
                match (fast, general[before]) {
                    (Some(values), Some(want)) => {
                        assert_eq!(values[before].to_bits(), want.to_bits(), "{token:?}");
                        assert_eq!(values[0].to_bits(), general[0].unwrap().to_bits());
                    }
                    (None, None) => {}
                    (fast, want) => panic!("{token:?}: row {fast:?}, general {want:?}"),
                }
            }
        }
    }

    #[test]
    fn a_long_row_with_one_space_after_commas_matches_parse() {
        let tokens = tokens();
        let plain: Vec<&str> = tokens
            .iter()
            .map(String::as_str)
            .filter(|t| is_plain(t))
            .take(3000)
            .collect();
        for sep in [",", ", "] {
            let (fast, general) = row(&plain, sep);
            let fast = fast.expect("a row of plain tokens is taken");
            for ((got, want), token) in fast.iter().zip(general).zip(&plain) {
                assert_eq!(got.to_bits(), want.unwrap().to_bits(), "{token}");
            }
        }
    }

    #[test]
    fn sparse_rows_agree_with_the_general_parser_wherever_blocks_split_them() {
        // Bare zeros are taken from the masks, the rest eight at a time: rows of every length
        // up to a few blocks, with tokens of either kind on each side of every block edge.
        let cells = [
            "0",
            "0.25",
            "1",
            "-0",
            "0.009789",
            "0",
            "0",
            "12345678.5",
            "1e-5",
        ];
        let broken = ["00", "0 ", "", "-", "0.", "0x"];
        let mut state: u64 = 11;
        let mut next = |n: usize| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 33) as usize % n
        };
        for len in 1..200 {
            for sep in [",", ", "] {
                let mut tokens: Vec<&str> = (0..len).map(|_| cells[next(cells.len())]).collect();
                let (fast, general) = row(&tokens, sep);
                let fast = fast.unwrap_or_else(|| panic!("{tokens:?} was not taken"));
                for ((got, want), token) in fast.iter().zip(general).zip(&tokens) {
                    assert_eq!(got.to_bits(), want.unwrap().to_bits(), "{token}");
                }
                let at = next(len);
                tokens[at] = broken[next(broken.len())];
                assert!(row(&tokens, sep).0.is_none(), "{tokens:?} was taken");
            }
        }
    }

    #[test]
    fn other_layouts_are_left_to_the_general_parser() {
        for cells in [
            &["1", "2 ", "3"][..],
            &["1", "  2", "3"],
            &["1", "\n2", "3"],
        ] {
            assert!(row(cells, ",").0.is_none(), "{cells:?}");
        }
        let mut out = [0.0; 3];
        for (text, pos, want, why) in [
            (&b"[1,2,3]"[..], 1, None, "near the start"),
            (b"xxxxxxxx[1,2]", 9, None, "too few values"),
            (b"xxxxxxxx[1,2,3,4]", 9, None, "too many values"),
            (b"xxxxxxxx[1,2,3]", 9, Some(15), "as many values as out has"),
        ] {
            assert_eq!(plain_row(text, pos, b',', b']', &mut out), want, "{why}");
        }
        assert_eq!(out, [1.0, 2.0, 3.0]);
    }
}
