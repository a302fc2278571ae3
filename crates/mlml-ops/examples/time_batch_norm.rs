//! Times a training BatchNorm, forward + backward, at the small CNN's activation shapes: burn's
//! tensor ops through autodiff (the path before `BatchNormBackend`, and wgpu's and CUDA's) beside
//! `mlml_ops::batch_norm_train` (Flex's fused op):
//! `cargo run --release -p mlml-ops --example time_batch_norm`.
use std::time::Instant;

/// The allocator of the `mlml` binary.
#[global_allocator]
static ALLOCATOR: mlml_ops::allocator::Allocator = mlml_ops::allocator::Allocator;

use burn::backend::{Autodiff, Flex};
use burn::nn::BatchNormConfig;
use burn::tensor::{Distribution, Tensor, TensorPrimitive};
use mlml_ops::{batch_norm_forward_with_tensor_ops, batch_norm_train};

type B = Autodiff<Flex>;

fn mean_ms(f: impl Fn()) -> f64 {
    f();
    let runs = 5;
    let start = Instant::now();
    for _ in 0..runs {
        f();
    }
    start.elapsed().as_secs_f64() * 1e3 / runs as f64
}

fn main() {
    mlml_ops::allocator::keep_freed_memory();
    let device = Default::default();
    println!("| activation | tensor ops | `BatchNormBackend` |");
    println!("|---|---|---|");
    let (mut total_ops, mut total_fused) = (0.0, 0.0);
    for (n, c, s) in [(64, 32, 64), (64, 64, 32), (64, 128, 16), (64, 128, 8)] {
        let bn = BatchNormConfig::new(c).init::<B>(&device);
        let x = Tensor::<B, 4>::random([n, c, s, s], Distribution::Normal(0.0, 1.0), &device)
            .require_grad();
        let dy = Tensor::<B, 4>::random([n, c, s, s], Distribution::Normal(0.0, 1.0), &device);
        let backward = |y: Tensor<B, 4>| {
            let grads = (y * dy.clone()).sum().backward();
            let _ = x.grad(&grads).expect("grad").into_data();
        };
        let tensor_ops = mean_ms(|| {
            let out = batch_norm_forward_with_tensor_ops::<B>(
                x.clone().into_primitive().tensor(),
                bn.gamma.val().into_primitive().tensor(),
                bn.beta.val().into_primitive().tensor(),
                bn.epsilon,
            );
            backward(Tensor::from_primitive(TensorPrimitive::Float(out.output)));
        });
        let fused = mean_ms(|| backward(batch_norm_train(&bn, x.clone())));
        total_ops += tensor_ops;
        total_fused += fused;
        println!("| [{n}, {c}, {s}, {s}] | {tensor_ops:.1} ms | {fused:.1} ms |");
    }
    println!("| all four | {total_ops:.1} ms | {total_fused:.1} ms |");
}
