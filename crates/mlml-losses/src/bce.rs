//! Binary cross-entropy on fully observed labels, as the single-positive line computes it.
//! Cole et al., "Multi-Label Learning from Single Positive Labels", CVPR 2021, arXiv:2106.09708.
//! Reference: `elijahcole/single-positive-multi-label` `losses.py`, `loss_bce`.
//!
//! ```text
//! positive: -ln(p + 1e-5)      observed negative: -ln(1 - p + 1e-5)      unobserved: 0
//! loss = sum / (N C)
//! ```
//! The reference trains it on the clean (full) labels, where there is no unobserved entry; on a
//! partial set our BCE leaves unobserved entries out (they add 0 but stay in the `N C`
//! denominator). On a fully observed set it equals [`crate::AssumeNegativeLoss`].

use burn::tensor::Tensor;
use mlml_ops::sigmoid;
use mlml_ops::SigmoidBackend;

use crate::common::{log_likelihood, positive_mask, unobserved_mask, LossContext};
use crate::registration::NoHyperparameters;
use crate::stateless::{Elements, StatelessLoss};

/// Full-label BCE; see the module docs. No hyperparameter.
#[derive(Clone, Debug, Default)]
pub struct BceLoss;

impl<B: SigmoidBackend> StatelessLoss<B> for BceLoss {
    fn elements(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
        _ctx: &LossContext<'_>,
    ) -> crate::Result<Elements<B>> {
        Ok(Elements::Negated(
            log_likelihood(sigmoid(logits), positive_mask(&targets))
                .mask_fill(unobserved_mask(&targets), 0.0),
        ))
    }
}

crate::registration::register!(
    BceLoss,
    config: NoHyperparameters = NoHyperparameters {},
    info: { name: "bce", summary: "BCE on fully observed labels (Cole et al.)", reduction: "mean", needs: "-" },
    build: |_config, _setup| BceLoss,
);

crate::stateless::stateless!(BceLoss);

#[cfg(test)]
mod vector_tests {
    use super::BceLoss;
    use crate::vectors::{single_positive_cases, Labels};

    /// Cole et al.'s full-label BCE, on the true labels.
    #[test]
    fn matches_the_single_positive_reference() {
        single_positive_cases("bce.json", Labels::Full, |h| {
            assert_eq!(h["loss"].as_str(), Some("bce"));
            Box::new(BceLoss)
        });
    }
}
