//! Generalised robust loss (GR Loss). Chen et al., "Unlocking the Power of Multi-Label Learning
//! with Missing Labels via ...", IJCAI 2024, arXiv:2405.03501. Reference: `yan4xi1/GRLoss`
//! `losses.py` `GR_loss`, `models.py` `KFunction` / `VFunction`, schedules in `train.py`.
//!
//! ```text
//! p = sigmoid(z),  p' = p detached
//! K = 1 / (1 + exp(-(w p' + b)))            soft pseudo-label
//! V = exp(-((p' - mu) / sigma)^2 / 2)       weight
//! positive:    -ln(p + 1e-7)
//! unobserved:  V [ K (1 - p^q2) / q2 + (1 - K) (1 - (1 - p)^q3) / q3 ]
//! observed negative: 0 (the reference fills only the two masks)
//! loss = mean over all B C entries
//! ```
//! Schedules (1-based epoch e, T epochs, n = `linear_init`), linear and recomputed per epoch:
//! `w(e) = w0 + (wT - w0) max(e - n - 1, 0) / (T - n)` (same for b) and
//! `mu(e) = mu0 + (muT - mu0) max(e - n, 0) / (T - n)` (same for sigma): note the reference's
//! off-by-one between the two, so wT and bT are never reached. Defaults are `config.py`'s:
//! beta = [w0, wT, b0, bT] = [0, 2, -2, -2], alpha = [mu0, sigma0, muT, sigmaT] = [0.5, 2, 0.8, 0.5]
//! (interleaved as in the reference), q2 = 0.01, q3 = 1, n = 0; T is the run's epoch count (the
//! reference's default run has 8), so the schedules end on the run's last epoch and a later
//! epoch is an error rather than an extrapolation.
//!
//! Deliberate difference: the reference's `p^q2` has an infinite derivative where `sigmoid`
//! underflows to 0 (logits below about -89 in f32) and its gradient becomes NaN; we floor `p` at
//! 1e-30 inside `p^q2` only, which changes no value above that and keeps gradients finite.

use burn::config::Config;
use burn::tensor::Tensor;
use mlml_ops::sigmoid;
use mlml_ops::SigmoidBackend;

use crate::common::{positive_mask, unobserved_mask, LossContext};
use crate::error::{check_range, LossError};
use crate::registration::{agree_with_run, Registered};
use crate::stateless::{Elements, StatelessLoss};

/// Hyperparameters of [`GrLoss`].
#[derive(Config, Debug, PartialEq)]
pub struct GrLossConfig {
    /// `[w0, wT, b0, bT]`: start and end of the pseudo-label function's slope and offset.
    #[config(default = "[0.0, 2.0, -2.0, -2.0]")]
    pub beta: [f64; 4],
    /// `[mu0, sigma0, muT, sigmaT]`: start and end of the weight function (reference order).
    #[config(default = "[0.5, 2.0, 0.8, 0.5]")]
    pub alpha: [f64; 4],
    /// Exponent q2 of the positive-side surrogate.
    #[config(default = 0.01)]
    pub q2: f64,
    /// Exponent q3 of the negative-side surrogate.
    #[config(default = 1.0)]
    pub q3: f64,
    /// Epochs of the run (T): `None` takes the run's; a value that differs from the run's is
    /// an error. The reference's default is 8.
    pub num_epochs: Option<usize>,
    /// Epochs of linear-probe warm-up (n), during which the schedules hold their start values.
    #[config(default = 0)]
    pub linear_init: usize,
}

impl GrLossConfig {
    /// Builds the loss.
    ///
    /// # Errors
    /// q2 or q3 not in (0, 1], sigmas not positive, `linear_init >= T`, or a configured
    /// `num_epochs` other than the run's `epochs`.
    pub fn init(&self, epochs: usize) -> crate::Result<GrLoss> {
        let epochs = agree_with_run(NAME, "num_epochs", self.num_epochs, epochs, "epochs")?;
        check_range(NAME, "q2", self.q2, f64::MIN_POSITIVE, 1.0, "in (0, 1]")?;
        check_range(NAME, "q3", self.q3, f64::MIN_POSITIVE, 1.0, "in (0, 1]")?;
        check_range(
            NAME,
            "alpha[1] (sigma0)",
            self.alpha[1],
            f64::MIN_POSITIVE,
            f64::MAX,
            "> 0",
        )?;
        check_range(
            NAME,
            "alpha[3] (sigmaT)",
            self.alpha[3],
            f64::MIN_POSITIVE,
            f64::MAX,
            "> 0",
        )?;
        if self.linear_init >= epochs {
            return Err(LossError::OutOfRange {
                loss: NAME,
                name: "linear_init",
                expected: "below the run's epochs",
                value: self.linear_init.to_string(),
            });
        }
        Ok(GrLoss {
            config: self.clone().with_num_epochs(Some(epochs)),
            epochs,
        })
    }
}

/// The schedule's values for one epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GrSchedule {
    /// Slope of K.
    pub w: f64,
    /// Offset of K.
    pub b: f64,
    /// Centre of V.
    pub mu: f64,
    /// Width of V.
    pub sigma: f64,
}

/// GR Loss; see the module docs.
#[derive(Clone, Debug)]
pub struct GrLoss {
    config: GrLossConfig,
    epochs: usize,
}

impl GrLoss {
    /// The schedule at a 1-based epoch.
    pub fn schedule(&self, epoch: usize) -> GrSchedule {
        let c = &self.config;
        let n = c.linear_init as f64;
        let span = (self.epochs - c.linear_init) as f64;
        let e = epoch as f64;
        let beta_step = (e - n - 1.0).max(0.0) / span;
        let alpha_step = (e - n).max(0.0) / span;
        GrSchedule {
            w: c.beta[0] + (c.beta[1] - c.beta[0]) * beta_step,
            b: c.beta[2] + (c.beta[3] - c.beta[2]) * beta_step,
            mu: c.alpha[0] + (c.alpha[2] - c.alpha[0]) * alpha_step,
            sigma: c.alpha[1] + (c.alpha[3] - c.alpha[1]) * alpha_step,
        }
    }

    /// Per-element loss `[batch, n_classes]` with the schedule of `epoch`: any epoch, including
    /// the 0 and the epochs past the run that a [`LossContext`] refuses.
    pub fn elements_at_epoch<B: SigmoidBackend>(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
        epoch: usize,
    ) -> Tensor<B, 2> {
        let s = self.schedule(epoch);
        let (q2, q3) = (self.config.q2, self.config.q3);
        // The reference multiplies f32 tensors by Python floats, which rounds them to f32 first.
        let f = |x: f64| x as f32 as f64;
        let p = sigmoid(logits);
        let detached = p.clone().detach();
        let k = sigmoid(detached.clone().mul_scalar(f(s.w)).add_scalar(f(s.b)));
        let z = detached.sub_scalar(f(s.mu)).div_scalar(f(s.sigma));
        let v = (z.clone() * z).mul_scalar(-0.5).exp();
        let positive = p.clone().add_scalar(1e-7).log().neg();
        let l2 = p
            .clone()
            .clamp_min(1e-30)
            .powf_scalar(q2)
            .neg()
            .add_scalar(1.0)
            .div_scalar(q2);
        let not_p = p.neg().add_scalar(1.0);
        let not_p_q3 = if q3 == 1.0 {
            not_p
        } else {
            not_p.powf_scalar(q3)
        };
        let l3 = not_p_q3.neg().add_scalar(1.0).div_scalar(q3);
        let unobserved = v * (k.clone() * l2 + k.neg().add_scalar(1.0) * l3);
        let zero = positive.zeros_like();
        zero.mask_where(unobserved_mask(&targets), unobserved)
            .mask_where(positive_mask(&targets), positive)
    }
}

impl<B: SigmoidBackend> StatelessLoss<B> for GrLoss {
    fn elements(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
        ctx: &LossContext<'_>,
    ) -> crate::Result<Elements<B>> {
        if ctx.epoch() > self.epochs {
            return Err(LossError::Epoch {
                message: format!(
                    "{NAME}: epoch {} is past the run's {} epochs its schedules were built for",
                    ctx.epoch(),
                    self.epochs
                ),
            });
        }
        Ok(Elements::Loss(self.elements_at_epoch(
            logits,
            targets,
            ctx.epoch(),
        )))
    }
}

const NAME: &str = <GrLoss as Registered>::INFO.name;

crate::registration::register!(
    GrLoss,
    config: GrLossConfig = GrLossConfig::new(),
    info: { name: "gr", summary: "generalised robust loss with schedules (Chen et al.)", reduction: "mean", needs: "epoch, epochs of the run" },
    build: |config, setup| config.init(setup.epochs)?,
);

crate::stateless::stateless!(GrLoss);

#[cfg(test)]
mod vector_tests {
    use super::GrLossConfig;
    use crate::vectors::{all_rows, check, load, number, tensor};
    use crate::{LossContext, MultiLabelLoss};

    /// The four schedules at each case's epoch, then the loss and its gradient.
    #[test]
    fn schedules_and_values_match_chen_et_al() {
        let v = load("gr_loss.json");
        let logits = tensor(&v["inputs"]["logits"]);
        let targets = tensor(&v["inputs"]["observed_labels"]);
        let rows = all_rows(logits.dims()[0]);
        for case in v["cases"].as_array().unwrap() {
            let h = &case["hyperparameters"];
            let four = |key: &str| -> [f64; 4] {
                let a: Vec<f64> = h[key]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect();
                [a[0], a[1], a[2], a[3]]
            };
            let q = h["q2q3"].as_array().unwrap();
            let mut loss = GrLossConfig::new()
                .with_beta(four("beta"))
                .with_alpha(four("alpha"))
                .with_q2(q[0].as_f64().unwrap())
                .with_q3(q[1].as_f64().unwrap())
                .with_linear_init(h["linear_init"].as_u64().unwrap() as usize)
                .init(h["num_epochs"].as_u64().unwrap() as usize)
                .unwrap();
            let epoch = h["epoch_1_based"].as_u64().unwrap() as usize;
            let s = loss.schedule(epoch);
            for (name, got) in [("w", s.w), ("b", s.b), ("mu", s.mu), ("sigma", s.sigma)] {
                assert!(
                    (got - number(h, name)).abs() < 1e-12,
                    "{}: {name} {got}",
                    case["id"]
                );
            }
            check(
                &format!("gr {}", case["id"]),
                logits.clone(),
                &case["float32"],
                |z| {
                    if epoch == 0 {
                        // The vector's "epoch 0" evaluates the formula at a schedule no run reaches
                        // (mlml's contexts refuse epoch 0), so it goes to the elementwise form.
                        loss.elements_at_epoch(z, targets.clone(), 0).mean()
                    } else {
                        loss.forward(
                            z,
                            targets.clone(),
                            &LossContext::train(epoch, &rows).unwrap(),
                        )
                        .unwrap()
                    }
                },
            );
        }
    }
}
