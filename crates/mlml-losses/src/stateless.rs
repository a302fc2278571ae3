//! How a loss without state is written: its per-element values ([`Elements`]) and reduction
//! ([`StatelessLoss`]); `stateless!` turns that into a [`MultiLabelLoss`](crate::MultiLabelLoss) under its registered
//! name, with a public `forward_elementwise`.

use burn::tensor::Tensor;
use mlml_ops::SigmoidBackend;

use crate::common::LossContext;
use crate::error::Result;
use crate::reduction::Reduction;

/// A loss's per-element values for its batch reduction, in the sign its reference computes
/// them.
pub(crate) enum Elements<B: SigmoidBackend> {
    /// The loss itself, `[batch, n_classes]`.
    Loss(Tensor<B, 2>),
    /// The loss negated: the reference's logs before their final negation. The reduction
    /// negates the scalar instead (exact, since negation is, and one pass fewer).
    Negated(Tensor<B, 2>),
}

impl<B: SigmoidBackend> Elements<B> {
    /// The per-element loss.
    pub(crate) fn into_loss(self) -> Tensor<B, 2> {
        match self {
            Elements::Loss(loss) => loss,
            Elements::Negated(negated) => negated.neg(),
        }
    }

    /// The loss reduced to a scalar.
    pub(crate) fn reduce(self, reduction: Reduction) -> Tensor<B, 1> {
        match self {
            Elements::Loss(loss) => reduction.apply(loss),
            Elements::Negated(negated) => reduction.apply(negated).neg(),
        }
    }
}

/// A loss whose value depends only on the batch and its context: implement this and
/// `stateless!(Type)` gives it [`MultiLabelLoss`](crate::MultiLabelLoss) (the registered name, shape checks, the
/// default lifecycle) and a public `forward_elementwise`.
pub(crate) trait StatelessLoss<B: SigmoidBackend>: std::fmt::Debug + Send {
    /// How the batch's elements become the loss (the single-positive line's mean by default).
    fn reduction(&self) -> Reduction {
        Reduction::Mean
    }

    /// The per-element loss of a batch whose shapes have been checked.
    fn elements(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
        ctx: &LossContext<'_>,
    ) -> Result<Elements<B>>;

    /// The reduced loss of a batch whose shapes have been checked: the elements reduced, unless
    /// the loss adds a term of the whole batch.
    fn batch_loss(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
        ctx: &LossContext<'_>,
    ) -> Result<Tensor<B, 1>> {
        Ok(self
            .elements(logits, targets, ctx)?
            .reduce(self.reduction()))
    }
}

/// [`MultiLabelLoss`](crate::MultiLabelLoss) and `forward_elementwise` for types implementing [`StatelessLoss`] for
/// every backend. The name is the type's registered name, or `name = |loss| ...` for a type
/// registered under several names.
macro_rules! stateless {
    ($loss:ty) => {
        $crate::stateless::stateless!(
            $loss,
            name = |_loss| { <$loss as $crate::registration::Registered>::INFO.name }
        );
    };
    ($loss:ty, name = |$this:ident| $name:expr) => {
        impl $loss {
            /// The per-element loss `[batch, n_classes]`, before the batch reduction.
            ///
            /// # Errors
            /// Logits and targets of different shapes, or a context the loss refuses.
            pub fn forward_elementwise<B: $crate::SigmoidBackend>(
                &self,
                logits: burn::tensor::Tensor<B, 2>,
                targets: burn::tensor::Tensor<B, 2>,
                ctx: &$crate::LossContext<'_>,
            ) -> $crate::Result<burn::tensor::Tensor<B, 2>> {
                let $this = self;
                $crate::common::check_shapes($name, &logits, &targets)?;
                Ok(
                    $crate::stateless::StatelessLoss::<B>::elements(self, logits, targets, ctx)?
                        .into_loss(),
                )
            }
        }

        impl<B: $crate::SigmoidBackend> $crate::MultiLabelLoss<B> for $loss {
            fn name(&self) -> &'static str {
                let $this = self;
                $name
            }

            fn forward(
                &mut self,
                logits: burn::tensor::Tensor<B, 2>,
                targets: burn::tensor::Tensor<B, 2>,
                ctx: &$crate::LossContext<'_>,
            ) -> $crate::Result<burn::tensor::Tensor<B, 1>> {
                let $this = &*self;
                $crate::common::check_shapes($name, &logits, &targets)?;
                $crate::stateless::StatelessLoss::batch_loss(self, logits, targets, ctx)
            }
        }
    };
}
pub(crate) use stateless;
