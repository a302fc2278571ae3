//! Self-Paced Loss Correction (SPLC). Zhang et al., arXiv:2112.07368. Reference:
//! `xinyu1205/robust-loss-mlml` `src/loss_functions/losses.py`, class `SPLC`.
//!
//! ```text
//! z = x - margin on observed positives, x elsewhere
//! t = 1 where sigmoid(z) > tau (once the epoch has come), else the observed target
//! L = -[ t ln sigmoid(z) + (1 - t) ln sigmoid(-z) ] * pt^gamma,  pt = (1-p) t + p (1-t)
//! ```
//! Defaults tau 0.6, change_epoch 1, margin 1, gamma 2, reduction sum. The pseudo-labels carry no
//! gradient; the focal weight does (nothing else is detached). Pseudo-positives keep `z = x`
//! (no margin), as in the reference.
//!
//! Epochs: the reference passes its 0-based loop index and corrects when `index >= change_epoch`.
//! mlml's epochs are 1-based, so correction is active when `ctx.epoch - 1 >= change_epoch`;
//! `change_epoch` keeps the reference's meaning (1 = from the second epoch on).
//! Targets: 1 positive; 0 and -1 negatives that may be corrected.

use burn::config::Config;
use burn::tensor::Tensor;
use mlml_ops::log_sigmoid;
use mlml_ops::sigmoid;
use mlml_ops::SigmoidBackend;

use crate::common::{positive_mask, LossContext};
use crate::error::check_range;
use crate::registration::Registered;
use crate::stateless::{Elements, StatelessLoss};
use crate::Reduction;

/// Hyperparameters of [`SplcLoss`].
#[derive(Config, Debug, PartialEq)]
pub struct SplcLossConfig {
    /// Probability above which a negative becomes a pseudo-positive (the README uses 0.65 for
    /// COCO with 75 % labels left).
    #[config(default = 0.6)]
    pub tau: f64,
    /// 0-based epoch index from which labels are corrected.
    #[config(default = 1)]
    pub change_epoch: usize,
    /// Logit margin of observed positives.
    #[config(default = 1.0)]
    pub margin: f64,
    /// Focusing exponent.
    #[config(default = 2.0)]
    pub gamma: f64,
    /// Sum (reference default) or mean over all entries.
    #[config(default = "Reduction::Sum")]
    pub reduction: Reduction,
}

impl SplcLossConfig {
    /// Checks the ranges.
    ///
    /// # Errors
    /// tau outside [0, 1], gamma negative, margin not finite.
    pub fn validate(&self) -> crate::Result<()> {
        check_range(NAME, "tau", self.tau, 0.0, 1.0, "in [0, 1]")?;
        check_range(NAME, "gamma", self.gamma, 0.0, f64::MAX, ">= 0")?;
        check_range(NAME, "margin", self.margin, f64::MIN, f64::MAX, "finite")
    }

    /// Builds the loss.
    ///
    /// # Errors
    /// See [`SplcLossConfig::validate`].
    pub fn init(&self) -> crate::Result<SplcLoss> {
        self.validate()?;
        Ok(SplcLoss {
            config: self.clone(),
        })
    }
}

/// SPLC; see the module docs.
#[derive(Clone, Debug)]
pub struct SplcLoss {
    config: SplcLossConfig,
}

impl<B: SigmoidBackend> StatelessLoss<B> for SplcLoss {
    fn reduction(&self) -> Reduction {
        self.config.reduction
    }

    fn elements(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
        ctx: &LossContext<'_>,
    ) -> crate::Result<Elements<B>> {
        let c = &self.config;
        let pos = positive_mask(&targets);
        let z = logits
            .clone()
            .mask_where(pos.clone(), logits.sub_scalar(c.margin));
        let p = sigmoid(z.clone());
        let mut t = pos.float();
        if ctx.epoch().saturating_sub(1) >= c.change_epoch {
            let pseudo = p.clone().detach().greater_elem(c.tau);
            t = t.mask_fill(pseudo, 1.0);
        }
        // pt = (1 - p) t + p (1 - t) = p + t - 2 p t
        let pt = p.clone() + t.clone() - p.mul(t.clone()).mul_scalar(2.0);
        let weight = if c.gamma == 2.0 {
            pt.clone() * pt
        } else {
            pt.powf_scalar(c.gamma)
        };
        // t ln s(z) + (1 - t) ln s(-z) = ln s(z) - (1 - t) z, since ln s(-z) = ln s(z) - z.
        let log_likelihood = log_sigmoid(z.clone()) - t.neg().add_scalar(1.0).mul(z);
        Ok(Elements::Loss(log_likelihood.mul(weight).neg()))
    }
}

const NAME: &str = <SplcLoss as Registered>::INFO.name;

crate::registration::register!(
    SplcLoss,
    config: SplcLossConfig = SplcLossConfig::new(),
    info: { name: "splc", summary: "self-paced loss correction (Zhang et al.)", reduction: "sum", needs: "epoch" },
    build: |config, _setup| config.init()?,
);

crate::stateless::stateless!(SplcLoss);

#[cfg(test)]
mod vector_tests {
    use super::SplcLossConfig;
    use crate::vectors::{asl_line_cases, number};

    /// Before and after the epoch that turns correction on.
    #[test]
    fn matches_the_splc_reference() {
        asl_line_cases("splc.json", |p| {
            assert_eq!(p["class"].as_str(), Some("SPLC"));
            Box::new(
                SplcLossConfig::new()
                    .with_tau(number(p, "tau"))
                    .with_change_epoch(p["change_epoch"].as_u64().unwrap() as usize)
                    .with_margin(number(p, "margin"))
                    .with_gamma(number(p, "gamma"))
                    .init()
                    .unwrap(),
            )
        });
    }
}
