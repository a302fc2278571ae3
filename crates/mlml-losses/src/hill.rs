//! Hill loss. Zhang et al., "Simple and Robust Loss Design for Multi-Label Learning with
//! Missing Labels", arXiv:2112.07368. Reference: `xinyu1205/robust-loss-mlml`
//! `src/loss_functions/losses.py`, class `Hill`.
//!
//! ```text
//! positive:  -(1 - q)^gamma ln q,      q = sigmoid(x - margin)
//! negative:  (lambda - p) p^2,         p = sigmoid(x)
//! ```
//! Defaults lambda 1.5, margin 1, gamma 2, reduction sum. Nothing is detached: the gradient
//! flows through the focal weight and both factors of the Hill term.
//!
//! Deliberate difference: the reference takes `ln(sigmoid(x - margin))` for every entry and
//! multiplies by the target, so a logit below about -88 (f32) gives NaN even on a negative
//! entry (`0 * -inf`). We evaluate the positive branch only on positives, so the loss stays
//! finite there; everywhere else values and gradients are the reference's.
//! Targets: 1 positive; 0 and -1 negatives (the Hill term is what makes that robust).

use burn::config::Config;
use burn::tensor::Tensor;
use mlml_ops::sigmoid;
use mlml_ops::SigmoidBackend;

use crate::common::{only_where, positive_mask, LossContext};
use crate::error::check_range;
use crate::registration::Registered;
use crate::stateless::{Elements, StatelessLoss};
use crate::Reduction;

/// Hyperparameters of [`HillLoss`].
#[derive(Config, Debug, PartialEq)]
pub struct HillLossConfig {
    /// Hill weight lambda of negatives.
    #[config(default = 1.5)]
    pub lamb: f64,
    /// Logit margin of positives.
    #[config(default = 1.0)]
    pub margin: f64,
    /// Focusing exponent of positives.
    #[config(default = 2.0)]
    pub gamma: f64,
    /// Sum (reference default) or mean over all entries.
    #[config(default = "Reduction::Sum")]
    pub reduction: Reduction,
}

impl HillLossConfig {
    /// Checks the ranges.
    ///
    /// # Errors
    /// lambda or gamma negative, margin not finite.
    pub fn validate(&self) -> crate::Result<()> {
        check_range(NAME, "lamb", self.lamb, 0.0, f64::MAX, ">= 0")?;
        check_range(NAME, "gamma", self.gamma, 0.0, f64::MAX, ">= 0")?;
        check_range(NAME, "margin", self.margin, f64::MIN, f64::MAX, "finite")
    }

    /// Builds the loss.
    ///
    /// # Errors
    /// See [`HillLossConfig::validate`].
    pub fn init(&self) -> crate::Result<HillLoss> {
        self.validate()?;
        Ok(HillLoss {
            config: self.clone(),
        })
    }
}

/// The Hill loss; see the module docs.
#[derive(Clone, Debug)]
pub struct HillLoss {
    config: HillLossConfig,
}

impl<B: SigmoidBackend> StatelessLoss<B> for HillLoss {
    fn reduction(&self) -> Reduction {
        self.config.reduction
    }

    /// Negated: `ln(q) (1 - q)^gamma` on positives and `(p - lambda) p^2` elsewhere, and the
    /// reduction negates its scalar instead (exact: `a - b = -(b - a)` in floating point), two
    /// passes fewer.
    fn elements(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
        _ctx: &LossContext<'_>,
    ) -> crate::Result<Elements<B>> {
        let c = &self.config;
        let pos = positive_mask(&targets);
        let q = sigmoid(only_where(logits.clone(), pos.clone(), 0.0).sub_scalar(c.margin));
        let one_minus_q = q.clone().neg().add_scalar(1.0);
        // `** 2.0` in PyTorch is bit-identical to x * x; use it for the default gamma.
        let weight = if c.gamma == 2.0 {
            one_minus_q.clone() * one_minus_q
        } else {
            one_minus_q.powf_scalar(c.gamma)
        };
        let positive = q.log().mul(weight);
        let p = sigmoid(logits);
        let negative = p.clone().sub_scalar(c.lamb).mul(p.clone() * p);
        Ok(Elements::Negated(negative.mask_where(pos, positive)))
    }
}

const NAME: &str = <HillLoss as Registered>::INFO.name;

crate::registration::register!(
    HillLoss,
    config: HillLossConfig = HillLossConfig::new(),
    info: { name: "hill", summary: "Hill loss (Zhang et al.)", reduction: "sum", needs: "-" },
    build: |config, _setup| config.init()?,
);

crate::stateless::stateless!(HillLoss);

#[cfg(test)]
mod vector_tests {
    use super::HillLossConfig;
    use crate::vectors::{asl_line_cases, number};

    #[test]
    fn matches_the_hill_reference() {
        asl_line_cases("hill.json", |p| {
            assert_eq!(p["class"].as_str(), Some("Hill"));
            Box::new(
                HillLossConfig::new()
                    .with_lamb(number(p, "lamb"))
                    .with_margin(number(p, "margin"))
                    .with_gamma(number(p, "gamma"))
                    .init()
                    .unwrap(),
            )
        });
    }
}
