//! # mlml-testing
//!
//! The workspace's one tolerance rule, for tests only (every crate takes it as a
//! dev-dependency): a computed value `got` passes against `expected` when
//!
//! `|got - expected| <= relative * |expected| + absolute`.
//!
//! [`Tolerance::scaled_to`] sets the absolute part from the largest magnitude of the values
//! compared, so that entries near zero that come out of f32 sums (whose rounding depends on
//! the summation order) are judged against the size of the tensor, not their own.
//!
//! ```
//! use mlml_testing::{assert_all_close, Tolerance};
//! let expected = [1.0f32, -2.0, 1e-9];
//! let got = [1.000_001f32, -2.0, 0.0];
//! assert_all_close("example", &got, &expected, Tolerance::relative(1e-5).scaled_to(&expected, 1e-6));
//! ```

use std::fmt::Display;

/// `|got - expected| <= relative * |expected| + absolute`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// The part proportional to the expected value's magnitude.
    pub relative: f64,
    /// The floor every comparison gets.
    pub absolute: f64,
}

impl Tolerance {
    /// Relative only: `|got - expected| <= relative * |expected|`.
    pub const fn relative(relative: f64) -> Self {
        Self {
            relative,
            absolute: 0.0,
        }
    }

    /// Absolute only: `|got - expected| <= absolute`.
    pub const fn absolute(absolute: f64) -> Self {
        Self {
            relative: 0.0,
            absolute,
        }
    }

    /// This tolerance with its absolute floor set to `absolute`.
    pub const fn with_absolute(self, absolute: f64) -> Self {
        Self { absolute, ..self }
    }

    /// This tolerance with its absolute floor set to `fraction` of the largest magnitude in
    /// `expected`.
    pub fn scaled_to<E: Copy + Into<f64>>(self, expected: &[E], fraction: f64) -> Self {
        let largest = expected
            .iter()
            .fold(0.0f64, |m, e| m.max((*e).into().abs()));
        self.with_absolute(fraction * largest)
    }

    /// Whether `got` is within this tolerance of `expected` (a NaN never is).
    pub fn accepts(self, got: f64, expected: f64) -> bool {
        (got - expected).abs() <= self.relative * expected.abs() + self.absolute
    }

    /// `Ok` when `got` is within this tolerance of `expected`, else a message naming `what`.
    ///
    /// # Errors
    /// The values, their difference and the bound, when they are not close.
    pub fn check(self, what: impl Display, got: f64, expected: f64) -> Result<(), String> {
        if self.accepts(got, expected) {
            return Ok(());
        }
        Err(format!(
            "{what}: got {got:e}, expected {expected:e} (difference {:e}, allowed {:e})",
            (got - expected).abs(),
            self.relative * expected.abs() + self.absolute
        ))
    }

    /// `Ok` when the slices have the same length and every entry is within this tolerance;
    /// else a message naming `what`, the number of entries outside and the worst of them.
    ///
    /// # Errors
    /// Different lengths, or entries that are not close.
    pub fn check_all<G, E>(
        self,
        what: impl Display,
        got: &[G],
        expected: &[E],
    ) -> Result<(), String>
    where
        G: Copy + Into<f64>,
        E: Copy + Into<f64>,
    {
        if got.len() != expected.len() {
            return Err(format!(
                "{what}: {} values, expected {}",
                got.len(),
                expected.len()
            ));
        }
        let mut outside = 0;
        let mut worst: Option<(usize, f64, f64, f64)> = None;
        for (i, (g, e)) in got.iter().zip(expected).enumerate() {
            let (g, e) = ((*g).into(), (*e).into());
            if !self.accepts(g, e) {
                outside += 1;
                let excess = if g.is_nan() || e.is_nan() {
                    f64::INFINITY
                } else {
                    (g - e).abs() - (self.relative * e.abs() + self.absolute)
                };
                if worst.is_none_or(|w| excess > w.3) {
                    worst = Some((i, g, e, excess));
                }
            }
        }
        match worst {
            None => Ok(()),
            Some((i, g, e, _)) => Err(format!(
                "{what}: {outside} of {} values outside {self:?}; worst [{i}]: got {g:e}, \
                 expected {e:e}",
                got.len()
            )),
        }
    }
}

/// Panics unless `got` is within `tolerance` of `expected` ([`Tolerance::check`]).
#[track_caller]
pub fn assert_close(what: impl Display, got: f64, expected: f64, tolerance: Tolerance) {
    if let Err(message) = tolerance.check(what, got, expected) {
        panic!("{message}");
    }
}

/// Panics unless every entry of `got` is within `tolerance` of `expected`
/// ([`Tolerance::check_all`]).
#[track_caller]
pub fn assert_all_close<G, E>(what: impl Display, got: &[G], expected: &[E], tolerance: Tolerance)
where
    G: Copy + Into<f64>,
    E: Copy + Into<f64>,
{
    if let Err(message) = tolerance.check_all(what, got, expected) {
        panic!("{message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_relative_plus_absolute() {
        let t = Tolerance::relative(0.01).with_absolute(0.5);
        assert!(t.accepts(101.5, 100.0));
        assert!(!t.accepts(101.6, 100.0));
        assert!(t.accepts(-0.5, 0.0));
        assert!(!t.accepts(f64::NAN, 0.0));
        assert!(!Tolerance::absolute(1.0).accepts(0.0, f64::NAN));
    }

    #[test]
    fn a_scaled_floor_follows_the_largest_expected_magnitude() {
        let t = Tolerance::relative(0.0).scaled_to(&[1.0f32, -40.0, 3.0], 0.1);
        assert_eq!(t.absolute, 4.0);
        assert!(t.accepts(4.0, 0.0));
        assert!(!t.accepts(4.1, 0.0));
    }

    #[test]
    fn check_all_names_the_worst_entry_and_the_count() {
        let message = Tolerance::absolute(0.1)
            .check_all("grad", &[0.0f32, 0.5, 2.0], &[0.0f64, 0.0, 0.0])
            .unwrap_err();
        assert!(message.contains("grad: 2 of 3 values"), "{message}");
        assert!(message.contains("worst [2]"), "{message}");
        let message = Tolerance::absolute(0.1)
            .check_all("x", &[0.0f32], &[0.0f32, 1.0])
            .unwrap_err();
        assert!(message.contains("1 values, expected 2"), "{message}");
    }
}
