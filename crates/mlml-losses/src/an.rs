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

use crate::common::{log_likelihood, mean_all, neg_log, positive_mask, LossContext, StatelessLoss};
use crate::error::check_range;
use crate::registration::{NoHyperparameters, Registered};

/// Assume-negative loss; see the module docs. No hyperparameter.
#[derive(Clone, Debug, Default)]
pub struct AssumeNegativeLoss;

impl AssumeNegativeLoss {
    /// Per-element loss `[batch, n_classes]`.
    pub fn forward_elementwise<B: SigmoidBackend>(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
    ) -> Tensor<B, 2> {
        Self::negated(logits, &targets).neg()
    }

    /// The per-element loss negated; the batch loss negates its mean.
    fn negated<B: SigmoidBackend>(logits: Tensor<B, 2>, targets: &Tensor<B, 2>) -> Tensor<B, 2> {
        log_likelihood(sigmoid(logits), positive_mask(targets))
    }
}

impl<B: SigmoidBackend> StatelessLoss<B> for AssumeNegativeLoss {
    fn name(&self) -> &'static str {
        <Self as Registered>::INFO.name
    }

    fn batch_loss(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
        _ctx: &LossContext<'_>,
    ) -> crate::Result<Tensor<B, 1>> {
        Ok(mean_all(Self::negated(logits, &targets)).neg())
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

impl AnLsLoss {
    /// Per-element loss `[batch, n_classes]`.
    pub fn forward_elementwise<B: SigmoidBackend>(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
    ) -> Tensor<B, 2> {
        let e = self.ls_coef;
        let p = sigmoid(logits);
        let log_p = neg_log(p.clone());
        let log_not_p = neg_log(p.neg().add_scalar(1.0));
        let positive = log_p.clone().mul_scalar(1.0 - e) + log_not_p.clone().mul_scalar(e);
        let negative = log_not_p.mul_scalar(1.0 - e) + log_p.mul_scalar(e);
        negative.mask_where(positive_mask(&targets), positive)
    }
}

impl<B: SigmoidBackend> StatelessLoss<B> for AnLsLoss {
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

crate::common::stateless!(AssumeNegativeLoss, AnLsLoss);
