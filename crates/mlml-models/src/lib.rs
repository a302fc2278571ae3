//! # mlml-models
//!
//! Backbones as burn modules, generic over the backend, with the parameter names of the
//! checkpoints users bring, so that PyTorch state dicts load through burn-store with no
//! hand-written unpickler:
//!
//! - [`ResNet`] 18/34/50/101 with torchvision's layout ([`ResNetConfig::resnet50`], ...),
//!   configurable widths for narrow networks; [`ResNet::load_torchvision`] reads `.pth` or
//!   `.safetensors` and lists missing, unexpected or mis-shaped keys.
//! - [`EfficientNetLite0`] with its ImageNet weights shipped in `assets/`
//!   ([`EfficientNetLite0::pretrained`]), so a fresh clone has a real pretrained backbone offline.
//! - [`SmallCnn`] (64x64 grey images) and [`Mlp`] (feature vectors) for CPU-sized work.
//! - [`MultiLabelHead`]: global average pooling + linear to C logits, or BoostLU's boosted
//!   class activation maps.
//! - `features(images) -> [N, D]` on every backbone for the linear-probe mode; freeze a backbone
//!   with burn's `Module::no_grad`.
//!
//! The crate picks no backend: CPU (`Flex`) by default, `wgpu` and `cuda` behind features.

mod efficientnet;
mod error;
mod head;
mod preprocess;
mod resnet;
mod small;
mod weights;

pub use efficientnet::{
    EfficientNetLite0, MbConv, EFFICIENTNET_LITE0_FEATURES, EFFICIENTNET_LITE0_WEIGHTS,
};
pub use error::{ModelError, Result};
pub use head::{
    boost_cam, boosted_logits, global_average_pool, MultiLabelHead, MultiLabelHeadConfig,
    BOOSTLU_ALPHA,
};
pub use mlml_ops::{Activation, ConvBackend};
pub use preprocess::{
    imagenet_batch, imagenet_classes, imagenet_input, IMAGENET_MEAN, IMAGENET_STD,
};
pub use resnet::{Block, BlockKind, Downsample, ResNet, ResNetConfig};
pub use small::{ConvBn, Mlp, MlpConfig, SmallCnn, SmallCnnConfig};
pub use weights::{load_safetensors_bytes, load_state_dict, LoadOptions};
