//! Where a run starts other than from its config's weights: a head and a loss state handed
//! on (the end-to-end phase of `linear-init`).

use burn::module::Param;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use mlml_losses::LossState;

use crate::error::{Result, TrainError};
use crate::model::Classifier;

/// Where a run starts other than from its config's weights: the end-to-end phase of a
/// `linear-init` run. A checkpoint in the run directory takes precedence (a resumed run).
#[derive(Clone, Debug, Default)]
pub struct Start {
    /// The head's linear layer: weight `[features, classes]` row-major and bias `[classes]`.
    pub head: Option<(Vec<f32>, Vec<f32>)>,
    /// The loss's state to start from (ROLE's label estimate).
    pub loss_state: Option<LossState>,
}

impl Start {
    /// The start from a linear layer trained on standardised features `(x - mean) / std`, for
    /// a network whose head sees `x` itself: `W' = W / std` (per input), `b' = b - W' mean`.
    pub fn from_standardized_linear(
        weight: &[f32],
        bias: &[f32],
        mean: &[f32],
        std: &[f32],
    ) -> Self {
        let classes = bias.len();
        let mut folded = weight.to_vec();
        let mut shift = bias.iter().map(|&b| f64::from(b)).collect::<Vec<f64>>();
        for (i, row) in folded.chunks_exact_mut(classes).enumerate() {
            for (j, w) in row.iter_mut().enumerate() {
                *w /= std[i];
                shift[j] -= f64::from(*w) * f64::from(mean[i]);
            }
        }
        Self {
            head: Some((folded, shift.into_iter().map(|b| b as f32).collect())),
            loss_state: None,
        }
    }
}

/// `model` with its head's linear layer set to `weight` and `bias`.
pub(crate) fn with_head<B: Backend>(
    model: Classifier<B>,
    weight: &[f32],
    bias: &[f32],
    device: &B::Device,
) -> Result<Classifier<B>> {
    let Classifier::Image(mut m) = model else {
        return Err(TrainError::Config(
            "a starting head needs an image model trained end to end".into(),
        ));
    };
    let [d, c] = m.head.linear.weight.dims();
    if weight.len() != d * c || bias.len() != c {
        return Err(TrainError::Config(format!(
            "the starting head has {} weights and {} biases, the model's head is [{d}, {c}]",
            weight.len(),
            bias.len()
        )));
    }
    let w = Tensor::<B, 2>::from_data(TensorData::new(weight.to_vec(), [d, c]), device);
    m.head.linear.weight = Param::initialized(m.head.linear.weight.id, w.require_grad());
    let b = Tensor::<B, 1>::from_data(TensorData::new(bias.to_vec(), [c]), device);
    m.head.linear.bias = Some(match m.head.linear.bias.take() {
        Some(old) => Param::initialized(old.id, b.require_grad()),
        None => Param::from_tensor(b),
    });
    Ok(Classifier::Image(m))
}

#[cfg(test)]
mod tests {
    use super::Start;

    #[test]
    fn a_linear_layer_on_standardised_features_folds_into_one_on_raw_features() {
        // Two features, three classes; the layer saw (x - mean) / std.
        let weight = [0.5f32, -1.0, 2.0, 1.5, 0.25, -0.75];
        let bias = [0.1f32, -0.2, 0.3];
        let (mean, std) = ([2.0f32, -1.0], [4.0f32, 0.5]);
        let start = Start::from_standardized_linear(&weight, &bias, &mean, &std);
        let (folded, shift) = start.head.unwrap();
        for x in [[0.0f32, 0.0], [3.0, -2.0], [-1.5, 7.0]] {
            let z = [(x[0] - mean[0]) / std[0], (x[1] - mean[1]) / std[1]];
            for j in 0..3 {
                let on_z = bias[j] + z[0] * weight[j] + z[1] * weight[3 + j];
                let on_x = shift[j] + x[0] * folded[j] + x[1] * folded[3 + j];
                assert!(
                    (on_z - on_x).abs() < 1e-5,
                    "{x:?} class {j}: {on_z} vs {on_x}"
                );
            }
        }
    }
}
