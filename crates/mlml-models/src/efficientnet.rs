//! EfficientNet-Lite0. Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional
//! Neural Networks", ICML 2019, arXiv:1905.11946; the Lite variants of the TensorFlow TPU
//! models (no squeeze-excitation, ReLU6). Layout and keys of `efficientnet-lite-pytorch` 0.1.0
//! (`_conv_stem`, `_bn0`, `_blocks.{i}._expand_conv`, ..., `_fc`), whose weights this crate ships
//! (`assets/efficientnet-lite0.safetensors`).
//!
//! Two details decide whether the weights give their logits: BatchNorm epsilon is 1e-3
//! (TensorFlow's; some running variances are exactly 0) and every convolution pads TensorFlow
//! "SAME", asymmetric on stride-2 layers (burn's `PaddingConfig2d::Same` computes exactly that).

use std::path::Path;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::head::global_average_pool;
use crate::weights::{load_safetensors_bytes, load_state_dict, LoadOptions};
use mlml_ops::conv_bn_fused;
use mlml_ops::Activation;
use mlml_ops::ConvBackend;

/// The ImageNet weights shipped with the crate, embedded in the library at compile time: an
/// installed binary (`cargo install`) carries them and needs no file beside it, no download and
/// no compile-time path. (A search path would break as soon as the binary moves; 19 MB is the
/// price, paid only by binaries that call [`EfficientNetLite0::pretrained`], since the linker
/// drops the bytes from the others.)
pub static EFFICIENTNET_LITE0_WEIGHTS: &[u8] =
    include_bytes!("../assets/efficientnet-lite0.safetensors");

/// (repeats, kernel, stride of the first block, expansion, output channels) per stage.
const STAGES: [(usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
];

/// Width of the pooled features.
pub const EFFICIENTNET_LITE0_FEATURES: usize = 1280;

/// One inverted-residual block.
#[derive(Module, Debug)]
pub struct MbConv<B: Backend> {
    /// 1x1 expansion (absent when the expansion is 1).
    pub expand_conv: Option<Conv2d<B>>,
    /// Its BatchNorm.
    pub bn0: Option<BatchNorm<B>>,
    /// Depthwise k x k convolution.
    pub depthwise_conv: Conv2d<B>,
    /// Its BatchNorm.
    pub bn1: BatchNorm<B>,
    /// 1x1 projection.
    pub project_conv: Conv2d<B>,
    /// Its BatchNorm.
    pub bn2: BatchNorm<B>,
    /// Whether the input is added back (stride 1 and same channels).
    pub residual: bool,
}

impl<B: ConvBackend> MbConv<B> {
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let mut h = x.clone();
        if let (Some(conv), Some(bn)) = (&self.expand_conv, &self.bn0) {
            h = conv_bn_fused(conv, bn, h, None, Activation::Relu6);
        }
        h = conv_bn_fused(&self.depthwise_conv, &self.bn1, h, None, Activation::Relu6);
        let residual = self.residual.then_some(x);
        conv_bn_fused(
            &self.project_conv,
            &self.bn2,
            h,
            residual,
            Activation::Identity,
        )
    }
}

/// EfficientNet-Lite0; see the module docs.
#[derive(Module, Debug)]
pub struct EfficientNetLite0<B: Backend> {
    /// Stem 3x3 / 2.
    pub conv_stem: Conv2d<B>,
    /// Stem BatchNorm.
    pub bn0: BatchNorm<B>,
    /// The 16 blocks.
    pub blocks: Vec<MbConv<B>>,
    /// 1x1 head convolution 320 -> 1280.
    pub conv_head: Conv2d<B>,
    /// Its BatchNorm.
    pub bn1: BatchNorm<B>,
    /// ImageNet classifier 1280 -> 1000.
    pub fc: Linear<B>,
}

impl<B: Backend> EfficientNetLite0<B> {
    /// Builds the network with random weights.
    pub fn init(device: &B::Device) -> Self {
        let conv = |cin: usize, cout: usize, k: usize, stride: usize, groups: usize| {
            Conv2dConfig::new([cin, cout], [k, k])
                .with_stride([stride, stride])
                .with_groups(groups)
                .with_padding(PaddingConfig2d::Same)
                .with_bias(false)
                .init(device)
        };
        let bn = |c: usize| BatchNormConfig::new(c).with_epsilon(1e-3).init(device);
        let mut blocks = Vec::new();
        let mut cin = 32;
        for (repeats, k, stride, expansion, cout) in STAGES {
            for i in 0..repeats {
                let s = if i == 0 { stride } else { 1 };
                let mid = cin * expansion;
                blocks.push(MbConv {
                    expand_conv: (expansion != 1).then(|| conv(cin, mid, 1, 1, 1)),
                    bn0: (expansion != 1).then(|| bn(mid)),
                    depthwise_conv: conv(mid, mid, k, s, mid),
                    bn1: bn(mid),
                    project_conv: conv(mid, cout, 1, 1, 1),
                    bn2: bn(cout),
                    residual: s == 1 && cin == cout,
                });
                cin = cout;
            }
        }
        Self {
            conv_stem: conv(3, 32, 3, 2, 1),
            bn0: bn(32),
            blocks,
            conv_head: conv(320, EFFICIENTNET_LITE0_FEATURES, 1, 1, 1),
            bn1: bn(EFFICIENTNET_LITE0_FEATURES),
            fc: LinearConfig::new(EFFICIENTNET_LITE0_FEATURES, 1000).init(device),
        }
    }

    /// The network with the ImageNet weights shipped in `assets/` (embedded in the library).
    ///
    /// # Errors
    /// When the embedded weights do not fit the network (a build from a damaged checkout).
    pub fn pretrained(device: &B::Device) -> crate::Result<Self> {
        let mut model = Self::init(device);
        load_safetensors_bytes(
            &mut model,
            Path::new("<embedded efficientnet-lite0.safetensors>"),
            EFFICIENTNET_LITE0_WEIGHTS,
            &Self::load_options(),
        )?;
        Ok(model)
    }

    fn load_options() -> LoadOptions {
        // `_blocks.3._bn1.weight` -> `blocks.3.bn1.weight`.
        LoadOptions {
            remap: vec![(r"(^|\.)_", "$1")],
            ..Default::default()
        }
    }

    /// Loads an `efficientnet-lite-pytorch` state dict (`.pth` or `.safetensors`).
    ///
    /// # Errors
    /// An unreadable file, or keys that do not fit, listed.
    pub fn load(mut self, path: &Path) -> crate::Result<Self> {
        load_state_dict(&mut self, path, &Self::load_options())?;
        Ok(self)
    }
}

impl<B: ConvBackend> EfficientNetLite0<B> {
    /// The last feature map `[batch, 1280, h / 32, w / 32]`.
    pub fn feature_map(&self, images: Tensor<B, 4>) -> Tensor<B, 4> {
        let mut x = conv_bn_fused(&self.conv_stem, &self.bn0, images, None, Activation::Relu6);
        for block in &self.blocks {
            x = block.forward(x);
        }
        conv_bn_fused(&self.conv_head, &self.bn1, x, None, Activation::Relu6)
    }

    /// Pooled features `[batch, 1280]`.
    pub fn features(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        global_average_pool(self.feature_map(images))
    }

    /// ImageNet logits `[batch, 1000]` (dropout is the identity at inference).
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        self.fc.forward(self.features(images))
    }
}
