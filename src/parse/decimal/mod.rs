//! Decimal number text to f32, correctly rounded, fast for the short decimals that CSV-born
//! rows are made of (`0`, `0.1962`, `-3.5e-2`). Shared by the predict body parser and CSV
//! ingest: the grammar is JSON's, and CSV sends whatever it rejects to std's parser.
//!
//! Fast path (Clinger): when the significant digits fit in f32's 24-bit mantissa and the
//! power of ten is at most 10¹⁰, both are exact f32 values, so one IEEE multiplication or
//! division rounds exactly once: the correctly rounded result. Every other number goes to
//! fast-float2 (Eisel–Lemire with a big-number fallback, as std's `f32::from_str`), also
//! correctly rounded.
//! serde_json instead rounds to f64 first and then to f32, which can round twice.

#[cfg(target_arch = "x86_64")]
mod avx512;
mod plain_row;
mod token_queue;

pub use plain_row::plain_row;

/// Exact in f32: 5¹⁰ < 2²⁴.
const POW10: [f32; 11] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10];

/// Digits that certainly fit in a u64 without overflow.
const MAX_DIGITS: u32 = 19;

pub enum NumberError {
    /// Not a JSON number at this offset (relative to the start of the text).
    Syntax(usize),
    /// A number whose magnitude f32 cannot hold.
    Range,
}

/// Parses the JSON number at the start of `text`; returns it and the bytes it took.
#[inline(always)]
pub fn parse(text: &[u8]) -> Result<(f32, usize), NumberError> {
    let mut i = 0;
    let negative = text.first() == Some(&b'-');
    if negative {
        i = 1;
    }
    let mut mantissa: u64 = 0;
    let mut digits: u32 = 0; // significant digits taken into `mantissa`
    let mut lost = false; // digits beyond MAX_DIGITS (the fast path cannot be exact)
    let mut exponent: i32 = 0;
    match text.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            while let Some(&c) = text.get(i).filter(|c| c.is_ascii_digit()) {
                if digits < MAX_DIGITS {
                    mantissa = mantissa * 10 + u64::from(c - b'0');
                    digits += 1;
                } else {
                    lost = true;
                    exponent += 1;
                }
                i += 1;
            }
        }
        _ => return Err(NumberError::Syntax(i)),
    }
    if text.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while let Some(&c) = text.get(i).filter(|c| c.is_ascii_digit()) {
            if mantissa == 0 && c == b'0' {
                exponent -= 1; // leading zeros of 0.000x are not significant
            } else if digits < MAX_DIGITS {
                mantissa = mantissa * 10 + u64::from(c - b'0');
                digits += 1;
                exponent -= 1;
            } else {
                lost = true;
            }
            i += 1;
        }
        if i == start {
            return Err(NumberError::Syntax(i));
        }
    }
    if let Some(b'e' | b'E') = text.get(i) {
        i += 1;
        let sign = match text.get(i) {
            Some(b'-') => {
                i += 1;
                -1
            }
            Some(b'+') => {
                i += 1;
                1
            }
            _ => 1,
        };
        let start = i;
        let mut e: i32 = 0;
        while let Some(&c) = text.get(i).filter(|c| c.is_ascii_digit()) {
            // Saturates far beyond any f32 exponent; the slow path sees the real text.
            e = (e * 10 + i32::from(c - b'0')).min(100_000);
            i += 1;
        }
        if i == start {
            return Err(NumberError::Syntax(i));
        }
        exponent += sign * e;
    }
    let value = if mantissa == 0 && !lost {
        0.0
    } else if !lost && mantissa <= 1 << 24 && (-10..=10).contains(&exponent) {
        let m = mantissa as f32;
        if exponent < 0 {
            m / POW10[exponent.unsigned_abs() as usize]
        } else {
            m * POW10[exponent as usize]
        }
    } else {
        // The bytes just matched the JSON number grammar, which fast-float2 reads as std
        // does, bit for bit, in a fraction of std's time on long numbers (Python's 17-digit
        // reprs); past f32's range it gives ±∞.
        return match fast_float2::parse::<f32, _>(&text[..i]) {
            Ok(v) if v.is_finite() => Ok((v, i)),
            _ => Err(NumberError::Range),
        };
    };
    Ok((if negative { -value } else { value }, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checked against std's parser, which is correctly rounded (the reference), on the
    /// shapes CSV rows have and on the edges of the fast path.
    #[test]
    fn agrees_with_std_bit_for_bit() {
        let mut cases: Vec<String> = [
            "0",
            "-0",
            "0.0",
            "1",
            "-1",
            "0.1962",
            "0.5",
            "3.4028235e38",
            "1.17549435e-38",
            "1e-45",
            "1.4e-45",
            "16777216",
            "16777217",
            "16777217.0",
            "0.16777217",
            "1e10",
            "1e11",
            "1.5e-10",
            "12345678901234567890",
            "0.000001",
            "9.999999e-11",
            "123456789012345678901234567890e-20",
            "1.00000005960464477539062501",
            "0.30000001192092896",
            "2.5E+3",
            "7e0",
            "-0.0000",
            "1E-7",
            "33554431e3",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // A deterministic sweep of short decimals like the benchmark's CSV.
        let mut state: u64 = 42;
        for _ in 0..200_000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let digits = (state >> 33) % 100_000_000;
            let scale = (state >> 20) % 12;
            let sign = if state & 1 == 1 { "-" } else { "" };
            cases.push(format!("{sign}{digits}e-{scale}"));
            cases.push(format!(
                "{sign}{}.{:07}",
                digits / 10_000_000,
                digits % 10_000_000
            ));
            // Python's reprs of f32 pixels and of f64s: the slow path's daily bread.
            let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
            cases.push(format!("{sign}{}", f64::from(unit as f32)));
            cases.push(format!(
                "{sign}{:e}",
                unit * 10f64.powi((state % 75) as i32 - 40)
            ));
        }
        for case in &cases {
            let want: f32 = case.parse().unwrap();
            match parse(case.as_bytes()) {
                Ok((got, used)) => {
                    assert_eq!(used, case.len(), "{case}");
                    assert_eq!(got.to_bits(), want.to_bits(), "{case}: {got} vs {want}");
                }
                Err(_) => panic!("{case} did not parse"),
            }
        }
    }

    #[test]
    fn rejects_what_json_rejects_and_what_f32_cannot_hold() {
        for bad in ["", "-", ".5", "1.", "1e", "1e+", "+1", "-x"] {
            assert!(
                matches!(parse(bad.as_bytes()), Err(NumberError::Syntax(_))),
                "{bad}"
            );
        }
        for big in [
            "1e39",
            "-3.5e38",
            "1e100000000",
            "340282357000000000000000000000000000000",
        ] {
            assert!(
                matches!(parse(big.as_bytes()), Err(NumberError::Range)),
                "{big}"
            );
        }
        // A number ends where the grammar ends; the caller checks what follows.
        assert_eq!(
            parse(b"01").ok().map(|(v, n)| (v.to_bits(), n)),
            Some((0, 1))
        );
        assert_eq!(
            parse(b"2.5]").ok().map(|(v, n)| (v.to_bits(), n)),
            Some((2.5f32.to_bits(), 3))
        );
    }
}
