//! [`SigmoidBackend`] on burn's Flex (f32): branch-free kernels the compiler vectorises.

use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::tensor::ops::ActivationOps;
use burn::tensor::{DType, TensorMetadata};

use super::SigmoidBackend;
impl SigmoidBackend for Flex {
    fn sigmoid_tracked(x: FlexTensor) -> FlexTensor {
        if x.dtype() != DType::F32 {
            return Flex::sigmoid(x);
        }
        map_f32(x, sigmoid_f32)
    }

    fn log_sigmoid_tracked(x: FlexTensor) -> FlexTensor {
        if x.dtype() != DType::F32 {
            return Flex::log_sigmoid(x);
        }
        map_f32(x, log_sigmoid_f32)
    }

    fn log_sigmoid_tracked_backward(x: FlexTensor, grad: FlexTensor) -> FlexTensor {
        if x.dtype() != DType::F32 || grad.dtype() != DType::F32 || x.shape() != grad.shape() {
            return Flex::log_sigmoid_backward(x, grad);
        }
        let x = x.to_contiguous();
        let mut out = contiguous(grad);
        for (g, &x) in out.storage_mut::<f32>().iter_mut().zip(x.storage::<f32>()) {
            *g *= sigmoid_f32(-x);
        }
        out
    }
}

/// `x` laid out contiguously, without keeping a second handle on its buffer.
fn contiguous(x: FlexTensor) -> FlexTensor {
    let contiguous = x.to_contiguous();
    drop(x);
    contiguous
}

/// `f` on every element of an f32 tensor, in place when this is the buffer's only owner and
/// on a copy otherwise (copy on write).
fn map_f32(x: FlexTensor, f: impl Fn(f32) -> f32) -> FlexTensor {
    let mut out = contiguous(x);
    for v in out.storage_mut::<f32>() {
        *v = f(*v);
    }
    out
}

/// `e^a` for `a <= 0` (or NaN, which it returns): `2^n e^r` with `n = round(a / ln 2)` and
/// Cephes' degree-6 polynomial for `e^r` on `[-ln 2 / 2, ln 2 / 2]` (about 1 ulp), the power of
/// two applied in two normal halves so that results in the subnormal range keep their value.
/// No branch and no libm call, so a loop of it vectorises.
#[inline(always)]
fn exp_nonpositive(a: f32) -> f32 {
    // Below -104 the result is 0 in f32; the comparison leaves NaN as it is.
    let a = if a < -104.0 { -104.0 } else { a };
    // Round to nearest by the 1.5 * 2^23 shift (|a / ln 2| < 2^22), not a libm `roundf`.
    const SHIFT: f32 = 12_582_912.0;
    let n = (a * std::f32::consts::LOG2_E + SHIFT) - SHIFT;
    let r = (a - n * 0.693_359_4) - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    let n = n as i32; // in [-150, 0] (0 for NaN)
    let half = n >> 1;
    let scale = |k: i32| f32::from_bits(((k + 127) as u32) << 23);
    e_r * scale(half) * scale(n - half)
}

/// `1 / (1 + e^-x)` for `x >= 0`, `e^x / (1 + e^x)` below, as burn-flex's scalar sigmoid
/// computes it (so `e` never overflows), with a select instead of a branch.
#[inline(always)]
fn sigmoid_f32(x: f32) -> f32 {
    let e = exp_nonpositive(-x.abs());
    let numerator = if x >= 0.0 { 1.0 } else { e };
    numerator / (1.0 + e)
}

/// `ln(1 + y)` for `y` in `[0, 1]` (or NaN): `ln(u)` of `u = 1 + y` by Cephes' `logf`
/// polynomial on `[sqrt(1/2), sqrt 2]`, plus `(y - (u - 1)) / u` for the rounding of `u`.
#[inline(always)]
fn log1p_unit(y: f32) -> f32 {
    let u = 1.0 + y;
    let high = u > std::f32::consts::SQRT_2;
    let m = if high { u * 0.5 } else { u };
    let e = if high { 1.0 } else { 0.0 };
    let x = m - 1.0;
    let z = x * x;
    let mut p = 7.037_683_6e-2_f32;
    p = p * x - 1.151_461e-1;
    p = p * x + 1.167_699_9e-1;
    p = p * x - 1.242_014_1e-1;
    p = p * x + 1.424_932_3e-1;
    p = p * x - 1.666_805_8e-1;
    p = p * x + 2.000_071_4e-1;
    p = p * x - 2.499_999_4e-1;
    p = p * x + 3.333_333e-1;
    let mut r = x * z * p;
    r += e * -2.121_944_4e-4;
    r -= 0.5 * z;
    let ln_u = x + r + e * 0.693_359_4;
    ln_u + (y - (u - 1.0)) / u
}

/// `min(x, 0) - ln(1 + e^-|x|)`, as burn-flex's scalar `log_sigmoid` computes it, branch-free.
#[inline(always)]
fn log_sigmoid_f32(x: f32) -> f32 {
    let low = if x < 0.0 { x } else { 0.0 };
    low - log1p_unit(exp_nonpositive(-x.abs()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{log_sigmoid, sigmoid};
    use burn::backend::Autodiff;
    use burn::tensor::activation;
    use burn::tensor::backend::Backend;
    use burn::tensor::Tensor;
    use burn::tensor::{Distribution, TensorData};
    use mlml_testing::{assert_all_close, Tolerance};

    /// Every f32 of a sweep over [-120, 120] (and the special values) within 2 ulp-sized
    /// relative steps of the f64 sigmoid rounded to f32, subnormal results included.
    #[test]
    fn the_kernel_is_the_sigmoid_to_a_few_ulps() {
        let mut worst = 0.0f64;
        let steps = 2_000_000;
        for k in 0..=steps {
            let x = -120.0 + 240.0 * k as f64 / steps as f64;
            let x = x as f32;
            let exact = 1.0 / (1.0 + (-f64::from(x)).exp());
            let got = f64::from(sigmoid_f32(x));
            if exact < f64::from(f32::MIN_POSITIVE) {
                // Subnormal range: absolute steps of the smallest subnormal.
                assert!(
                    (got - exact).abs() <= 2.0 * 1.4e-45,
                    "x = {x}: {got} vs {exact}"
                );
                continue;
            }
            worst = worst.max((got - exact).abs() / exact);
        }
        assert!(
            worst < 4.0 * f64::from(f32::EPSILON),
            "worst relative error {worst}"
        );
        assert_eq!(sigmoid_f32(0.0), 0.5);
        assert_eq!(sigmoid_f32(-0.0), 0.5);
        assert_eq!(sigmoid_f32(f32::INFINITY), 1.0);
        assert_eq!(sigmoid_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(sigmoid_f32(-200.0), 0.0);
        assert!(sigmoid_f32(f32::NAN).is_nan());
        assert!(sigmoid_f32(-f32::NAN).is_nan());
    }

    /// `ln sigmoid(x)` over [-120, 120] against f64 (`ln(1 + e^-|x|)` by `ln_1p`): within a
    /// few f32 epsilons relative, or 1e-37 absolute where the value is 0 or nearly so.
    #[test]
    fn the_log_sigmoid_kernel_is_log_sigmoid_to_a_few_ulps() {
        let steps = 2_000_000;
        for k in 0..=steps {
            let x = (-120.0 + 240.0 * k as f64 / steps as f64) as f32;
            let xf = f64::from(x);
            let exact = xf.min(0.0) - (-xf.abs()).exp().ln_1p();
            let got = f64::from(log_sigmoid_f32(x));
            let tolerance = 4.0 * f64::from(f32::EPSILON) * exact.abs() + 1e-37;
            assert!(
                (got - exact).abs() <= tolerance,
                "x = {x}: {got} vs {exact}"
            );
        }
        assert_eq!(log_sigmoid_f32(f32::INFINITY), 0.0);
        assert_eq!(log_sigmoid_f32(f32::NEG_INFINITY), f32::NEG_INFINITY);
        assert!(log_sigmoid_f32(f32::NAN).is_nan());
    }

    type A = Autodiff<Flex>;

    /// The value of `f(x^T)` and the gradient of `sum(w * f(x^T))` with respect to `x`.
    fn value_and_gradient(
        x: &Tensor<A, 2>,
        w: &Tensor<A, 2>,
        f: fn(Tensor<A, 2>) -> Tensor<A, 2>,
    ) -> (Vec<f32>, Vec<f32>) {
        let x = x.clone().detach().require_grad();
        let s = f(x.clone().transpose());
        let grads = (s.clone() * w.clone()).sum().backward();
        let data = |t: TensorData| t.to_vec::<f32>().unwrap();
        (
            data(s.into_data()),
            data(x.grad(&grads).unwrap().into_data()),
        )
    }

    /// On `Autodiff<Flex>`: the values and input gradients of `sum(w * f(x))` for the sigmoid
    /// and the log-sigmoid against burn's ops, on a non-contiguous (transposed) input.
    #[test]
    fn values_and_gradients_match_burns_ops() {
        let device = Default::default();
        A::seed(&device, 17);
        let x = Tensor::<A, 2>::random([37, 53], Distribution::Uniform(-30.0, 30.0), &device);
        let w = Tensor::<A, 2>::random([53, 37], Distribution::Uniform(-1.0, 1.0), &device);
        let (value, grad) = value_and_gradient(&x, &w, sigmoid);
        let (burn_value, burn_grad) = value_and_gradient(&x, &w, activation::sigmoid);
        assert_all_close(
            "sigmoid",
            &value,
            &burn_value,
            Tolerance::relative(1e-6).with_absolute(1e-37),
        );
        // Both backwards are `w s (1 - s)` from their own `s`; near s = 1 the difference of
        // two sigmoids a few ulps apart is a few ulps of 1 in `1 - s`, times |w| <= 1.
        assert_all_close(
            "sigmoid gradient",
            &grad,
            &burn_grad,
            Tolerance::relative(1e-6).with_absolute(4.0 * f32::EPSILON as f64),
        );
        // A plain (untracked) backend call gives the same values.
        let plain = sigmoid(x.clone().inner().transpose()).into_data();
        assert_all_close(
            "inner sigmoid",
            &plain.to_vec::<f32>().unwrap(),
            &burn_value,
            Tolerance::relative(1e-6).with_absolute(1e-37),
        );
        // The log-sigmoid's gradient `w sigmoid(-x)` has no such cancellation.
        let (value, grad) = value_and_gradient(&x, &w, log_sigmoid);
        let (burn_value, burn_grad) = value_and_gradient(&x, &w, activation::log_sigmoid);
        assert_all_close(
            "log-sigmoid",
            &value,
            &burn_value,
            Tolerance::relative(1e-6).with_absolute(1e-37),
        );
        assert_all_close(
            "log-sigmoid gradient",
            &grad,
            &burn_grad,
            Tolerance::relative(1e-6).with_absolute(1e-37),
        );
    }
}
