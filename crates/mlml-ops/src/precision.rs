//! Mixed precision as PyTorch's autocast does it: inside [`autocast`] the training
//! convolutions ([`crate::conv2d_forward`]) cast their input, weight and bias to a 16-bit float
//! type, compute in it and hand an f32 output on. The parameters stay f32 (the master weights
//! the optimizer updates), and so do BatchNorm, the heads, the losses and every reduction. The
//! casts are tracked, so the backward computes the convolutions' gradients in the 16-bit type
//! and hands f32 gradients back.
//!
//! The setting is per thread, as autocast's is: each device of a data-parallel run trains on
//! its own thread.

use std::cell::Cell;

use burn::tensor::FloatDType;

thread_local! {
    static AUTOCAST: Cell<Option<FloatDType>> = const { Cell::new(None) };
}

/// Runs `work` with the training convolutions computing in `dtype` (`None`: f32, as outside).
/// The previous setting comes back when `work` returns or unwinds.
pub fn autocast<T>(dtype: Option<FloatDType>, work: impl FnOnce() -> T) -> T {
    struct Restore(Option<FloatDType>);
    impl Drop for Restore {
        fn drop(&mut self) {
            AUTOCAST.with(|cell| cell.set(self.0));
        }
    }
    let _restore = Restore(AUTOCAST.with(|cell| cell.replace(dtype)));
    work()
}

/// The type the training convolutions compute in on this thread now (`None`: f32).
pub fn autocast_dtype() -> Option<FloatDType> {
    AUTOCAST.with(Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autocast_holds_inside_and_restores_after_a_panic() {
        assert_eq!(autocast_dtype(), None);
        autocast(Some(FloatDType::F16), || {
            assert_eq!(autocast_dtype(), Some(FloatDType::F16));
            autocast(None, || assert_eq!(autocast_dtype(), None));
            assert_eq!(autocast_dtype(), Some(FloatDType::F16));
        });
        assert_eq!(autocast_dtype(), None);
        let unwound = std::panic::catch_unwind(|| {
            autocast(Some(FloatDType::BF16), || panic!("inside"));
        });
        assert!(unwound.is_err());
        assert_eq!(autocast_dtype(), None);
        // Another thread has its own setting.
        autocast(Some(FloatDType::F16), || {
            std::thread::spawn(|| assert_eq!(autocast_dtype(), None))
                .join()
                .unwrap();
        });
    }
}
