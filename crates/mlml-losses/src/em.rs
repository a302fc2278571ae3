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
use burn::tensor::Tensor;
use mlml_ops::sigmoid;
use mlml_ops::SigmoidBackend;

use crate::common::{log_eps, negative_mask, positive_mask, LossContext};
use crate::error::check_range;
use crate::registration::{Preset, PresetValue, Registered};
use crate::stateless::{Elements, StatelessLoss};

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

/// `p`, `1 - p` and their logs `ln(x + 1e-5)`, each computed once for every term of EM and
/// EM+APL that reads them. The terms come negated (the losses negate their mean): negation is
/// exact, so each term's value is the reference's.
pub(crate) struct ShiftedLogs<B: SigmoidBackend> {
    pub p: Tensor<B, 2>,
    pub not_p: Tensor<B, 2>,
    pub log_p: Tensor<B, 2>,
    pub log_not_p: Tensor<B, 2>,
}

impl<B: SigmoidBackend> ShiftedLogs<B> {
    pub fn new(logits: Tensor<B, 2>) -> Self {
        let p = sigmoid(logits);
        let not_p = p.clone().neg().add_scalar(1.0);
        Self {
            log_p: log_eps(p.clone()),
            log_not_p: log_eps(not_p.clone()),
            p,
            not_p,
        }
    }

    /// The unobserved term `-alpha * entropy(p)`, negated: `-alpha (p ln p + (1 - p) ln(1 - p))`.
    pub fn negated_entropy_term(&self, alpha: f64) -> Tensor<B, 2> {
        (self.p.clone().mul(self.log_p.clone()) + self.not_p.clone().mul(self.log_not_p.clone()))
            .mul_scalar(-alpha)
    }
}

impl<B: SigmoidBackend> StatelessLoss<B> for EmLoss {
    fn elements(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
        _ctx: &LossContext<'_>,
    ) -> crate::Result<Elements<B>> {
        let logs = ShiftedLogs::new(logits);
        Ok(Elements::Negated(
            logs.negated_entropy_term(self.alpha)
                .mask_where(negative_mask(&targets), logs.log_not_p)
                .mask_where(positive_mask(&targets), logs.log_p),
        ))
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

crate::registration::register!(
    EmLoss,
    config: EmLossConfig = EmLossConfig::new(),
    info: { name: "em", summary: "entropy maximisation (Zhou et al.)", reduction: "mean", needs: "-" },
    preset: |preset| em_alpha(preset)
        .map(|alpha| PresetValue::new("alpha", alpha, EM_SOURCE))
        .into_iter()
        .collect(),
    build: |config, _setup| config.init()?,
);

crate::stateless::stateless!(EmLoss);

#[cfg(test)]
mod vector_tests {
    use super::EmLossConfig;
    use crate::vectors::{number, single_positive_cases, Labels};

    #[test]
    fn matches_zhou_et_al() {
        single_positive_cases("em.json", Labels::Observed, |h| {
            assert_eq!(h["loss"].as_str(), Some("EM"));
            Box::new(
                EmLossConfig::new()
                    .with_alpha(number(h, "alpha"))
                    .init()
                    .unwrap(),
            )
        });
    }
}
