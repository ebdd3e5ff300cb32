//! The stored form of a dataset chunk: its rows' values, features then targets per row,
//! row-major, each an f32 as four little-endian bytes. Every write and read of that form
//! goes through here. A value is a cell ([`cell`]): a number, a level code of a text column,
//! or missing.

pub use crate::nn::cell;

/// Bytes per stored value.
pub const VALUE_BYTES: usize = 4;

/// Appends `values` to `out` in the stored form.
pub fn encode(values: &[f32], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + VALUE_BYTES * values.len(), 0);
    for (bytes, value) in out[start..].chunks_exact_mut(VALUE_BYTES).zip(values) {
        bytes.copy_from_slice(&value.to_le_bytes());
    }
}

/// The values of bytes in the stored form (a trailing partial value is ignored; `check`
/// rules it out for stored chunks).
pub fn values(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes
        .chunks_exact(VALUE_BYTES)
        .map(|b| f32::from_le_bytes(b.try_into().expect("chunks_exact")))
}

/// Drops the rows (of `width` values, the targets after `features`) whose target is
/// missing, for nothing can be learnt from them, and those missing a `required` feature
/// cell (a job's `drop_row` columns); they stay stored.
pub fn keep_complete(values: &mut Vec<f32>, width: usize, features: usize, required: &[usize]) {
    let mut kept = 0;
    for row in 0..values.len() / width {
        let start = row * width;
        let cells = &values[start..start + width];
        if cells[features..].iter().any(|v| v.is_nan())
            || required
                .iter()
                .any(|&j| matches!(cell::decode(cells[j]), cell::Cell::Missing))
        {
            continue;
        }
        values.copy_within(start..start + width, kept * width);
        kept += 1;
    }
    values.truncate(kept * width);
}

/// Whether `bytes` hold exactly `rows` rows of `width` values; the problem otherwise.
pub fn check(bytes: &[u8], rows: usize, width: usize) -> Result<(), String> {
    if rows
        .checked_mul(width)
        .and_then(|n| n.checked_mul(VALUE_BYTES))
        == Some(bytes.len())
    {
        Ok(())
    } else {
        Err(format!(
            "a chunk of {} bytes for {rows} rows of {width} values",
            bytes.len()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_bit_for_bit() {
        let values = [0.0, -0.0, 1.5, f32::MIN_POSITIVE, f32::MAX, -3.25e-7];
        let mut bytes = Vec::new();
        encode(&values[..2], &mut bytes);
        encode(&values[2..], &mut bytes);
        assert_eq!(bytes.len(), 24);
        assert_eq!(&bytes[8..12], &[0, 0, 0xC0, 0x3F], "little-endian 1.5");
        let back: Vec<u32> = super::values(&bytes).map(f32::to_bits).collect();
        let want: Vec<u32> = values.iter().map(|v| v.to_bits()).collect();
        assert_eq!(back, want);
        assert!(check(&bytes, 2, 3).is_ok());
        assert_eq!(
            check(&bytes, 3, 3).unwrap_err(),
            "a chunk of 24 bytes for 3 rows of 3 values"
        );
        assert!(check(&bytes, usize::MAX, 2).is_err());
    }
}
