//! ResNet-18/34/50/101 with torchvision's layout and parameter names. He et al., "Deep Residual
//! Learning for Image Recognition", CVPR 2016, arXiv:1512.03385; layout of torchvision's
//! `models/resnet.py` (v1.5: the stride of a Bottleneck sits on its 3x3 convolution).
//!
//! Field names are the state-dict keys (`conv1`, `bn1`, `layer1.0.conv1`, ...,
//! `layer4.2.downsample.{0,1}`, `fc`), so torchvision `.pth` / `.safetensors` files load with two
//! key remappings (`downsample.0` -> `downsample.conv`, `downsample.1` -> `downsample.bn`).
//! Widths, depths and the stem are configurable for narrow test networks.

use std::path::Path;

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::weights::{load_state_dict, LoadOptions};
use mlml_ops::max_pool2d_module;
use mlml_ops::Activation;
use mlml_ops::ConvBackend;
use mlml_ops::{conv_bn, conv_bn_fused};

/// Block type.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// Two 3x3 convolutions (ResNet-18/34).
    Basic,
    /// 1x1, 3x3, 1x1 with expansion 4 (ResNet-50/101).
    Bottleneck,
}

impl BlockKind {
    fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// Architecture of a [`ResNet`].
#[derive(Config, Debug)]
pub struct ResNetConfig {
    /// Block type.
    pub block: BlockKind,
    /// Blocks per stage.
    pub layers: [usize; 4],
    /// Width (planes) of each stage.
    #[config(default = "[64, 128, 256, 512]")]
    pub widths: [usize; 4],
    /// Channels of the stem convolution.
    #[config(default = 64)]
    pub stem_width: usize,
    /// Outputs of `fc`; `None` builds the backbone alone (features only).
    #[config(default = "Some(1000)")]
    pub num_classes: Option<usize>,
}

impl ResNetConfig {
    /// ResNet-18.
    pub fn resnet18() -> Self {
        Self::new(BlockKind::Basic, [2, 2, 2, 2])
    }
    /// ResNet-34.
    pub fn resnet34() -> Self {
        Self::new(BlockKind::Basic, [3, 4, 6, 3])
    }
    /// ResNet-50.
    pub fn resnet50() -> Self {
        Self::new(BlockKind::Bottleneck, [3, 4, 6, 3])
    }
    /// ResNet-101.
    pub fn resnet101() -> Self {
        Self::new(BlockKind::Bottleneck, [3, 4, 23, 3])
    }

    /// Size of the pooled feature vector.
    pub fn feature_dim(&self) -> usize {
        self.widths[3] * self.block.expansion()
    }

    /// Builds the network with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ResNet<B> {
        let conv = |cin: usize, cout: usize, k: usize, stride: usize, pad: usize| {
            Conv2dConfig::new([cin, cout], [k, k])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .with_bias(false)
                .init(device)
        };
        let bn = |c: usize| BatchNormConfig::new(c).init(device);
        let mut inplanes = self.stem_width;
        let expansion = self.block.expansion();
        let mut stage =
            |planes: usize, blocks: usize, stride: usize| -> Vec<Block<B>> {
                (0..blocks)
                    .map(|i| {
                        let s = if i == 0 { stride } else { 1 };
                        let downsample = (i == 0 && (s != 1 || inplanes != planes * expansion))
                            .then(|| Downsample {
                                conv: conv(inplanes, planes * expansion, 1, s, 0),
                                bn: bn(planes * expansion),
                            });
                        let block = match self.block {
                            BlockKind::Basic => Block {
                                conv1: conv(inplanes, planes, 3, s, 1),
                                bn1: bn(planes),
                                conv2: conv(planes, planes, 3, 1, 1),
                                bn2: bn(planes),
                                conv3: None,
                                bn3: None,
                                downsample,
                            },
                            BlockKind::Bottleneck => Block {
                                conv1: conv(inplanes, planes, 1, 1, 0),
                                bn1: bn(planes),
                                conv2: conv(planes, planes, 3, s, 1),
                                bn2: bn(planes),
                                conv3: Some(conv(planes, planes * expansion, 1, 1, 0)),
                                bn3: Some(bn(planes * expansion)),
                                downsample,
                            },
                        };
                        inplanes = planes * expansion;
                        block
                    })
                    .collect()
            };
        let layer1 = stage(self.widths[0], self.layers[0], 1);
        let layer2 = stage(self.widths[1], self.layers[1], 2);
        let layer3 = stage(self.widths[2], self.layers[2], 2);
        let layer4 = stage(self.widths[3], self.layers[3], 2);
        ResNet {
            conv1: conv(3, self.stem_width, 7, 2, 3),
            bn1: bn(self.stem_width),
            maxpool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            layer1,
            layer2,
            layer3,
            layer4,
            fc: self
                .num_classes
                .map(|n| LinearConfig::new(self.feature_dim(), n).init(device)),
        }
    }
}

/// `downsample` of torchvision: a strided 1x1 convolution and its BatchNorm.
#[derive(Module, Debug)]
pub struct Downsample<B: Backend> {
    /// `downsample.0`.
    pub conv: Conv2d<B>,
    /// `downsample.1`.
    pub bn: BatchNorm<B>,
}

/// A BasicBlock (no `conv3`) or a Bottleneck.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    /// First convolution.
    pub conv1: Conv2d<B>,
    /// Its BatchNorm.
    pub bn1: BatchNorm<B>,
    /// Second convolution.
    pub conv2: Conv2d<B>,
    /// Its BatchNorm.
    pub bn2: BatchNorm<B>,
    /// Third convolution (Bottleneck only).
    pub conv3: Option<Conv2d<B>>,
    /// Its BatchNorm.
    pub bn3: Option<BatchNorm<B>>,
    /// Projection of the shortcut, where shapes change.
    pub downsample: Option<Downsample<B>>,
}

impl<B: ConvBackend> Block<B> {
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let identity = match &self.downsample {
            Some(d) => conv_bn(&d.conv, &d.bn, x.clone()),
            None => x.clone(),
        };
        let out = conv_bn_fused(&self.conv1, &self.bn1, x, None, Activation::Relu);
        match (&self.conv3, &self.bn3) {
            (Some(conv3), Some(bn3)) => {
                let out = conv_bn_fused(&self.conv2, &self.bn2, out, None, Activation::Relu);
                conv_bn_fused(conv3, bn3, out, Some(identity), Activation::Relu)
            }
            _ => conv_bn_fused(
                &self.conv2,
                &self.bn2,
                out,
                Some(identity),
                Activation::Relu,
            ),
        }
    }
}

/// A ResNet; see the module docs.
#[derive(Module, Debug)]
pub struct ResNet<B: Backend> {
    /// Stem convolution 7x7 / 2.
    pub conv1: Conv2d<B>,
    /// Stem BatchNorm.
    pub bn1: BatchNorm<B>,
    /// 3x3 / 2 max pooling.
    pub maxpool: MaxPool2d,
    /// Stage 1.
    pub layer1: Vec<Block<B>>,
    /// Stage 2.
    pub layer2: Vec<Block<B>>,
    /// Stage 3.
    pub layer3: Vec<Block<B>>,
    /// Stage 4.
    pub layer4: Vec<Block<B>>,
    /// ImageNet classifier, absent in a backbone.
    pub fc: Option<Linear<B>>,
}

impl<B: ConvBackend> ResNet<B> {
    /// The last feature map `[batch, feature_dim, h / 32, w / 32]`.
    pub fn feature_map(&self, images: Tensor<B, 4>) -> Tensor<B, 4> {
        let mut x = max_pool2d_module(
            &self.maxpool,
            conv_bn_fused(&self.conv1, &self.bn1, images, None, Activation::Relu),
        );
        for block in self
            .layer1
            .iter()
            .chain(&self.layer2)
            .chain(&self.layer3)
            .chain(&self.layer4)
        {
            x = block.forward(x);
        }
        x
    }

    /// Globally average-pooled features `[batch, feature_dim]`.
    pub fn features(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        crate::head::global_average_pool(self.feature_map(images))
    }

    /// `fc` logits.
    ///
    /// # Panics
    /// When built without `fc` (a backbone).
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let fc = self
            .fc
            .as_ref()
            .expect("this ResNet was built without fc; use features()");
        fc.forward(self.features(images))
    }
}

impl<B: Backend> ResNet<B> {
    /// Loads a torchvision state dict (`.pth` or `.safetensors`). A model built without `fc`
    /// ignores the file's `fc`, the usual case when a multi-label head replaces it.
    ///
    /// # Errors
    /// An unreadable file, or keys that do not fit (missing, unexpected, wrong shape), listed.
    pub fn load_torchvision(mut self, path: &Path) -> crate::Result<Self> {
        let options = LoadOptions {
            remap: vec![
                (r"(.+)\.downsample\.0\.(.+)", "$1.downsample.conv.$2"),
                (r"(.+)\.downsample\.1\.(.+)", "$1.downsample.bn.$2"),
            ],
            skip_prefixes: vec![],
            ignore_prefixes: if self.fc.is_none() {
                vec!["fc."]
            } else {
                vec![]
            },
        };
        load_state_dict(&mut self, path, &options)?;
        Ok(self)
    }
}
