//! The one model type the loop trains: an MLP on feature vectors, or an image backbone with a
//! multi-label head, chosen by the config.

use std::path::PathBuf;

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use mlml_models::{
    ConvBackend, EfficientNetLite0, Mlp, MlpConfig, MultiLabelHead, MultiLabelHeadConfig, ResNet,
    ResNetConfig, SmallCnn, SmallCnnConfig, EFFICIENTNET_LITE0_FEATURES,
};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Which network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackboneKind {
    /// Linear layers with ReLU for feature vectors (`hidden` sizes).
    #[default]
    Mlp,
    /// The four-stage CNN for small images (64 x 64).
    SmallCnn,
    /// torchvision's ResNet-18.
    Resnet18,
    /// torchvision's ResNet-34.
    Resnet34,
    /// torchvision's ResNet-50.
    Resnet50,
    /// torchvision's ResNet-101.
    Resnet101,
    /// EfficientNet-Lite0 (its ImageNet weights ship with mlml: `weights = "shipped"`).
    EfficientnetLite0,
}

impl BackboneKind {
    /// The config name.
    pub fn name(self) -> &'static str {
        match self {
            BackboneKind::Mlp => "mlp",
            BackboneKind::SmallCnn => "small-cnn",
            BackboneKind::Resnet18 => "resnet18",
            BackboneKind::Resnet34 => "resnet34",
            BackboneKind::Resnet50 => "resnet50",
            BackboneKind::Resnet101 => "resnet101",
            BackboneKind::EfficientnetLite0 => "efficientnet-lite0",
        }
    }

    fn resnet(self) -> Option<ResNetConfig> {
        Some(match self {
            BackboneKind::Resnet18 => ResNetConfig::resnet18(),
            BackboneKind::Resnet34 => ResNetConfig::resnet34(),
            BackboneKind::Resnet50 => ResNetConfig::resnet50(),
            BackboneKind::Resnet101 => ResNetConfig::resnet101(),
            _ => return None,
        })
    }
}

/// Where a backbone's starting weights come from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Weights {
    /// Random initialisation (seeded).
    #[default]
    Random,
    /// The ImageNet weights shipped with mlml (EfficientNet-Lite0 only).
    Shipped,
    /// A PyTorch state dict (`.pth` or `.safetensors`) of torchvision's ResNet or of
    /// `efficientnet-lite-pytorch`: `weights = { file = "resnet50.pth" }`.
    File(PathBuf),
}

/// How an image backbone trains.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Images through the backbone and the head, all trained.
    #[default]
    EndToEnd,
    /// The backbone frozen: its pooled features are extracted once (and cached), and a head of
    /// `hidden` layers (empty: linear) trains on them.
    LinearProbe,
    /// Cole et al.'s LinearInit: a linear head trained first on the frozen backbone's features
    /// (`training.linear_phase`), then the whole network end to end from that phase's best
    /// linear layer (and, for ROLE, its label estimate).
    LinearInit,
}

/// What the network is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// The network.
    pub backbone: BackboneKind,
    /// End to end, or a probe on frozen features.
    pub mode: Mode,
    /// In linear-probe mode, the square size images are resized to (bilinear, on the device)
    /// before the backbone (`None`: as the data delivers them).
    pub probe_size: Option<usize>,
    /// Hidden layer sizes of the MLP (empty: a linear model); MLP only.
    pub hidden: Vec<usize>,
    /// Starting weights of an image backbone.
    pub weights: Weights,
    /// BoostLU's alpha: the head boosts class activation maps before pooling.
    pub boost_alpha: Option<f64>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            backbone: BackboneKind::Mlp,
            mode: Mode::EndToEnd,
            probe_size: None,
            hidden: vec![256],
            weights: Weights::Random,
            boost_alpha: None,
        }
    }
}

/// An image backbone.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Backbone<B: Backend> {
    /// The small CNN.
    SmallCnn(SmallCnn<B>),
    /// A ResNet.
    ResNet(ResNet<B>),
    /// EfficientNet-Lite0.
    EfficientNetLite0(EfficientNetLite0<B>),
}

impl<B: ConvBackend> Backbone<B> {
    /// The last feature map `[batch, D, h, w]`.
    pub fn feature_map(&self, images: Tensor<B, 4>) -> Tensor<B, 4> {
        match self {
            Backbone::SmallCnn(m) => m.feature_map(images),
            Backbone::ResNet(m) => m.feature_map(images),
            Backbone::EfficientNetLite0(m) => m.feature_map(images),
        }
    }

    /// Pooled features `[batch, D]`.
    pub fn features(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        mlml_models::global_average_pool(self.feature_map(images))
    }
}

/// A backbone and its multi-label head.
#[derive(Module, Debug)]
pub struct ImageClassifier<B: Backend> {
    /// Images to a feature map.
    pub backbone: Backbone<B>,
    /// Feature map to logits.
    pub head: MultiLabelHead<B>,
}

/// What the loop trains.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Classifier<B: Backend> {
    /// Feature vectors to logits.
    Mlp(Mlp<B>),
    /// Images to logits.
    Image(ImageClassifier<B>),
}

/// A batch's input, as the model kind takes it.
#[derive(Clone, Debug)]
pub enum Input<B: Backend> {
    /// `[batch, d]`.
    Features(Tensor<B, 2>),
    /// `[batch, channels, height, width]`.
    Images(Tensor<B, 4>),
}

impl<B: ConvBackend> Classifier<B> {
    /// Logits `[batch, C]`.
    ///
    /// # Errors
    /// Images given to an MLP or features to an image model.
    pub fn logits(&self, input: Input<B>) -> Result<Tensor<B, 2>> {
        match (self, input) {
            (Classifier::Mlp(m), Input::Features(x)) => Ok(m.forward(x)),
            (Classifier::Image(m), Input::Images(x)) => {
                Ok(m.head.forward(m.backbone.feature_map(x)))
            }
            (Classifier::Mlp(_), Input::Images(_)) => Err(TrainError::Config(
                "the MLP takes feature vectors; set model.backbone to an image network for images"
                    .into(),
            )),
            (Classifier::Image(_), Input::Features(_)) => Err(TrainError::Config(
                "an image backbone takes images; use model.backbone = \"mlp\" for feature vectors"
                    .into(),
            )),
        }
    }
}

impl ModelConfig {
    /// Builds the model for `input` (feature width, or image channels) and `classes` outputs,
    /// with its starting weights. Call after seeding the backend: the random initialisation
    /// draws from it.
    ///
    /// # Errors
    /// A combination that does not exist (shipped weights for a ResNet, a small CNN from a
    /// file), or a weights file that cannot be read or does not fit.
    pub fn init<B: Backend>(
        &self,
        input: usize,
        classes: usize,
        device: &B::Device,
    ) -> Result<Classifier<B>> {
        let bad = |message: String| Err(TrainError::Config(message));
        let backbone = match self.backbone {
            BackboneKind::Mlp => {
                if self.weights != Weights::Random {
                    return bad("model.weights: the MLP trains from random weights".into());
                }
                return Ok(Classifier::Mlp(
                    MlpConfig::new(input, classes)
                        .with_hidden(self.hidden.clone())
                        .init(device),
                ));
            }
            BackboneKind::SmallCnn => {
                if self.weights != Weights::Random {
                    return bad("model.weights: the small CNN trains from random weights".into());
                }
                Backbone::SmallCnn(SmallCnnConfig::new().with_in_channels(input).init(device))
            }
            BackboneKind::EfficientnetLite0 => {
                if input != 3 {
                    return bad(format!(
                        "efficientnet-lite0 takes 3-channel images, the data has {input}"
                    ));
                }
                let model = match &self.weights {
                    Weights::Random => EfficientNetLite0::init(device),
                    Weights::Shipped => EfficientNetLite0::pretrained(device)?,
                    Weights::File(path) => EfficientNetLite0::init(device).load(path)?,
                };
                Backbone::EfficientNetLite0(model)
            }
            kind => {
                let config = kind.resnet().expect("the other kinds are ResNets");
                if input != 3 {
                    return bad(format!(
                        "{} takes 3-channel images, the data has {input}",
                        kind.name()
                    ));
                }
                let model = match &self.weights {
                    Weights::Random => config.init(device),
                    Weights::Shipped => {
                        return bad(format!(
                            "model.weights = \"shipped\" exists for efficientnet-lite0 only; give {} a torchvision file: weights = {{ file = \"...\" }}",
                            kind.name()
                        ))
                    }
                    Weights::File(path) => config.init(device).load_torchvision(path)?,
                };
                Backbone::ResNet(model)
            }
        };
        let features = self.feature_dim();
        Ok(Classifier::Image(ImageClassifier {
            backbone,
            head: MultiLabelHeadConfig::new(features, classes)
                .with_boost_alpha(self.boost_alpha)
                .init(device),
        }))
    }

    /// Width of the backbone's pooled features (of the MLP's input: 0).
    pub fn feature_dim(&self) -> usize {
        match self.backbone {
            BackboneKind::Mlp => 0,
            BackboneKind::SmallCnn => SmallCnnConfig::new().widths[3],
            BackboneKind::EfficientnetLite0 => EFFICIENTNET_LITE0_FEATURES,
            kind => kind.resnet().expect("a ResNet").feature_dim(),
        }
    }

    /// Whether the trained model takes images (a linear probe trains on features).
    pub fn takes_images(&self) -> bool {
        self.backbone != BackboneKind::Mlp && self.mode != Mode::LinearProbe
    }

    /// The linear phase of a `linear-init` run: a linear probe (no hidden layer) on the same
    /// backbone and weights.
    pub fn linear_phase(&self) -> ModelConfig {
        ModelConfig {
            mode: Mode::LinearProbe,
            hidden: Vec::new(),
            boost_alpha: None,
            ..self.clone()
        }
    }

    /// Whether this is a linear probe on a frozen image backbone.
    pub fn is_probe(&self) -> bool {
        self.backbone != BackboneKind::Mlp && self.mode == Mode::LinearProbe
    }

    /// The model the loop trains: the head alone (an MLP of `hidden`) for a linear probe,
    /// this config otherwise.
    pub fn trained(&self) -> ModelConfig {
        if self.is_probe() {
            ModelConfig {
                backbone: BackboneKind::Mlp,
                mode: Mode::EndToEnd,
                probe_size: None,
                hidden: self.hidden.clone(),
                weights: Weights::Random,
                boost_alpha: None,
            }
        } else {
            self.clone()
        }
    }

    /// The frozen backbone of a linear probe, with its starting weights.
    ///
    /// # Errors
    /// As [`Self::init`].
    pub fn probe_backbone<B: Backend>(
        &self,
        channels: usize,
        device: &B::Device,
    ) -> Result<Backbone<B>> {
        let image = ModelConfig {
            mode: Mode::EndToEnd,
            ..self.clone()
        };
        match image.init::<B>(channels, 1, device)? {
            Classifier::Image(m) => Ok(m.backbone),
            Classifier::Mlp(_) => Err(TrainError::Config(
                "model.mode = \"linear-probe\" needs an image backbone".into(),
            )),
        }
    }

    /// A description of the backbone and its weights for cache keys.
    pub fn backbone_key(&self) -> String {
        let weights = match &self.weights {
            Weights::Random => "random".to_string(),
            Weights::Shipped => format!("shipped (mlml-models {})", env!("CARGO_PKG_VERSION")),
            Weights::File(path) => mlml_data::fingerprint::file_stamp_text(path),
        };
        format!("{} weights {weights}", self.backbone.name())
    }
}
