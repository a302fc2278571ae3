//! Small models that train from scratch on a CPU in minutes: a CNN for 64x64 grey images (the
//! composite Fashion set) and an MLP for feature-vector datasets (scene, yeast).

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::head::global_average_pool;
use mlml_ops::conv_bn_fused;
use mlml_ops::Activation;
use mlml_ops::ConvBackend;
use mlml_ops::{max_pool2d_forward, MaxPoolOptions};

/// Configuration of [`SmallCnn`].
#[derive(Config, Debug)]
pub struct SmallCnnConfig {
    /// Input channels (1 for grey images).
    #[config(default = 1)]
    pub in_channels: usize,
    /// Channels of the four 3x3 stages (each followed by 2x2 max pooling but the last).
    #[config(default = "[32, 64, 128, 128]")]
    pub widths: [usize; 4],
}

impl SmallCnnConfig {
    /// Builds the network.
    pub fn init<B: Backend>(&self, device: &B::Device) -> SmallCnn<B> {
        let mut cin = self.in_channels;
        let stages = self
            .widths
            .iter()
            .map(|&w| {
                let stage = ConvBn {
                    conv: Conv2dConfig::new([cin, w], [3, 3])
                        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                        .with_bias(false)
                        .init(device),
                    bn: BatchNormConfig::new(w).init(device),
                };
                cin = w;
                stage
            })
            .collect();
        SmallCnn { stages }
    }
}

/// Convolution, BatchNorm (ReLU applied by the caller).
#[derive(Module, Debug)]
pub struct ConvBn<B: Backend> {
    /// 3x3 convolution.
    pub conv: Conv2d<B>,
    /// BatchNorm.
    pub bn: BatchNorm<B>,
}

/// A four-stage CNN; 64x64 inputs end as an 8x8 map of `widths[3]` channels.
#[derive(Module, Debug)]
pub struct SmallCnn<B: Backend> {
    /// The stages.
    pub stages: Vec<ConvBn<B>>,
}

impl<B: ConvBackend> SmallCnn<B> {
    /// Last feature map `[batch, widths[3], h / 8, w / 8]`.
    pub fn feature_map(&self, images: Tensor<B, 4>) -> Tensor<B, 4> {
        let last = self.stages.len() - 1;
        self.stages.iter().enumerate().fold(images, |x, (i, s)| {
            let x = conv_bn_fused(&s.conv, &s.bn, x, None, Activation::Relu);
            if i < last {
                max_pool2d_forward(x, MaxPoolOptions::new(2, 2))
            } else {
                x
            }
        })
    }

    /// Pooled features `[batch, widths[3]]`.
    pub fn features(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        global_average_pool(self.feature_map(images))
    }
}

/// Configuration of [`Mlp`].
#[derive(Config, Debug)]
pub struct MlpConfig {
    /// Input features.
    pub d_input: usize,
    /// Outputs (classes).
    pub d_output: usize,
    /// Hidden layer sizes; empty gives a linear model.
    #[config(default = "vec![256]")]
    pub hidden: Vec<usize>,
}

impl MlpConfig {
    /// Builds the network.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Mlp<B> {
        let mut sizes = vec![self.d_input];
        sizes.extend(&self.hidden);
        sizes.push(self.d_output);
        Mlp {
            layers: sizes
                .windows(2)
                .map(|w| LinearConfig::new(w[0], w[1]).init(device))
                .collect(),
        }
    }
}

/// Linear layers with ReLU between them.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// The layers.
    pub layers: Vec<Linear<B>>,
}

impl<B: Backend> Mlp<B> {
    /// Logits `[batch, d_output]` of features `[batch, d_input]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let last = self.layers.len() - 1;
        self.layers.iter().enumerate().fold(x, |x, (i, l)| {
            if i < last {
                relu(l.forward(x))
            } else {
                l.forward(x)
            }
        })
    }
}
