//! The fast path for rows of plain short decimals, the shape CSV-born rows are made of
//! (`0`, `0.1962`, `-12.5`). `parse` walks a number byte by byte, and on such rows the CPU
//! mispredicts its branches on a number's length and on zero versus non-zero: ~13 ns a
//! number on the benchmark's predict body. Here a 64-byte window is classified once into
//! bit masks (digits, dots, minus signs), a token's length is one bit scan, and two SWAR
//! multiplications read its digits, with no branch that depends on the text except "is
//! this row the plain shape at all", which is nearly always yes.

use super::POW10;

const ZEROS: u64 = 0x3030_3030_3030_3030;
const POW10_U64: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// The longest plain token: `-`, 8 digits, `.`, 8 digits.
const MAX_TOKEN: usize = 18;

/// Reads `out.len()` JSON numbers starting at `text[pos]`, each separated from the next by
/// `sep` and the last followed by `end`, with at most one space before each value; returns
/// the position just after `end`. Values of the shape `-?(0|[1-9][0-9]{0,7})(\.[0-9]{1,8})?`
/// that are exact in the Clinger fast path take the fast path, others [`super::parse`]; either
/// way each value is bit for bit what `parse` gives. `None` means "read this row the careful
/// way": text that is not a number where one belongs, a number f32 cannot hold, any other
/// separator, whitespace elsewhere, and rows that start within 8 bytes of the text's start
/// (the digit loads read up to 8 bytes back).
pub fn plain_row(text: &[u8], mut pos: usize, sep: u8, end: u8, out: &mut [f32]) -> Option<usize> {
    if pos < 8 {
        return None;
    }
    let last = out.len().checked_sub(1)?;
    let mut window = Window::at(text, pos);
    let mut i = 0;
    while i <= last {
        pos += usize::from(text.get(pos) == Some(&b' '));
        // Most values of sparse data (pixels, one-hot columns) are bare zeros, often
        // several in a row: one test takes a whole run of them.
        let zeros = zero_run(text, pos, sep).min(last - i);
        if zeros > 0 {
            // Eight stores of a fixed size instead of a memset call of a varying one; the
            // zeros past this run are overwritten by the values that follow.
            match out.get_mut(i..i + 8) {
                Some(eight) => eight.copy_from_slice(&[0.0; 8]),
                None => out[i..i + zeros].fill(0.0),
            }
            i += zeros;
            pos += 2 * zeros;
            continue;
        }
        if pos + MAX_TOKEN + 1 > window.start + 64 {
            window = Window::at(text, pos);
        }
        // Any other number (an exponent, more digits) is read by the careful routine, so one
        // odd value does not send the whole row to the careful parser.
        let (value, len) = match window.token(text, pos) {
            Some(plain) => plain,
            None => super::parse(&text[pos..]).ok()?,
        };
        out[i] = value;
        pos += len;
        let want = if i == last { end } else { sep };
        if text.get(pos) != Some(&want) {
            return None;
        }
        pos += 1;
        i += 1;
    }
    Some(pos)
}

/// How many `0<sep>` pairs (up to 8) start at `text[pos]`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn zero_run(text: &[u8], pos: usize, sep: u8) -> usize {
    use std::arch::x86_64::*;
    let Some(bytes) = text.get(pos..pos + 16) else {
        return 0;
    };
    let pair = i16::from_le_bytes([b'0', sep]);
    // SAFETY: `bytes` has 16 readable bytes; SSE2 is part of x86_64.
    let equal = unsafe {
        let w = _mm_loadu_si128(bytes.as_ptr().cast());
        _mm_movemask_epi8(_mm_cmpeq_epi16(w, _mm_set1_epi16(pair))) as u32
    };
    (equal.trailing_ones() / 2) as usize
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn zero_run(text: &[u8], pos: usize, sep: u8) -> usize {
    text[pos.min(text.len())..]
        .chunks_exact(2)
        .take(8)
        .take_while(|pair| pair == &[b'0', sep])
        .count()
}

/// One bit per byte of `text[start..start + 64]` (bytes past the text's end count as
/// spaces).
struct Window {
    start: usize,
    digit: u64,
    dot: u64,
    minus: u64,
    zero: u64,
    /// Bytes that end a number token: none of `0-9 . - + e E` (a token with `+`, `e` or `E`
    /// then fails the plain-shape test and goes to the careful routine whole).
    other: u64,
}

impl Window {
    #[inline(always)]
    fn at(text: &[u8], start: usize) -> Window {
        let [digit, dot, minus, zero, exponent] = match text.get(start..start + 64) {
            Some(bytes) => classify(bytes.try_into().expect("64 bytes")),
            None => {
                let mut padded = [b' '; 64];
                let rest = &text[start.min(text.len())..];
                padded[..rest.len()].copy_from_slice(rest);
                classify(&padded)
            }
        };
        Window {
            start,
            digit,
            dot,
            minus,
            zero,
            other: !(digit | dot | minus | exponent),
        }
    }

    /// The plain token at `pos` (which must leave room for the longest token and one byte
    /// after it in this window) and its length.
    #[inline(always)]
    fn token(&self, text: &[u8], pos: usize) -> Option<(f32, usize)> {
        let rel = pos - self.start;
        let (digit, other) = (self.digit >> rel, self.other >> rel);
        // Clamped so shifts stay in range; a token longer than any plain one fails anyway.
        let len = other.trailing_zeros().min(MAX_TOKEN as u32 + 1);
        let neg = (self.minus >> rel) & 1;
        // The first dot, or the token's end when it has none: a second dot then fails the
        // all-digits test below like any other stray byte.
        let dot_at = ((self.dot >> rel) | other).trailing_zeros().min(len);
        let has_dot = u32::from(dot_at < len);
        let int_len = dot_at.wrapping_sub(neg as u32);
        let frac_len = len.wrapping_sub(dot_at + has_dot);
        let token = (1u64 << len) - 1;
        let lead_zero = (self.zero >> rel >> neg) & u64::from(int_len > 1);
        // `&`, not `&&`: one branch on the conjunction instead of one per condition.
        let plain = ((digit | (1 << dot_at) | neg) & token == token)
            & (int_len.wrapping_sub(1) < 8)
            & (frac_len.wrapping_sub(has_dot) < 8)
            & (lead_zero & 1 == 0);
        if !plain {
            return None;
        }
        let int = digits(text, pos + dot_at as usize, int_len);
        let frac = digits(text, pos + len as usize, frac_len);
        let mantissa = int * POW10_U64[frac_len as usize] + frac;
        if mantissa > 1 << 24 {
            return None;
        }
        let value = mantissa as f32 / POW10[frac_len as usize];
        Some((
            f32::from_bits(value.to_bits() | (neg as u32) << 31),
            len as usize,
        ))
    }
}

/// Digit, dot, minus, `0` and exponent (`e`, `E`, `+`) masks of 64 bytes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn classify(bytes: &[u8; 64]) -> [u64; 5] {
    use std::arch::x86_64::*;
    let mut masks = [0u64; 5];
    for (k, chunk) in bytes.chunks_exact(16).enumerate() {
        // SAFETY: `chunk` has 16 readable bytes; SSE2 is part of x86_64.
        let lanes = unsafe {
            let w = _mm_loadu_si128(chunk.as_ptr().cast());
            let byte = |c: u8| _mm_set1_epi8(c as i8);
            let t = _mm_sub_epi8(w, byte(b'0'));
            let digit = _mm_cmpeq_epi8(_mm_min_epu8(t, byte(9)), t);
            [
                digit,
                _mm_cmpeq_epi8(w, byte(b'.')),
                _mm_cmpeq_epi8(w, byte(b'-')),
                _mm_cmpeq_epi8(w, byte(b'0')),
                _mm_or_si128(
                    _mm_cmpeq_epi8(_mm_or_si128(w, byte(0x20)), byte(b'e')),
                    _mm_cmpeq_epi8(w, byte(b'+')),
                ),
            ]
            .map(|m| _mm_movemask_epi8(m) as u16)
        };
        for (mask, lane) in masks.iter_mut().zip(lanes) {
            *mask |= u64::from(lane) << (16 * k);
        }
    }
    masks
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn classify(bytes: &[u8; 64]) -> [u64; 5] {
    let mut masks = [0u64; 5];
    for (i, &c) in bytes.iter().enumerate() {
        masks[0] |= u64::from(c.is_ascii_digit()) << i;
        masks[1] |= u64::from(c == b'.') << i;
        masks[2] |= u64::from(c == b'-') << i;
        masks[3] |= u64::from(c == b'0') << i;
        masks[4] |= u64::from(matches!(c, b'e' | b'E' | b'+')) << i;
    }
    masks
}

/// The value of the `n` (0..=8) ASCII digits that end just before `text[end]`, `end ≥ 8`.
#[inline(always)]
fn digits(text: &[u8], end: usize, n: u32) -> u64 {
    let raw = u64::from_le_bytes(text[end - 8..end].try_into().expect("8 bytes"));
    // Little-endian: the last bytes are the high ones. The others become '0' before the
    // subtraction, so no byte borrows from its neighbour.
    let keep = u64::MAX.checked_shl(8 * (8 - n)).unwrap_or(0);
    swar8(((raw & keep) | (ZEROS & !keep)) - ZEROS)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape `plain_row` promises to take, written the slow way.
    fn is_plain(token: &str) -> bool {
        let unsigned = token.strip_prefix('-').unwrap_or(token);
        let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        let digits = |s: &str| s.len() <= 8 && s.bytes().all(|c| c.is_ascii_digit());
        digits(int)
            && !int.is_empty()
            && (int == "0" || !int.starts_with('0'))
            && digits(frac)
            && (frac.is_empty() != unsigned.contains('.'))
            && format!("{int}{frac}").parse::<u64>().unwrap() <= 1 << 24
    }

    const PREFIX: &str = "{\"instances\": [";

    /// Reads `tokens` as one row of a body; the careful parser's values beside it.
    fn row(tokens: &[&str], sep: &str) -> (Option<Vec<f32>>, Vec<Option<f32>>) {
        let text = format!("{PREFIX}[{}]]}}", tokens.join(sep));
        let mut out = vec![f32::NAN; tokens.len()];
        let fast = plain_row(text.as_bytes(), PREFIX.len() + 1, b',', b']', &mut out).map(|end| {
            assert_eq!(end, text.len() - 2, "{text}");
            out
        });
        let careful = tokens
            .iter()
            .map(|t| match super::super::parse(t.trim_start().as_bytes()) {
                Ok((v, len)) if len == t.trim_start().len() => Some(v),
                _ => None,
            })
            .collect();
        (fast, careful)
    }

    fn tokens() -> Vec<String> {
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
            // At each offset in a window, so that the token meets every window edge.
            for offset in 8..8 + 46 {
                let text = format!("{}{token},0]{}", ",".repeat(offset), " ".repeat(64));
                let window = Window::at(text.as_bytes(), 8);
                match window.token(text.as_bytes(), offset) {
                    Some((value, len)) => {
                        taken += 1;
                        assert!(is_plain(token), "{token:?} is not plain but was taken");
                        let (want, want_len) = super::super::parse(token.as_bytes())
                            .unwrap_or_else(|_| panic!("{token:?}"));
                        assert_eq!(
                            (value.to_bits(), len),
                            (want.to_bits(), want_len),
                            "{token:?}"
                        );
                    }
                    None => assert!(!is_plain(token), "{token:?} is plain but was not taken"),
                }
            }
        }
        assert!(taken > tokens.len(), "the fast path took only {taken}");
    }

    #[test]
    fn rows_agree_with_the_careful_parser_bit_for_bit() {
        for token in &tokens() {
            // Alone, and between neighbours that move it across window boundaries.
            for (before, after) in [(0, 0), (1, 2), (13, 0), (20, 7)] {
                let mut cells = vec!["0.5"; before];
                cells.push(token);
                cells.extend(vec!["-7"; after]);
                let (fast, careful) = row(&cells, ",");
                match (fast, careful[before]) {
                    (Some(values), Some(want)) => {
                        assert_eq!(values[before].to_bits(), want.to_bits(), "{token:?}");
                        assert_eq!(values[0].to_bits(), careful[0].unwrap().to_bits());
                    }
                    (None, None) => {}
                    (fast, want) => panic!("{token:?}: row {fast:?}, careful {want:?}"),
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
            let (fast, careful) = row(&plain, sep);
            let fast = fast.expect("a row of plain tokens is taken");
            for ((got, want), token) in fast.iter().zip(careful).zip(&plain) {
                assert_eq!(got.to_bits(), want.unwrap().to_bits(), "{token}");
            }
        }
    }

    #[test]
    fn other_layouts_are_left_to_the_careful_parser() {
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
