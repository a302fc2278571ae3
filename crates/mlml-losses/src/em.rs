//! Entropy maximisation (EM). Zhou et al., "Acknowledging the Unknown for Multi-label Learning
//! with Single Positive Labels", ECCV 2022, arXiv:2203.16219. Reference:
//! `Correr-Zhou/SPML-AckTheUnknown` `losses.py`, `loss_EM`.
//!
//! ```text
//! positive:   -ln(p + 1e-5)
//! unobserved: -alpha * [ p (-ln(p + 1e-5)) + (1 - p) (-ln(1 - p + 1e-5)) ]      (negative!)
//! loss = sum / (N C)
//! ```
//! The unobserved term is minus alpha times the binary entropy: it pulls p toward 0.5, and the
//! loss may be negative; nothing clamps it. `alpha` per dataset in the reference: pascal 0.2,
//! coco 0.1, nuswide 0.1, cub 0.01. An observed negative (absent from the single-positive
//! protocol) is a known negative here: `-ln(1 - p + 1e-5)`.

use burn::config::Config;
use burn::tensor::activation::sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::common::{mean_all, neg_log, negative_mask, positive_mask, LossContext, StatelessLoss};
use crate::error::check_range;
use crate::registry::{Preset, PresetValue, Registered};

/// Hyperparameters of [`EmLoss`].
#[derive(Config, Debug, PartialEq)]
pub struct EmLossConfig {
    /// Weight of the entropy term on unobserved entries.
    #[config(default = 0.1)]
    pub alpha: f64,
}

impl EmLossConfig {
    /// Builds the loss.
    ///
    /// # Errors
    /// `alpha` negative.
    pub fn init(&self) -> crate::Result<EmLoss> {
        check_range(
            <EmLoss as Registered>::INFO.name,
            "alpha",
            self.alpha,
            0.0,
            f64::MAX,
            ">= 0",
        )?;
        Ok(EmLoss { alpha: self.alpha })
    }
}

/// EM; see the module docs.
#[derive(Clone, Debug)]
pub struct EmLoss {
    alpha: f64,
}

/// `-alpha * entropy(p)` with the reference's epsilon-shifted logs.
pub(crate) fn negative_entropy<B: Backend>(p: Tensor<B, 2>, alpha: f64) -> Tensor<B, 2> {
    let not_p = p.clone().neg().add_scalar(1.0);
    let entropy = p.clone().mul(neg_log(p)) + not_p.clone().mul(neg_log(not_p));
    entropy.mul_scalar(-alpha)
}

impl EmLoss {
    /// Per-element loss `[batch, n_classes]`.
    pub fn forward_elementwise<B: Backend>(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
    ) -> Tensor<B, 2> {
        let p = sigmoid(logits);
        negative_entropy(p.clone(), self.alpha)
            .mask_where(
                negative_mask(&targets),
                neg_log(p.clone().neg().add_scalar(1.0)),
            )
            .mask_where(positive_mask(&targets), neg_log(p))
    }
}

impl<B: Backend> StatelessLoss<B> for EmLoss {
    fn name(&self) -> &'static str {
        <Self as Registered>::INFO.name
    }

    fn batch_loss(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
        _ctx: &LossContext<'_>,
    ) -> crate::Result<Tensor<B, 1>> {
        Ok(mean_all(self.forward_elementwise(logits, targets)))
    }
}

/// EM's `alpha` per dataset: Zhou et al.'s `main.py` (`Correr-Zhou/SPML-AckTheUnknown@ae1ccafe0b03`
/// §1.7): pascal 0.2, coco 0.1, nuswide 0.1, cub 0.01. Shared with EM+APL.
pub(crate) fn em_alpha(preset: Preset) -> Option<f64> {
    match preset {
        Preset::Voc => Some(0.2),
        Preset::Coco | Preset::Nuswide => Some(0.1),
        Preset::Cub => Some(0.01),
        Preset::Yeast | Preset::Scene | Preset::Fashion => None,
    }
}

pub(crate) const EM_SOURCE: &str =
    "Zhou et al., Correr-Zhou/SPML-AckTheUnknown@ae1ccafe0b03 main.py";

crate::registry::register!(
    EmLoss,
    config: EmLossConfig = EmLossConfig::new(),
    info: { name: "em", summary: "entropy maximisation (Zhou et al.)", reduction: "mean", needs: "-" },
    preset: |preset| em_alpha(preset)
        .map(|alpha| PresetValue::new("alpha", alpha, EM_SOURCE))
        .into_iter()
        .collect(),
    build: |config, _setup| config.init()?,
);

crate::common::stateless!(EmLoss);
