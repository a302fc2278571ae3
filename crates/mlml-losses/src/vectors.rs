//! What every loss's vector test shares: reading `tests/vectors/*.json` (made by running the
//! original implementations: `source` names the code, `torch_version` the PyTorch that ran it;
//! `tests/vectors/src/` the scripts), and comparing a loss value and the logits' gradient with
//! a file's float32 block, on `Autodiff<Flex>` (with the `wgpu-vectors` feature, on
//! `Autodiff<Wgpu>` instead: `cargo test -p mlml-losses --features wgpu-vectors`, which CI runs on
//! lavapipe; with `cuda-vectors` on `Autodiff<Cuda>`, as `cargo xtask gpu-check` runs them). Each loss file's `vector_tests` runs every case of its files through these helpers.
//!
//! Tolerance (Flex, and wgpu on lavapipe): 1e-5 relative, plus an absolute floor. For a loss value the floor is 1e-9. For a
//! gradient it is 1e-6 of the largest magnitude of the gradient compared, so that it scales
//! with the tensor: entries that saturate in f32 (logits of +-20, where PyTorch's and Rust's
//! `exp` round differently and the reference gradient is 0) and entries near zero that come out
//! of f32 sums (whose rounding depends on the summation order) are judged against the size of
//! the gradient, not their own.

use burn::backend::Autodiff;
use burn::tensor::{Tensor, TensorData};
use mlml_testing::{assert_all_close, assert_close, Tolerance};
use serde_json::Value;

use crate::{LossContext, MultiLabelLoss};

/// The backend the vectors are checked on, without autodiff.
#[cfg(not(any(feature = "wgpu-vectors", feature = "cuda-vectors")))]
pub(crate) type Inner = burn::backend::Flex;
#[cfg(all(feature = "wgpu-vectors", not(feature = "cuda-vectors")))]
pub(crate) type Inner = burn::backend::Wgpu;
#[cfg(feature = "cuda-vectors")]
pub(crate) type Inner = burn::backend::Cuda;

/// The backend the vectors are checked on.
pub(crate) type B = Autodiff<Inner>;

/// The relative part of every comparison. wgpu on lavapipe holds it too, once the losses'
/// sigmoid is the CPU kernel's formula (`mlml_ops::SigmoidBackend`); with burn's own sigmoid
/// the ASL scripts' BCE vector was 1.2e-3 off.
const RELATIVE: f64 = 1e-5;

/// The absolute floor of a loss value's comparison.
pub(crate) const VALUE_FLOOR: f64 = 1e-9;

/// A loss value's tolerance.
pub(crate) fn value_tolerance() -> Tolerance {
    Tolerance::relative(RELATIVE).with_absolute(VALUE_FLOOR)
}

/// A gradient's tolerance: its floor scaled to the largest expected magnitude.
pub(crate) fn gradient_tolerance<E: Copy + Into<f64>>(expected: &[E]) -> Tolerance {
    Tolerance::relative(RELATIVE).scaled_to(expected, 1e-6)
}

/// `tests/vectors/<name>`, parsed.
pub(crate) fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A JSON matrix (an array of rows) as row-major f32 values, rows and columns.
pub(crate) fn matrix(v: &Value) -> (Vec<f32>, usize, usize) {
    let rows = v.as_array().expect("a matrix");
    let c = rows[0].as_array().expect("a row").len();
    let data = rows
        .iter()
        .flat_map(|r| {
            r.as_array()
                .expect("a row")
                .iter()
                .map(|x| x.as_f64().expect("a number") as f32)
        })
        .collect();
    (data, rows.len(), c)
}

/// A JSON matrix as a tensor.
pub(crate) fn tensor(v: &Value) -> Tensor<B, 2> {
    let (data, n, c) = matrix(v);
    Tensor::from_data(TensorData::new(data, [n, c]), &Default::default())
}

/// A tensor's values.
pub(crate) fn values(t: Tensor<Inner, 2>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("f32 values")
}

/// The rows `0..n`: a batch that is the whole (vector's) training set.
pub(crate) fn all_rows(n: usize) -> Vec<usize> {
    (0..n).collect()
}

/// A JSON array of non-negative integers.
pub(crate) fn indices(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|i| i.as_u64().expect("an index") as usize)
        .collect()
}

/// A label matrix of float codes (1 / -1 / 0).
pub(crate) fn label_matrix(codes: &[f32], n: usize, c: usize) -> mlml_data::LabelMatrix {
    mlml_data::LabelMatrix::new(
        (0..c).map(|j| format!("c{j}")).collect(),
        (0..n).map(|i| i.to_string()).collect(),
        codes.iter().map(|x| *x as i8).collect(),
    )
    .expect("a label matrix")
}

/// A gradient against the block's matrix under `key`.
pub(crate) fn assert_gradient(what: &str, got: &[f32], block: &Value, key: &str) {
    let (expected, _, _) = matrix(&block[key]);
    assert_all_close(what, got, &expected, gradient_tolerance(&expected));
}

/// Runs `loss` on the logits and compares the loss value and the logits' gradient with the
/// block's `loss` and `grad_logits` (or `grad`).
pub(crate) fn check(
    what: &str,
    logits: Tensor<B, 2>,
    block: &Value,
    loss: impl FnOnce(Tensor<B, 2>) -> Tensor<B, 1>,
) {
    let logits = logits.require_grad();
    let value = loss(logits.clone());
    let grads = value.backward();
    assert_close(
        format!("{what}: loss"),
        value.into_scalar() as f64,
        block["loss"].as_f64().expect("a loss value"),
        value_tolerance(),
    );
    let key = if block.get("grad_logits").is_some() {
        "grad_logits"
    } else {
        "grad"
    };
    let got = values(logits.grad(&grads).expect("a gradient"));
    assert_gradient(&format!("{what}: grad"), &got, block, key);
}

/// Every case of one of the ASL line's files (`params`, `inputs.logits`, `inputs.targets` in
/// mlml's codes, and SPLC's 0-based `inputs.epoch`) through the loss `build` makes of a case's
/// `params`.
pub(crate) fn asl_line_cases(file: &str, build: impl Fn(&Value) -> Box<dyn MultiLabelLoss<B>>) {
    let v = load(file);
    let cases = v["cases"].as_array().expect("cases");
    assert!(!cases.is_empty(), "{file}: no case");
    for case in cases {
        let name = format!("{file} {}", case["name"]);
        let logits = tensor(&case["inputs"]["logits"]);
        let targets = Tensor::<B, 2>::from_inner(tensor(&case["inputs"]["targets"]).inner());
        let rows = all_rows(logits.dims()[0]);
        let mut loss = build(&case["params"]);
        // SPLC's vectors record the reference's 0-based epoch index; mlml counts from 1.
        let epoch = case["inputs"]["epoch"]
            .as_u64()
            .map_or(1, |e| e as usize + 1);
        check(&name, logits, &case["float32"], |z| {
            loss.forward(z, targets, &LossContext::train(epoch, &rows).unwrap())
                .unwrap()
        });
    }
}

/// The labels a single-positive file's case trains on.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Labels {
    /// `inputs.observed_labels` (1 / 0: observed positive or unobserved).
    Observed,
    /// `inputs.true_labels` (1 / 0, every entry observed).
    Full,
}

/// Every case of one of the single-positive line's files (shared `inputs.logits`, the labels,
/// each case's `hyperparameters`) through the loss `build` makes of a case's hyperparameters.
pub(crate) fn single_positive_cases(
    file: &str,
    labels: Labels,
    build: impl Fn(&Value) -> Box<dyn MultiLabelLoss<B>>,
) {
    let v = load(file);
    let logits = tensor(&v["inputs"]["logits"]);
    let rows = all_rows(logits.dims()[0]);
    let targets = match labels {
        Labels::Observed => tensor(&v["inputs"]["observed_labels"]),
        Labels::Full => {
            // Full 0/1 labels: 0 is an observed negative in mlml's codes.
            let full = tensor(&v["inputs"]["true_labels"]);
            full.clone().mask_fill(full.equal_elem(0.0), -1.0)
        }
    };
    let cases = v["cases"].as_array().expect("cases");
    assert!(!cases.is_empty(), "{file}: no case");
    for case in cases {
        let h = &case["hyperparameters"];
        let mut loss = build(h);
        check(
            &format!("{file} {h}"),
            logits.clone(),
            &case["float32"],
            |z| {
                loss.forward(z, targets.clone(), &LossContext::train(1, &rows).unwrap())
                    .unwrap()
            },
        );
    }
}

/// A number of a JSON object.
pub(crate) fn number(h: &Value, key: &str) -> f64 {
    h[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key}: not a number in {h}"))
}
