//! The hash behind hashed columns, out-of-vocabulary slots and crosses. Stored models
//! depend on its values, so it is written here (FNV-1a, 64 bits) rather than taken from
//! std, whose hasher may change between Rust releases.

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// The bucket in `[0, buckets)` of a text.
pub(crate) fn bucket(text: &str, buckets: usize) -> u32 {
    (fnv1a(text.as_bytes()) % buckets as u64) as u32
}

/// The bucket of a combination of slots (a cross), order included.
pub(crate) fn cross_bucket(slots: &[u32], buckets: usize) -> u32 {
    let h = slots.iter().fold(OFFSET, |h, slot| {
        slot.to_le_bytes()
            .iter()
            .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
    });
    (h % buckets as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published FNV-1a 64 test vectors (draft-eastlake-fnv).
    #[test]
    fn matches_the_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
