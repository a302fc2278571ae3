//! BoostLU's boosted CAM head against `tests/vectors/boostlu_head.json`, made by running the
//! head of `youngwk/BridgeGapExplanationPAMC` (`models.py` `ImageClassifier.forward`): class
//! activation maps, boosted logits (train and eval mode), and the gradients with respect to
//! the feature map, the 1x1 convolution's weight and its bias, for the upstream gradient
//! `grad_logits` the vector records (so the head is checked without the loss that produced it).
//!
//! Tolerance: 1e-5 relative plus an absolute floor of 1e-6 of the largest magnitude of the
//! tensor compared: entries near zero come out of f32 sums whose rounding differs from
//! PyTorch's, and their error scales with the tensor's size, not their own.

use burn::backend::{Autodiff, Flex};
use burn::module::Param;
use burn::tensor::{Tensor, TensorData};
use mlml_models::{MultiLabelHeadConfig, BOOSTLU_ALPHA};
use mlml_testing::{assert_all_close, Tolerance};
use serde_json::Value;

type B = Autodiff<Flex>;

fn load() -> Value {
    let path = format!(
        "{}/tests/vectors/boostlu_head.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("vector file")).unwrap()
}

/// Every number of a nested array, in row-major order, with the array's dimensions.
fn flatten(v: &Value) -> (Vec<f64>, Vec<usize>) {
    fn walk(v: &Value, depth: usize, out: &mut Vec<f64>, dims: &mut Vec<usize>) {
        match v {
            Value::Array(items) => {
                if dims.len() == depth {
                    dims.push(items.len());
                }
                for item in items {
                    walk(item, depth + 1, out, dims);
                }
            }
            other => out.push(other.as_f64().expect("a number")),
        }
    }
    let (mut out, mut dims) = (Vec::new(), Vec::new());
    walk(v, 0, &mut out, &mut dims);
    (out, dims)
}

fn to_f32(values: &[f64]) -> Vec<f32> {
    values.iter().map(|x| *x as f32).collect()
}

fn data_of<const D: usize>(t: Tensor<Flex, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().into_vec::<f32>().unwrap()
}

#[test]
fn boosted_cam_head_matches_the_reference_forward_and_backward() {
    let v = load();
    let device = Default::default();
    let cases = v["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let id = case["id"].as_str().unwrap();
        let block = &case["float32"];
        let alpha = case["alpha"].as_f64().unwrap();
        let (features, dims) = flatten(&case["inputs"]["feature_map"]);
        let [b, d, h, w] = [dims[0], dims[1], dims[2], dims[3]];
        let features =
            Tensor::<B, 4>::from_data(TensorData::new(to_f32(&features), [b, d, h, w]), &device)
                .require_grad();
        let (weight, _) = flatten(&case["inputs"]["conv_weight"]);
        let c = weight.len() / d;
        let (bias, _) = flatten(&case["inputs"]["conv_bias"]);

        let mut head = MultiLabelHeadConfig::new(d, c)
            .with_boost_alpha(Some(alpha))
            .init::<B>(&device);
        // PyTorch's 1x1 convolution weight is [C, D]; burn's linear weight is [D, C].
        let weight = Tensor::<B, 2>::from_data(TensorData::new(to_f32(&weight), [c, d]), &device)
            .transpose();
        head.linear.weight = Param::from_tensor(weight);
        head.linear.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(to_f32(&bias), [c]),
            &device,
        )));

        let cam = head.class_activation_maps(features.clone());
        assert_all_close(
            format!("{id}: cam"),
            &data_of(cam.inner()),
            &flatten(&block["cam_before_boost"]).0,
            Tolerance::relative(1e-5).scaled_to(&flatten(&block["cam_before_boost"]).0, 1e-6),
        );
        let logits = head.forward(features.clone());
        for key in ["logits", "logits_eval_mode"] {
            assert_all_close(
                format!("{id}: {key}"),
                &data_of(logits.clone().inner()),
                &flatten(&block[key]).0,
                Tolerance::relative(1e-5).scaled_to(&flatten(&block[key]).0, 1e-6),
            );
        }

        let (upstream, _) = flatten(&block["grad_logits"]);
        let upstream =
            Tensor::<B, 2>::from_data(TensorData::new(to_f32(&upstream), [b, c]), &device);
        let grads = (logits * upstream).sum().backward();
        assert_all_close(
            format!("{id}: grad_feature_map"),
            &data_of(features.grad(&grads).unwrap()),
            &flatten(&block["grad_feature_map"]).0,
            Tolerance::relative(1e-5).scaled_to(&flatten(&block["grad_feature_map"]).0, 1e-6),
        );
        let grad_weight = head.linear.weight.val().grad(&grads).unwrap().transpose();
        assert_all_close(
            format!("{id}: grad_conv_weight"),
            &data_of(grad_weight),
            &flatten(&block["grad_conv_weight"]).0,
            Tolerance::relative(1e-5).scaled_to(&flatten(&block["grad_conv_weight"]).0, 1e-6),
        );
        let grad_bias = head
            .linear
            .bias
            .as_ref()
            .unwrap()
            .val()
            .grad(&grads)
            .unwrap();
        assert_all_close(
            format!("{id}: grad_conv_bias"),
            &data_of(grad_bias),
            &flatten(&block["grad_conv_bias"]).0,
            Tolerance::relative(1e-5).scaled_to(&flatten(&block["grad_conv_bias"]).0, 1e-6),
        );
    }
}

#[test]
fn boost_scales_only_positive_activations() {
    let device = Default::default();
    let cam = Tensor::<Flex, 4>::from_floats([[[[2.0, -1.0], [0.0, 0.5]]]], &device);
    let boosted = mlml_models::boost_cam(cam.clone(), BOOSTLU_ALPHA);
    assert_eq!(data_of(boosted), vec![10.0, -1.0, 0.0, 2.5]);
    // Mean of the boosted map, not the boost of the mean: (10 - 1 + 0 + 2.5) / 4.
    let logits = mlml_models::boosted_logits(cam, BOOSTLU_ALPHA);
    assert_eq!(data_of(logits), vec![2.875]);
}
