//! Assume negative (AN), and AN with label smoothing (AN-LS). Cole et al., CVPR 2021,
//! arXiv:2106.09708. Reference: `elijahcole/single-positive-multi-label` `losses.py`,
//! `loss_an` and `loss_an_ls` (the same in `Correr-Zhou/SPML-AckTheUnknown`).
//!
//! ```text
//! AN:     positive -ln(p + 1e-5);   otherwise -ln(1 - p + 1e-5)
//! AN-LS:  positive (1-e)(-ln(p + 1e-5)) + e(-ln(1 - p + 1e-5))
//!         otherwise (1-e)(-ln(1 - p + 1e-5)) + e(-ln(p + 1e-5))       e = ls_coef = 0.1
//! loss = sum / (N C)
//! ```
//! Every entry that is not an observed positive (unobserved or observed negative) is assumed
//! negative. The epsilon sits inside the log, exactly as the reference's `neg_log`.

use burn::config::Config;
use burn::tensor::Tensor;
use mlml_ops::sigmoid;
use mlml_ops::SigmoidBackend;

use crate::common::{log_likelihood, neg_log, positive_mask, LossContext};
use crate::error::check_range;
use crate::registration::{NoHyperparameters, Registered};
use crate::stateless::{Elements, StatelessLoss};

/// Assume-negative loss; see the module docs. No hyperparameter.
#[derive(Clone, Debug, Default)]
pub struct AssumeNegativeLoss;

impl<B: SigmoidBackend> StatelessLoss<B> for AssumeNegativeLoss {
    fn elements(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
        _ctx: &LossContext<'_>,
    ) -> crate::Result<Elements<B>> {
        Ok(Elements::Negated(log_likelihood(
            sigmoid(logits),
            positive_mask(&targets),
        )))
    }
}

/// Hyperparameters of [`AnLsLoss`].
#[derive(Config, Debug, PartialEq)]
pub struct AnLsLossConfig {
    /// Label-smoothing coefficient e (`ls_coef`).
    #[config(default = 0.1)]
    pub ls_coef: f64,
}

impl AnLsLossConfig {
    /// Builds the loss.
    ///
    /// # Errors
    /// `ls_coef` outside [0, 1].
    pub fn init(&self) -> crate::Result<AnLsLoss> {
        check_range(
            <AnLsLoss as Registered>::INFO.name,
            "ls_coef",
            self.ls_coef,
            0.0,
            1.0,
            "in [0, 1]",
        )?;
        Ok(AnLsLoss {
            ls_coef: self.ls_coef,
        })
    }
}

/// AN with symmetric label smoothing; see the module docs.
#[derive(Clone, Debug)]
pub struct AnLsLoss {
    ls_coef: f64,
}

impl<B: SigmoidBackend> StatelessLoss<B> for AnLsLoss {
    fn elements(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
        _ctx: &LossContext<'_>,
    ) -> crate::Result<Elements<B>> {
        let e = self.ls_coef;
        let p = sigmoid(logits);
        let log_p = neg_log(p.clone());
        let log_not_p = neg_log(p.neg().add_scalar(1.0));
        let positive = log_p.clone().mul_scalar(1.0 - e) + log_not_p.clone().mul_scalar(e);
        let negative = log_not_p.mul_scalar(1.0 - e) + log_p.mul_scalar(e);
        Ok(Elements::Loss(
            negative.mask_where(positive_mask(&targets), positive),
        ))
    }
}

crate::registration::register!(
    AssumeNegativeLoss,
    config: NoHyperparameters = NoHyperparameters {},
    info: { name: "an", summary: "assume negative (Cole et al.)", reduction: "mean", needs: "-" },
    build: |_config, _setup| AssumeNegativeLoss,
);

crate::registration::register!(
    AnLsLoss,
    config: AnLsLossConfig = AnLsLossConfig::new(),
    info: { name: "an-ls", summary: "assume negative with label smoothing (Cole et al.)", reduction: "mean", needs: "-" },
    build: |config, _setup| config.init()?,
);

crate::stateless::stateless!(AssumeNegativeLoss);
crate::stateless::stateless!(AnLsLoss);

#[cfg(test)]
mod vector_tests {
    use super::{AnLsLossConfig, AssumeNegativeLoss};
    use crate::vectors::{number, single_positive_cases, Labels};

    #[test]
    fn an_matches_the_single_positive_reference() {
        single_positive_cases("an.json", Labels::Observed, |h| {
            assert_eq!(h["loss"].as_str(), Some("an"));
            Box::new(AssumeNegativeLoss)
        });
    }

    #[test]
    fn an_ls_matches_the_single_positive_reference() {
        single_positive_cases("an_ls.json", Labels::Observed, |h| {
            assert_eq!(h["loss"].as_str(), Some("an_ls"));
            Box::new(
                AnLsLossConfig::new()
                    .with_ls_coef(number(h, "ls_coef"))
                    .init()
                    .unwrap(),
            )
        });
    }
}
