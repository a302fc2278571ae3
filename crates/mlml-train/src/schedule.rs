//! PyTorch's `OneCycleLR` with momentum cycling, on burn's `LrScheduler`.

use burn::config::Config;
use burn::optim::lr_scheduler::LrScheduler;
use burn::tensor::backend::Backend;

use crate::optim::Beta1;

/// Hyperparameters of [`OneCycle`]; the defaults are `OneCycleLR`'s.
#[derive(Config, Debug, PartialEq)]
pub struct OneCycleConfig {
    /// Peak learning rate.
    pub max_lr: f64,
    /// Steps the schedule is built for (epochs x steps per epoch); a run may stop earlier.
    pub total_steps: usize,
    /// Fraction of the steps spent warming up.
    #[config(default = 0.3)]
    pub pct_start: f64,
    /// Start learning rate = `max_lr / div_factor`.
    #[config(default = 25.0)]
    pub div_factor: f64,
    /// End learning rate = start / `final_div_factor`.
    #[config(default = 1e4)]
    pub final_div_factor: f64,
    /// Beta1 at the peak learning rate.
    #[config(default = 0.85)]
    pub base_momentum: f64,
    /// Beta1 at the start and the end.
    #[config(default = 0.95)]
    pub max_momentum: f64,
    /// Whether beta1 cycles (PyTorch's `cycle_momentum`).
    #[config(default = true)]
    pub cycle_momentum: bool,
}

impl OneCycleConfig {
    /// Checks that every step's learning rate is a number: the warm-up and the annealing
    /// phases must each span at least one step (PyTorch divides by zero otherwise).
    ///
    /// # Errors
    /// What is out of range, in words.
    pub fn check(&self) -> std::result::Result<(), String> {
        let warm_end = self.pct_start * self.total_steps as f64 - 1.0;
        let last = self.total_steps as f64 - 1.0;
        if !(self.max_lr.is_finite() && self.max_lr > 0.0) {
            return Err(format!("max_lr must be positive, got {}", self.max_lr));
        }
        if !(warm_end > 0.0 && last > warm_end) {
            return Err(format!(
                "pct_start {} of {} steps gives a warm-up or an annealing phase of no step, and a NaN learning rate; use more steps (epochs, smaller batches) or a pct_start with pct_start x steps in (1, steps)",
                self.pct_start, self.total_steps
            ));
        }
        Ok(())
    }

    /// The schedule; with `beta_1` it sets the optimizer's beta1 at every step.
    pub fn init(&self, beta_1: Option<Beta1>) -> OneCycle {
        let schedule = OneCycle {
            config: self.clone(),
            beta_1,
            step: 0,
        };
        schedule.apply_momentum();
        schedule
    }
}

/// See the crate docs. `step()` returns the learning rate of the coming optimizer step and moves
/// the schedule on; beta1 is set for that same step.
#[derive(Clone, Debug)]
pub struct OneCycle {
    config: OneCycleConfig,
    beta_1: Option<Beta1>,
    step: usize,
}

fn cosine(start: f64, end: f64, pct: f64) -> f64 {
    end + (start - end) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0)
}

impl OneCycle {
    /// `(learning rate, beta1)` at a 0-based step, as `OneCycleLR` computes them.
    pub fn at(&self, step: usize) -> (f64, f64) {
        let c = &self.config;
        let initial = c.max_lr / c.div_factor;
        let min = initial / c.final_div_factor;
        let warm_end = c.pct_start * c.total_steps as f64 - 1.0;
        let last = c.total_steps as f64 - 1.0;
        let t = step as f64;
        if t <= warm_end {
            let pct = t / warm_end;
            (
                cosine(initial, c.max_lr, pct),
                cosine(c.max_momentum, c.base_momentum, pct),
            )
        } else {
            let pct = (t - warm_end) / (last - warm_end);
            (
                cosine(c.max_lr, min, pct),
                cosine(c.base_momentum, c.max_momentum, pct),
            )
        }
    }

    /// Steps taken so far.
    pub fn steps(&self) -> usize {
        self.step
    }

    /// The learning rate of 0-based `step`, with beta1 set for that step: random access, for a
    /// loop that derives the step from (epoch, batch) and so keeps no schedule state across a
    /// resume.
    pub fn lr_at(&self, step: usize) -> f64 {
        let (lr, beta) = self.at(step);
        if let (true, Some(beta_1)) = (self.config.cycle_momentum, &self.beta_1) {
            beta_1.set(beta);
        }
        lr
    }

    /// Sets beta1 for the coming step.
    fn apply_momentum(&self) {
        self.lr_at(self.step);
    }
}

impl LrScheduler for OneCycle {
    type Record<B: Backend> = usize;

    fn step(&mut self) -> f64 {
        let lr = self.lr_at(self.step);
        self.step += 1;
        lr
    }

    fn to_record<B: Backend>(&self) -> Self::Record<B> {
        self.step
    }

    fn load_record<B: Backend>(mut self, record: Self::Record<B>) -> Self {
        self.step = record;
        self.apply_momentum();
        self
    }
}
