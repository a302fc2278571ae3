//! Expected positive regularisation (EPR). Cole et al., CVPR 2021, arXiv:2106.09708.
//! Reference: `elijahcole/single-positive-multi-label` `losses.py`, `loss_epr`.
//!
//! ```text
//! M = -ln(p + 1e-5) on observed positives, 0 elsewhere
//! R = (mean_n sum_c p[n, c] - k_hat)^2 / C^2
//! loss = sum(M) / (N C) + R
//! ```
//! Unobserved entries get no direct term; `R` is added as it is (not divided by `N C`).
//! `k_hat` (`expected_num_pos`) per dataset in the reference: pascal 1.5, coco 2.9, nuswide 1.9,
//! cub 31.4. `C` is the dataset's class count, by default the batch's.

use burn::config::Config;
use burn::tensor::Tensor;
use mlml_ops::sigmoid;
use mlml_ops::SigmoidBackend;

use crate::common::{class_count, mean_all, neg_log, positive_mask, LossContext};
use crate::error::check_range;
use crate::registration::{agree_with_run, Preset, PresetValue, Registered};
use crate::stateless::{Elements, StatelessLoss};

/// Hyperparameters of [`EprLoss`].
#[derive(Config, Debug, PartialEq)]
pub struct EprLossConfig {
    /// Expected number of positives per image (k_hat).
    #[config(default = 1.5)]
    pub expected_num_pos: f64,
    /// Number of classes C; `None` takes the batch's.
    pub n_classes: Option<usize>,
}

impl EprLossConfig {
    /// Builds the loss.
    ///
    /// # Errors
    /// `expected_num_pos` negative.
    pub fn init(&self) -> crate::Result<EprLoss> {
        check_range(
            <EprLoss as Registered>::INFO.name,
            "expected_num_pos",
            self.expected_num_pos,
            0.0,
            f64::MAX,
            ">= 0",
        )?;
        Ok(EprLoss {
            config: self.clone(),
        })
    }
}

/// EPR; see the module docs.
#[derive(Clone, Debug)]
pub struct EprLoss {
    config: EprLossConfig,
}

/// `(mean_n sum_c p - k)^2 / C^2`: the expected-positive regulariser of EPR and ROLE.
pub(crate) fn expected_positive_penalty<B: SigmoidBackend>(
    p: Tensor<B, 2>,
    k_hat: f64,
    c: usize,
) -> Tensor<B, 1> {
    let deviation = p.sum_dim(1).mean().sub_scalar(k_hat);
    (deviation.clone() * deviation).div_scalar((c * c) as f64)
}

impl EprLoss {
    /// The two parts: the per-element matrix `M` `[batch, n_classes]` and the regulariser `R` `[1]`.
    pub fn forward_parts<B: SigmoidBackend>(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
    ) -> (Tensor<B, 2>, Tensor<B, 1>) {
        let c = class_count(self.config.n_classes, logits.dims());
        let p = sigmoid(logits);
        let matrix =
            neg_log(p.clone()).mask_where(positive_mask(&targets).bool_not(), p.zeros_like());
        (
            matrix,
            expected_positive_penalty(p, self.config.expected_num_pos, c),
        )
    }
}

impl<B: SigmoidBackend> StatelessLoss<B> for EprLoss {
    /// The matrix `M` alone: the regulariser is a term of the whole batch.
    fn elements(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
        _ctx: &LossContext<'_>,
    ) -> crate::Result<Elements<B>> {
        Ok(Elements::Loss(self.forward_parts(logits, targets).0))
    }

    /// `mean(M) + R`.
    fn batch_loss(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
        _ctx: &LossContext<'_>,
    ) -> crate::Result<Tensor<B, 1>> {
        let (matrix, penalty) = self.forward_parts(logits, targets);
        Ok(mean_all(matrix) + penalty)
    }
}

/// `k_hat`, the expected number of positives per image, per dataset (shared with ROLE). The
/// four image sets: Cole et al.'s `train.py` lookup (`elijahcole/single-positive-multi-label@89152d52ba59`).
/// The embedded sets: the mean positives per row of their full training labels (as each
/// dataset's README under `datasets/` records), which is what Cole's values are for theirs.
pub(crate) fn expected_positives(preset: Preset) -> PresetValue {
    const COLE: &str = "Cole et al., elijahcole/single-positive-multi-label@89152d52ba59 train.py";
    const EMBEDDED: &str = "mean positives per row of the full training labels";
    let (value, source) = match preset {
        Preset::Voc => (1.5, COLE),
        Preset::Coco => (2.9, COLE),
        Preset::Nuswide => (1.9, COLE),
        Preset::Cub => (31.4, COLE),
        Preset::Yeast => (4.228, EMBEDDED),
        Preset::Scene => (1.062, EMBEDDED),
        Preset::Fashion => (2.263, EMBEDDED),
    };
    PresetValue::new("expected_num_pos", value, source)
}

crate::registration::register!(
    EprLoss,
    config: EprLossConfig = EprLossConfig::new(),
    info: { name: "epr", summary: "expected positive regularisation (Cole et al.)", reduction: "mean + R", needs: "classes" },
    preset: |preset| vec![expected_positives(preset)],
    build: |config, setup| {
        let c = agree_with_run(Self::INFO.name, "n_classes", config.n_classes, setup.n_classes(), "classes")?;
        config.with_n_classes(Some(c)).init()?
    },
);

crate::stateless::stateless!(EprLoss);

#[cfg(test)]
mod vector_tests {
    use super::EprLossConfig;
    use crate::vectors::{number, single_positive_cases, Labels};

    #[test]
    fn matches_the_single_positive_reference() {
        single_positive_cases("epr.json", Labels::Observed, |h| {
            assert_eq!(h["loss"].as_str(), Some("epr"));
            Box::new(
                EprLossConfig::new()
                    .with_expected_num_pos(number(h, "expected_num_pos"))
                    .with_n_classes(Some(h["num_classes"].as_u64().unwrap() as usize))
                    .init()
                    .unwrap(),
            )
        });
    }
}
