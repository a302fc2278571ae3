//! Weak assume negative (WAN). Cole et al., CVPR 2021, arXiv:2106.09708. Reference:
//! `elijahcole/single-positive-multi-label` `losses.py`, `loss_wan`.
//!
//! ```text
//! positive: -ln(p + 1e-5)    unobserved: -ln(1 - p + 1e-5) / (C - 1)    loss = sum / (N C)
//! ```
//! `C` is the dataset's class count (`num_classes`), by default the batch's column count.
//! An observed negative (which the single-positive protocol never has; the reference gives it
//! 0) is a known negative here and gets the full weight `-ln(1 - p + 1e-5)`.

use burn::config::Config;
use burn::tensor::Tensor;
use mlml_ops::sigmoid;
use mlml_ops::SigmoidBackend;

use crate::common::{class_count, log_likelihood, positive_mask, unobserved_mask, LossContext};
use crate::error::LossError;
use crate::registration::{agree_with_run, Registered};
use crate::stateless::{Elements, StatelessLoss};

/// Hyperparameters of [`WanLoss`].
#[derive(Config, Debug, PartialEq)]
pub struct WanLossConfig {
    /// Number of classes C of the dataset (gamma = 1 / (C - 1)); `None` takes the batch's.
    pub n_classes: Option<usize>,
}

impl WanLossConfig {
    /// Builds the loss.
    ///
    /// # Errors
    /// `n_classes` below 2.
    pub fn init(&self) -> crate::Result<WanLoss> {
        if let Some(c) = self.n_classes.filter(|c| *c < 2) {
            return Err(LossError::OutOfRange {
                loss: <WanLoss as Registered>::INFO.name,
                name: "n_classes",
                expected: ">= 2",
                value: c.to_string(),
            });
        }
        Ok(WanLoss {
            n_classes: self.n_classes,
        })
    }
}

/// WAN; see the module docs.
#[derive(Clone, Debug)]
pub struct WanLoss {
    n_classes: Option<usize>,
}

impl<B: SigmoidBackend> StatelessLoss<B> for WanLoss {
    /// Negated, from one log of the selected argument (exact: `-(a / b) = (-a) / b`).
    fn elements(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
        _ctx: &LossContext<'_>,
    ) -> crate::Result<Elements<B>> {
        let c = class_count(self.n_classes, logits.dims());
        let log = log_likelihood(sigmoid(logits), positive_mask(&targets));
        let observed = unobserved_mask(&targets).bool_not();
        Ok(Elements::Negated(
            log.clone()
                .div_scalar((c - 1) as f64)
                .mask_where(observed, log),
        ))
    }
}

crate::registration::register!(
    WanLoss,
    config: WanLossConfig = WanLossConfig::new(),
    info: { name: "wan", summary: "weak assume negative (Cole et al.)", reduction: "mean", needs: "classes" },
    build: |config, setup| {
        let c = agree_with_run(Self::INFO.name, "n_classes", config.n_classes, setup.n_classes(), "classes")?;
        config.with_n_classes(Some(c)).init()?
    },
);

crate::stateless::stateless!(WanLoss);

#[cfg(test)]
mod vector_tests {
    use super::WanLossConfig;
    use crate::vectors::{single_positive_cases, Labels};

    #[test]
    fn matches_the_single_positive_reference() {
        single_positive_cases("wan.json", Labels::Observed, |h| {
            assert_eq!(h["loss"].as_str(), Some("wan"));
            Box::new(
                WanLossConfig::new()
                    .with_n_classes(Some(h["num_classes"].as_u64().unwrap() as usize))
                    .init()
                    .unwrap(),
            )
        });
    }
}
