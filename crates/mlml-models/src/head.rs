//! Multi-label heads: global average pooling + linear to C logits, and BoostLU's CAM head.
//!
//! BoostLU (Kim et al., "Bridging the Gap between Model Explanations in Partially Annotated
//! Multi-label Classification", CVPR 2023, arXiv:2304.01804; reference
//! `youngwk/BridgeGapExplanationPAMC` `models.py` `ImageClassifier.forward`) boosts the class
//! activation maps before pooling:
//!
//! ```text
//! CAM' = alpha CAM where CAM > 0, CAM elsewhere;    logits = spatial mean of CAM'
//! ```
//! The boost acts in training and at inference alike, before pooling (so `GAP -> Linear` cannot
//! replace `CAM -> boost -> GAP`); the gradient is alpha where `CAM > 0` and 1 elsewhere,
//! including exactly 0. Default alpha 5 ([`BOOSTLU_ALPHA`]). BoostLU trains these logits with
//! LL-R (`mlml-losses`' `boostlu`).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// BoostLU's default alpha.
pub const BOOSTLU_ALPHA: f64 = 5.0;

/// `alpha x` where `x > 0`, `x` elsewhere (BoostLU's boost of class activation maps).
pub fn boost_cam<B: Backend, const D: usize>(cam: Tensor<B, D>, alpha: f64) -> Tensor<B, D> {
    let positive = cam.clone().greater_elem(0.0);
    cam.clone().mask_where(positive, cam.mul_scalar(alpha))
}

/// Logits `[batch, C]` from class activation maps `[batch, C, h, w]`: boost, then spatial mean.
pub fn boosted_logits<B: Backend>(cam: Tensor<B, 4>, alpha: f64) -> Tensor<B, 2> {
    global_average_pool(boost_cam(cam, alpha))
}

/// Spatial mean of a feature map: `[batch, d, h, w]` -> `[batch, d]`.
pub fn global_average_pool<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 2> {
    let [n, d, h, w] = x.dims();
    x.reshape([n, d, h * w]).mean_dim(2).reshape([n, d])
}

/// Configuration of [`MultiLabelHead`].
#[derive(Config, Debug)]
pub struct MultiLabelHeadConfig {
    /// Feature size D.
    pub d_input: usize,
    /// Number of classes C.
    pub n_classes: usize,
    /// BoostLU's alpha: with `Some(alpha)` the head boosts class activation maps before pooling
    /// (in training and inference, as the reference does); `None` is GAP + linear.
    #[config(default = "None")]
    pub boost_alpha: Option<f64>,
}

impl MultiLabelHeadConfig {
    /// Builds the head.
    pub fn init<B: Backend>(&self, device: &B::Device) -> MultiLabelHead<B> {
        MultiLabelHead {
            linear: LinearConfig::new(self.d_input, self.n_classes).init(device),
            boost_alpha: self.boost_alpha,
        }
    }
}

/// Feature map to C logits.
#[derive(Module, Debug)]
pub struct MultiLabelHead<B: Backend> {
    /// The classifier (a 1x1 convolution when applied per location).
    pub linear: Linear<B>,
    /// BoostLU's alpha, if boosting.
    pub boost_alpha: Option<f64>,
}

impl<B: Backend> MultiLabelHead<B> {
    /// Class activation maps `[batch, C, h, w]`: the classifier at every location.
    pub fn class_activation_maps(&self, feature_map: Tensor<B, 4>) -> Tensor<B, 4> {
        let [n, d, h, w] = feature_map.dims();
        let per_location = feature_map.reshape([n, d, h * w]).swap_dims(1, 2);
        let cam = self.linear.forward(per_location);
        let c = cam.dims()[2];
        cam.swap_dims(1, 2).reshape([n, c, h, w])
    }

    /// Logits `[batch, C]` from a feature map `[batch, D, h, w]`.
    pub fn forward(&self, feature_map: Tensor<B, 4>) -> Tensor<B, 2> {
        match self.boost_alpha {
            Some(alpha) => boosted_logits(self.class_activation_maps(feature_map), alpha),
            // Without a boost, pooling first is the same function and C / D times cheaper.
            None => self.linear.forward(global_average_pool(feature_map)),
        }
    }

    /// Logits `[batch, C]` from pooled features `[batch, D]` (linear-probe mode; no boost).
    pub fn forward_features(&self, features: Tensor<B, 2>) -> Tensor<B, 2> {
        self.linear.forward(features)
    }
}
