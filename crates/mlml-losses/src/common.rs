//! What every loss shares: the batch context, the trait, the target convention, and the
//! elementwise building blocks of the reference code bases.

use burn::tensor::activation::log_sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor, TensorData};
use mlml_data::LabelMatrix;

/// What a loss may need beyond logits and targets.
#[derive(Clone, Copy, Debug)]
pub struct LossContext<'a> {
    /// Current epoch, **1-based** (the first epoch is 1). Losses whose reference counts from 0
    /// (SPLC) convert, and say so.
    pub epoch: usize,
    /// Dataset row of each batch row: keys the state of ROLE, LL-Cp and EM+APL.
    pub sample_indices: &'a [usize],
}

impl<'a> LossContext<'a> {
    /// A context for `epoch` (1-based) and the batch's dataset rows.
    pub fn new(epoch: usize, sample_indices: &'a [usize]) -> Self {
        Self {
            epoch,
            sample_indices,
        }
    }
}

/// A multi-label loss on logits.
///
/// `targets` hold mlml's codes as floats: **1 observed positive, -1 observed negative, 0
/// unobserved** (see [`targets_from_labels`]). Each loss documents how it reads 0 and -1.
pub trait MultiLabelLoss<B: Backend>: std::fmt::Debug + Send {
    /// The registry name (`hill`, `ll-ct`, ...).
    fn name(&self) -> &'static str;

    /// The scalar loss of a batch, reduced as the loss's reference code reduces it.
    ///
    /// # Shapes
    /// - logits: `[batch, n_classes]`
    /// - targets: `[batch, n_classes]`
    /// - output: `[1]`
    fn forward(
        &mut self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
        ctx: &LossContext<'_>,
    ) -> Tensor<B, 1>;

    /// State to checkpoint (`null` for stateless losses).
    fn state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Restores what [`MultiLabelLoss::state`] returned.
    ///
    /// # Errors
    /// When the state does not fit the loss.
    fn load_state(&mut self, state: &serde_json::Value) -> crate::Result<()> {
        let _ = state;
        Ok(())
    }
}

/// The target tensor of a batch: rows `rows` of `labels` as float codes (1, -1, 0).
///
/// # Panics
/// When a row index is out of range.
pub fn targets_from_labels<B: Backend>(
    labels: &LabelMatrix,
    rows: &[usize],
    device: &B::Device,
) -> Tensor<B, 2> {
    let c = labels.n_classes();
    let mut values = Vec::with_capacity(rows.len() * c);
    for &r in rows {
        values.extend(labels.row(r).iter().map(|v| f32::from(*v)));
    }
    Tensor::from_data(TensorData::new(values, [rows.len(), c]), device)
}

/// Observed positives (code 1).
pub fn positive_mask<B: Backend>(targets: &Tensor<B, 2>) -> Tensor<B, 2, Bool> {
    targets.clone().equal_elem(1.0)
}

/// Unobserved entries (code 0).
pub fn unobserved_mask<B: Backend>(targets: &Tensor<B, 2>) -> Tensor<B, 2, Bool> {
    targets.clone().equal_elem(0.0)
}

/// Observed negatives (code -1).
pub fn negative_mask<B: Backend>(targets: &Tensor<B, 2>) -> Tensor<B, 2, Bool> {
    targets.clone().equal_elem(-1.0)
}

/// `-ln(x + 1e-5)`: the single-positive line's `neg_log`, epsilon inside the log (not a clamp,
/// not log-sigmoid: the values differ near saturation and the reference's are these).
pub(crate) fn neg_log<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    x.add_scalar(1e-5).log().neg()
}

/// PyTorch's `binary_cross_entropy_with_logits` per element with a 0/1 target:
/// `(1 - t) z - log_sigmoid(z)`, the stable form.
pub(crate) fn bce_with_logits<B: Backend>(
    logits: Tensor<B, 2>,
    target: Tensor<B, 2>,
) -> Tensor<B, 2> {
    target.neg().add_scalar(1.0).mul(logits.clone()) - log_sigmoid(logits)
}

/// Where `mask` is false, replaces `x` by `fill` *before* an operation that is only meant for
/// the masked entries, so that neither its value nor its gradient can turn into NaN elsewhere
/// (`0 * inf`). The gradient to `x` through the unmasked entries is zero.
pub(crate) fn only_where<B: Backend>(
    x: Tensor<B, 2>,
    mask: Tensor<B, 2, Bool>,
    fill: f32,
) -> Tensor<B, 2> {
    x.mask_fill(mask.bool_not(), fill)
}

/// Sum of all elements divided by `N * C`: the single-positive line's reduction.
pub(crate) fn mean_all<B: Backend>(matrix: Tensor<B, 2>) -> Tensor<B, 1> {
    matrix.mean()
}

/// The hyperparameter `C` of a loss: the configured class count, or the batch's.
pub(crate) fn class_count(configured: Option<usize>, logits_dims: [usize; 2]) -> usize {
    configured.unwrap_or(logits_dims[1])
}
