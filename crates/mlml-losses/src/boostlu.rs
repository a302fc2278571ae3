//! BoostLU's boost of class activation maps. Kim et al., "Bridging the Gap between Model
//! Explanations in Partially Annotated Multi-label Classification", CVPR 2023,
//! arXiv:2304.01804. Reference: `youngwk/BridgeGapExplanationPAMC` `models.py`
//! `ImageClassifier.forward`.
//!
//! ```text
//! CAM' = alpha CAM where CAM > 0, CAM elsewhere;    logits = spatial mean of CAM'
//! ```
//! The boost acts in training and at inference alike, before pooling (so `GAP -> Linear` cannot
//! replace `CAM -> boost -> GAP`); the gradient is alpha where `CAM > 0` and 1 elsewhere,
//! including exactly 0. Default alpha 5. BoostLU trains these logits with the large-loss schemes
//! ([`crate::LargeLoss`], BoostLU's semantics are its defaults); the CAM head itself lives in
//! `mlml-models`.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// BoostLU's default alpha.
pub const BOOSTLU_ALPHA: f64 = 5.0;

/// Scales the positive entries of class activation maps by `alpha`.
///
/// # Shapes
/// any shape -> the same shape (usually `[batch, n_classes, h, w]`).
pub fn boost_cam<B: Backend, const D: usize>(cam: Tensor<B, D>, alpha: f64) -> Tensor<B, D> {
    let positive = cam.clone().greater_elem(0.0);
    cam.clone().mask_where(positive, cam.mul_scalar(alpha))
}

/// Boosted CAMs `[batch, n_classes, h, w]` to logits `[batch, n_classes]`.
pub fn boosted_logits<B: Backend>(cam: Tensor<B, 4>, alpha: f64) -> Tensor<B, 2> {
    let [n, c, h, w] = cam.dims();
    boost_cam(cam, alpha)
        .reshape([n, c, h * w])
        .mean_dim(2)
        .reshape([n, c])
}
