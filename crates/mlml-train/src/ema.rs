//! Exponential moving average of a module's weights and BatchNorm statistics.

use std::collections::HashMap;

use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;

/// `e <- decay e + (1 - decay) m` for every float tensor of the module (parameters and
/// running statistics), after each optimizer step, as timm's `ModelEma` / the ASL recipe
/// (decay 0.9997, no warm-up).
///
/// The average is kept on the inner (non-autodiff) backend, built with `valid()`: a plain
/// `clone()` of a burn module shares its BatchNorm `RunningState`s with the model, so the
/// average's statistics would follow the model's instead of averaging them.
#[derive(Debug)]
pub struct ModelEma<B: AutodiffBackend, M: AutodiffModule<B>> {
    average: M::InnerModule,
    decay: f64,
}

impl<B: AutodiffBackend, M: AutodiffModule<B>> ModelEma<B, M> {
    /// Starts the average at the model's current weights.
    pub fn new(model: &M, decay: f64) -> Self {
        Self {
            average: model.valid(),
            decay,
        }
    }

    /// Continues from a stored average (a resumed run).
    pub fn from_average(average: M::InnerModule, decay: f64) -> Self {
        Self { average, decay }
    }

    /// Moves the average toward the model's current weights.
    pub fn update(&mut self, model: &M) {
        let mut current = Collect::<B::InnerBackend>::default();
        model.valid().visit(&mut current);
        let mut blend = Blend {
            current: current.tensors,
            decay: self.decay,
        };
        self.average = self.average.clone().map(&mut blend);
    }

    /// The averaged module.
    pub fn module(&self) -> &M::InnerModule {
        &self.average
    }

    /// The decay.
    pub fn decay(&self) -> f64 {
        self.decay
    }
}

/// A copy of an inner (non-autodiff) module that shares nothing mutable with it: burn's
/// `clone()` shares each BatchNorm `RunningState`, so a clone of the weight average would keep
/// following it. The round trip through the autodiff backend rebuilds every running state.
pub fn detached_copy<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M::InnerModule,
) -> M::InnerModule {
    M::from_inner(module.clone()).valid()
}

/// Every float tensor of a module, flattened, by parameter id.
struct Collect<B: Backend> {
    tensors: HashMap<ParamId, Tensor<B, 1>>,
}

impl<B: Backend> Default for Collect<B> {
    fn default() -> Self {
        Self {
            tensors: HashMap::new(),
        }
    }
}

impl<B: Backend> ModuleVisitor<B> for Collect<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.tensors.insert(param.id, param.val().flatten(0, D - 1));
    }
}

struct Blend<B: Backend> {
    current: HashMap<ParamId, Tensor<B, 1>>,
    decay: f64,
}

impl<B: Backend> ModuleMapper<B> for Blend<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, average, mapper) = param.consume();
        let blended = match self.current.remove(&id) {
            Some(current) => {
                // e + (1 - decay)(m - e): the same average as decay e + (1 - decay) m, with
                // one rounding of a small increment instead of a rounding of all of e per
                // step, which over thousands of f32 steps is the difference that shows.
                let shape = average.shape();
                average.clone() + (current.reshape(shape) - average).mul_scalar(1.0 - self.decay)
            }
            None => average,
        };
        Param::from_mapped_value(id, blended, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::nn::{BatchNorm, BatchNormConfig};

    type B = Autodiff<Flex>;

    #[derive(Module, Debug)]
    struct Net<B: Backend> {
        norm: BatchNorm<B>,
    }

    fn running_mean(net: &Net<Flex>) -> Vec<f32> {
        net.norm.running_mean.value().into_data().to_vec().unwrap()
    }

    /// A training forward pass on a batch whose channel means are `mean`, which moves the
    /// running statistics. The noise is drawn holding the backend's generator, as every draw in
    /// this crate is, so that it cannot fall inside a seeded initialisation of a test beside it.
    fn train_on(net: &Net<B>, mean: f32) {
        let device = Default::default();
        let noise = crate::fit::holding_backend_rng(|| {
            Tensor::<B, 4>::random(
                [4, 2, 3, 3],
                burn::tensor::Distribution::Uniform(-1.0, 1.0),
                &device,
            )
        });
        let x = Tensor::<B, 4>::full([4, 2, 3, 3], mean, &device) + noise;
        let _ = net.norm.forward(x);
    }

    #[test]
    fn a_detached_copy_of_the_average_keeps_its_statistics_while_a_clone_follows_it() {
        let device = Default::default();
        let net = Net::<B> {
            norm: BatchNormConfig::new(2).init(&device),
        };
        train_on(&net, 3.0);
        let mut ema = ModelEma::<B, Net<B>>::new(&net, 0.5);
        let kept = detached_copy::<B, Net<B>>(ema.module());
        let shallow = ema.module().clone();
        let before = running_mean(&kept);
        train_on(&net, 50.0);
        ema.update(&net);
        assert_eq!(running_mean(&kept), before, "the detached copy moved");
        // burn's clone shares the running state: what the loop kept before the fix.
        assert_ne!(running_mean(&shallow), before);
        assert_eq!(running_mean(&shallow), running_mean(ema.module()));
    }
}
