//! Fallible allocation of the engine's large buffers. Rust's global allocator aborts the
//! whole process when a request fails; a job's weights, gradients, moments and batch
//! buffers are sized by what a client sent, so they are reserved with `try_reserve` and a
//! failure becomes an error of that job alone.

use ndarray::{Array1, Array2};

/// A buffer the allocator refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("out of memory: {bytes} bytes for {what} could not be allocated")]
pub struct OutOfMemory {
    pub bytes: u64,
    pub what: &'static str,
}

/// `len` copies of `value`, or an error instead of an abort.
pub(crate) fn filled<T: Clone>(
    len: usize,
    value: T,
    what: &'static str,
) -> Result<Vec<T>, OutOfMemory> {
    let refused = || OutOfMemory {
        bytes: (len as u64).saturating_mul(std::mem::size_of::<T>() as u64),
        what,
    };
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| refused())?;
    v.resize(len, value);
    Ok(v)
}

pub(crate) fn zeros2(
    (rows, cols): (usize, usize),
    what: &'static str,
) -> Result<Array2<f32>, OutOfMemory> {
    let len = rows.checked_mul(cols).ok_or(OutOfMemory {
        bytes: u64::MAX,
        what,
    })?;
    let v = filled(len, 0.0f32, what)?;
    Ok(Array2::from_shape_vec((rows, cols), v).expect("length is rows × cols"))
}

pub(crate) fn zeros1(len: usize, what: &'static str) -> Result<Array1<f32>, OutOfMemory> {
    Ok(Array1::from_vec(filled(len, 0.0f32, what)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_beyond_the_address_space_is_an_error_not_an_abort() {
        let err = zeros2((1 << 40, 1 << 30), "a kernel").unwrap_err();
        assert_eq!(err.what, "a kernel");
        let err = filled(usize::MAX / 8, 0.0f32, "moments").unwrap_err();
        assert!(err.bytes > 1 << 60, "{err}");
        assert_eq!(zeros2((3, 2), "small").unwrap().dim(), (3, 2));
    }
}
