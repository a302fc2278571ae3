//! Asymmetric loss (ASL), and the BCE and Focal of the ASL / Hill / SPLC training scripts.
//! Ben-Baruch, Ridnik et al., "Asymmetric Loss for Multi-Label Classification", ICCV 2021,
//! arXiv:2009.14119. Reference: `Alibaba-MIIL/ASL` `src/loss_functions/losses.py`,
//! class `AsymmetricLoss` (copied verbatim in `xinyu1205/robust-loss-mlml`).
//!
//! ```text
//! p = sigmoid(x),  q = min(1 - p + clip, 1)            (q = 1 - p when clip = 0)
//! L = -sum[ y w+ ln(max(p, eps)) + (1 - y) w- ln(max(q, eps)) ]
//! w+ = (1 - p)^gamma_pos,   w- = (1 - q)^gamma_neg = max(p - clip, 0)^gamma_neg
//! ```
//! - Reduction: a **sum** over batch and classes, as the reference returns `-loss.sum()`.
//! - `1 - p` is computed literally (not `sigmoid(-x)`) and logs are floored at `eps = 1e-8`, with
//!   PyTorch's clamp gradient (zero strictly below the floor); BCE therefore saturates at
//!   18.42 and has zero gradient there, as in the reference.
//! - The focusing weights are detached from the graph (`disable_torch_grad_focal_loss = True`,
//!   the reference default since 2021-03); `detach_focal = false` gives the gradient of
//!   `AsymmetricLossOptimized`. When both gammas are 0 the weights are skipped (plain BCE).
//! - Targets: 1 is a positive; 0 and -1 are negatives, as in the reference whose 0/1 targets
//!   cannot tell an unobserved label from a negative.
//!
//! Registry names: `asl` (train.py's `Asl`: gamma_neg 4, gamma_pos 0, clip 0.05), `focal`
//! (gammas 2, clip 0) and `asl-bce` (gammas 0, clip 0).

use burn::config::Config;
use burn::tensor::Tensor;
use mlml_ops::sigmoid;
use mlml_ops::SigmoidBackend;

use crate::common::{positive_mask, LossContext};
use crate::error::check_range;
use crate::reduction::Reduction;
use crate::registration::Registered;
use crate::stateless::{Elements, StatelessLoss};

/// Hyperparameters of [`AsymmetricLoss`]. Defaults are the class constructor's.
#[derive(Config, Debug, PartialEq)]
pub struct AsymmetricLossConfig {
    /// Focusing exponent of negatives (gamma-).
    #[config(default = 4.0)]
    pub gamma_neg: f64,
    /// Focusing exponent of positives (gamma+).
    #[config(default = 1.0)]
    pub gamma_pos: f64,
    /// Probability margin shifted off negatives (m); 0 disables it.
    #[config(default = 0.05)]
    pub clip: f64,
    /// Floor of the probabilities inside the logs.
    #[config(default = 1e-8)]
    pub eps: f64,
    /// Treat the focusing weights as constants in backprop (the reference default).
    #[config(default = true)]
    pub detach_focal: bool,
}

impl AsymmetricLossConfig {
    /// train.py `--loss Asl`: gamma_neg 4, gamma_pos 0, clip 0.05.
    pub fn asl() -> Self {
        Self::new().with_gamma_pos(0.0)
    }

    /// train.py `--loss Focal`: gammas 2, no clip.
    pub fn focal() -> Self {
        Self::new()
            .with_gamma_neg(2.0)
            .with_gamma_pos(2.0)
            .with_clip(0.0)
    }

    /// train.py `--loss BCE`: gammas 0, no clip (still floored at eps).
    pub fn bce() -> Self {
        Self::new()
            .with_gamma_neg(0.0)
            .with_gamma_pos(0.0)
            .with_clip(0.0)
    }

    /// Checks the ranges.
    ///
    /// # Errors
    /// Negative gammas, clip outside [0, 1), eps outside (0, 1).
    pub fn validate(&self) -> crate::Result<()> {
        self.check(<Asl as Registered>::INFO.name)
    }

    fn check(&self, loss: &'static str) -> crate::Result<()> {
        check_range(loss, "gamma_neg", self.gamma_neg, 0.0, f64::MAX, ">= 0")?;
        check_range(loss, "gamma_pos", self.gamma_pos, 0.0, f64::MAX, ">= 0")?;
        check_range(loss, "clip", self.clip, 0.0, 0.999_999, "in [0, 1)")?;
        check_range(
            loss,
            "eps",
            self.eps,
            f64::MIN_POSITIVE,
            0.999_999,
            "in (0, 1)",
        )
    }

    /// Builds the loss under a registry name.
    ///
    /// # Errors
    /// See [`AsymmetricLossConfig::validate`].
    pub fn init(&self, name: &'static str) -> crate::Result<AsymmetricLoss> {
        self.check(name)?;
        Ok(AsymmetricLoss {
            config: self.clone(),
            name,
        })
    }
}

/// The asymmetric loss; see the module docs.
#[derive(Clone, Debug)]
pub struct AsymmetricLoss {
    config: AsymmetricLossConfig,
    name: &'static str,
}

/// `base^gamma` with `x^0 = 1` and a zero gradient for gamma 0, as `torch.pow` with a tensor
/// exponent behaves.
fn power<B: SigmoidBackend>(base: Tensor<B, 2>, gamma: f64) -> Tensor<B, 2> {
    if gamma == 0.0 {
        base.ones_like()
    } else {
        base.powf_scalar(gamma)
    }
}

impl<B: SigmoidBackend> StatelessLoss<B> for AsymmetricLoss {
    fn reduction(&self) -> Reduction {
        Reduction::Sum
    }

    /// The reference's per-element `loss` before its final negation.
    fn elements(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
        _ctx: &LossContext<'_>,
    ) -> crate::Result<Elements<B>> {
        let c = &self.config;
        let pos = positive_mask(&targets);
        let p = sigmoid(logits);
        let mut q = p.clone().neg().add_scalar(1.0);
        if c.clip > 0.0 {
            q = q.add_scalar(c.clip).clamp_max(1.0);
        }
        // `y ln(..) + (1 - y) ln(..)` of the reference, as a selection of the log's argument:
        // both logs are finite (floored at eps), so the values and gradients are the same, with
        // one floor and one log pass instead of two each.
        let mut loss = q
            .clone()
            .mask_where(pos.clone(), p.clone())
            .clamp_min(c.eps)
            .log();
        if c.gamma_neg > 0.0 || c.gamma_pos > 0.0 {
            let w_pos = power(p.neg().add_scalar(1.0), c.gamma_pos);
            let w_neg = power(q.neg().add_scalar(1.0), c.gamma_neg);
            let mut w = w_neg.mask_where(pos, w_pos);
            if c.detach_focal {
                w = w.detach();
            }
            loss = loss * w;
        }
        Ok(Elements::Negated(loss))
    }
}

macro_rules! asl_entry {
    ($(#[$doc:meta])* $marker:ident, $name:literal, $summary:literal, $defaults:expr) => {
        $(#[$doc])*
        pub(crate) struct $marker;

        crate::registration::register!(
            $marker,
            config: AsymmetricLossConfig = $defaults,
            info: { name: $name, summary: $summary, reduction: "sum", needs: "-" },
            build: |config, _setup| config.init(<$marker as Registered>::INFO.name)?,
        );
    };
}

asl_entry!(
    /// `asl-bce`: the ASL scripts' BCE.
    AslBce,
    "asl-bce",
    "BCE of the ASL/Hill scripts (eps-floored logs)",
    AsymmetricLossConfig::bce()
);
asl_entry!(
    /// `focal`: the ASL scripts' focal loss.
    Focal,
    "focal",
    "focal loss of the ASL/Hill scripts (detached weight)",
    AsymmetricLossConfig::focal()
);
asl_entry!(
    /// `asl`: train.py's `Asl`.
    Asl,
    "asl",
    "asymmetric loss (Ben-Baruch et al.)",
    AsymmetricLossConfig::asl()
);

crate::stateless::stateless!(AsymmetricLoss, name = |loss| loss.name);

#[cfg(test)]
mod vector_tests {
    use super::AsymmetricLossConfig;
    use crate::vectors::{asl_line_cases, number};

    /// The ASL scripts' BCE, focal loss and ASL (both of its classes).
    #[test]
    fn bce_focal_and_asl_match_the_asl_scripts() {
        for file in ["bce_asl.json", "focal_asl.json", "asl.json"] {
            asl_line_cases(file, |p| {
                let class = p["class"].as_str();
                assert!(
                    matches!(class, Some("AsymmetricLoss" | "AsymmetricLossOptimized")),
                    "{file}: class {class:?}"
                );
                Box::new(
                    AsymmetricLossConfig::new()
                        .with_gamma_neg(number(p, "gamma_neg"))
                        .with_gamma_pos(number(p, "gamma_pos"))
                        .with_clip(number(p, "clip"))
                        .with_eps(number(p, "eps"))
                        .with_detach_focal(p["disable_torch_grad_focal_loss"].as_bool().unwrap())
                        .init("asl")
                        .unwrap(),
                )
            });
        }
    }
}
