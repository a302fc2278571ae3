//! Properties every loss must have, on every registered loss, and the registry's errors.

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Tensor, TensorData};
use mlml_data::LabelMatrix;
use mlml_losses::registry::{build, LossSetup, LOSSES};
use mlml_losses::{
    gradient_lookup, LossContext, LossError, LossState, MultiLabelLoss, OptimizerStep,
};
use proptest::prelude::*;

type B = Autodiff<Flex>;

fn setup(labels: &LabelMatrix) -> LossSetup<'_, B> {
    LossSetup {
        epochs: 10,
        train_labels: labels,
        seed: 7,
        device: Default::default(),
    }
}

fn labels(codes: Vec<i8>, n: usize, c: usize) -> LabelMatrix {
    LabelMatrix::new(
        (0..c).map(|j| format!("c{j}")).collect(),
        (0..n).map(|i| i.to_string()).collect(),
        codes,
    )
    .unwrap()
}

fn to_tensor(values: &[f32], n: usize, c: usize) -> Tensor<B, 2> {
    Tensor::from_data(
        TensorData::new(values.to_vec(), [n, c]),
        &Default::default(),
    )
}

fn eval(
    loss: &mut dyn MultiLabelLoss<B>,
    logits: &[f32],
    codes: &[i8],
    n: usize,
    c: usize,
    epoch: usize,
) -> (f32, Vec<f32>) {
    let z = to_tensor(logits, n, c).require_grad();
    let t = to_tensor(
        &codes.iter().map(|v| f32::from(*v)).collect::<Vec<_>>(),
        n,
        c,
    );
    let rows: Vec<usize> = (0..n).collect();
    let value = loss
        .forward(z.clone(), t, &LossContext::train(epoch, &rows).unwrap())
        .unwrap();
    let grads = value.backward();
    let lookup = gradient_lookup::<B>(&grads);
    loss.on_optimizer_step(&OptimizerStep {
        lr: 1e-3,
        gradient: &lookup,
    })
    .unwrap();
    let grad = z
        .grad(&grads)
        .unwrap()
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .unwrap();
    (value.into_scalar(), grad)
}

/// Label patterns with every kind of row: no positive, all positive, all observed, mixed.
fn problems() -> impl Strategy<Value = (Vec<f32>, Vec<i8>, usize, usize)> {
    (1usize..6, 2usize..7).prop_flat_map(|(n, c)| {
        (
            proptest::collection::vec(
                prop_oneof![-50.0f32..50.0, Just(-50.0f32), Just(50.0f32), Just(0.0f32)],
                n * c,
            ),
            prop_oneof![
                proptest::collection::vec(prop_oneof![Just(1i8), Just(0i8), Just(-1i8)], n * c),
                proptest::collection::vec(Just(0i8), n * c),
                proptest::collection::vec(Just(1i8), n * c),
                proptest::collection::vec(prop_oneof![Just(1i8), Just(-1i8)], n * c),
            ],
            Just(n),
            Just(c),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn every_loss_is_finite_with_finite_gradients((logits, codes, n, c) in problems(), epoch in 1usize..6) {
        let train = labels(codes.clone(), n, c);
        for info in LOSSES {
            let mut loss = build::<B>(info.name, None, &serde_json::Value::Null, &setup(&train)).unwrap();
            let (value, grad) = eval(loss.as_mut(), &logits, &codes, n, c, epoch);
            prop_assert!(value.is_finite(), "{}: loss {value}", info.name);
            prop_assert!(grad.iter().all(|g| g.is_finite()), "{}: gradient {grad:?}", info.name);
        }
    }

    #[test]
    fn an_equals_bce_on_fully_observed_labels(
        (logits, codes, n, c) in problems().prop_filter("fully observed", |(_, codes, _, _)| !codes.contains(&0))
    ) {
        let train = labels(codes.clone(), n, c);
        let mut an = build::<B>("an", None, &serde_json::Value::Null, &setup(&train)).unwrap();
        let mut bce = build::<B>("bce", None, &serde_json::Value::Null, &setup(&train)).unwrap();
        let (a, ga) = eval(an.as_mut(), &logits, &codes, n, c, 1);
        let (b, gb) = eval(bce.as_mut(), &logits, &codes, n, c, 1);
        prop_assert_eq!(a, b);
        prop_assert_eq!(ga, gb);
    }
}

/// Logits that agree with the labels beat logits that disagree, for the BCE family.
#[test]
fn bce_family_prefers_logits_that_agree_with_the_labels() {
    let (n, c) = (2, 3);
    let codes = [1i8, -1, -1, -1, 1, -1];
    let agree: Vec<f32> = codes
        .iter()
        .map(|v| if *v == 1 { 6.0 } else { -6.0 })
        .collect();
    let disagree: Vec<f32> = agree.iter().map(|x| -x).collect();
    let train = labels(codes.to_vec(), n, c);
    for name in [
        "bce", "an", "an-ls", "wan", "asl-bce", "focal", "asl", "hill", "splc", "ll-r", "ll-ct",
        "ll-cp", "gr",
    ] {
        let mut loss = build::<B>(name, None, &serde_json::Value::Null, &setup(&train)).unwrap();
        let (good, grad) = eval(loss.as_mut(), &agree, &codes, n, c, 1);
        let (bad, _) = eval(loss.as_mut(), &disagree, &codes, n, c, 1);
        assert!(good < bad, "{name}: {good} !< {bad}");
        // At the agreeing logits, the gradient pushes positives up and negatives down (or is ~0);
        // AN-LS aims at the smoothed targets 0.9 / 0.1 instead, which logits of +-6 overshoot.
        if name == "an-ls" {
            continue;
        }
        for (g, v) in grad.iter().zip(&codes) {
            assert!(
                if *v == 1 { *g <= 1e-6 } else { *g >= -1e-6 },
                "{name}: gradient {g} for label {v}"
            );
        }
    }
}

/// The registry against what the crate says exists: every row of the README's loss table and
/// every reference vector file must name a registered loss, and every registered loss must
/// build under its own name. A loss added to the README or given vectors but not registered
/// fails here.
#[test]
fn registry_holds_every_documented_loss_and_builds_each() {
    let registered: std::collections::BTreeSet<&str> = LOSSES.iter().map(|l| l.name).collect();
    assert_eq!(registered.len(), LOSSES.len(), "names are unique");

    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    // The loss table: from its header to the first line that is not a table row.
    let documented: std::collections::BTreeSet<&str> = readme
        .lines()
        .skip_while(|line| !line.starts_with("| name | loss |"))
        .take_while(|line| line.starts_with('|'))
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .collect();
    assert_eq!(documented, registered, "README loss table vs registry");

    // The vector file of each loss (the file names are the reference generator's).
    let vector_losses: &[(&str, &[&str])] = &[
        ("an.json", &["an"]),
        ("an_ls.json", &["an-ls"]),
        ("asl.json", &["asl"]),
        ("bce.json", &["bce"]),
        ("bce_asl.json", &["asl-bce"]),
        ("boostlu_head.json", &["boostlu"]),
        ("em.json", &["em"]),
        ("em_apl.json", &["em-apl"]),
        ("epr.json", &["epr"]),
        ("focal_asl.json", &["focal"]),
        ("gr_loss.json", &["gr"]),
        ("hill.json", &["hill"]),
        ("ll_cp.json", &["ll-cp"]),
        ("ll_ct.json", &["ll-ct"]),
        ("ll_r.json", &["ll-r"]),
        ("role.json", &["role"]),
        ("splc.json", &["splc"]),
        ("wan.json", &["wan"]),
    ];
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors");
    for entry in std::fs::read_dir(dir).unwrap() {
        let file = entry.unwrap().file_name().into_string().unwrap();
        if !file.ends_with(".json") {
            continue;
        }
        let (_, losses) = vector_losses
            .iter()
            .find(|(f, _)| *f == file)
            .unwrap_or_else(|| panic!("tests/vectors/{file}: which loss is it for?"));
        for loss in *losses {
            assert!(
                registered.contains(loss),
                "{file}: '{loss}' is not registered"
            );
        }
    }

    let train = labels(vec![1, 0, 0, 1], 2, 2);
    for info in LOSSES {
        let loss = build::<B>(info.name, None, &serde_json::Value::Null, &setup(&train)).unwrap();
        assert_eq!(loss.name(), info.name);
    }
}

#[test]
fn registry_errors_list_the_valid_choices() {
    let train = labels(vec![1, 0], 1, 2);
    let err = build::<B>("hil", None, &serde_json::Value::Null, &setup(&train)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("unknown loss 'hil'; valid losses: bce, an, an-ls"),
        "{err}"
    );
    let err = build::<B>(
        "hill",
        None,
        &serde_json::json!({ "lambda": 2.0 }),
        &setup(&train),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains(
            "hill: unknown hyperparameter 'lambda'; valid: gamma, lamb, margin, reduction"
        ),
        "{err}"
    );
    let err = build::<B>(
        "splc",
        None,
        &serde_json::json!({ "tau": 1.5 }),
        &setup(&train),
    )
    .unwrap_err();
    assert_eq!(
        err,
        LossError::OutOfRange {
            loss: "splc",
            name: "tau",
            expected: "in [0, 1]",
            value: "1.5".into()
        }
    );
    // The rate is in percent, as the reference's flag; the old fraction name is refused.
    let err = build::<B>(
        "ll-ct",
        None,
        &serde_json::json!({ "delta_rel_percent": 120.0 }),
        &setup(&train),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("ll-ct: `delta_rel_percent` must be in [0, 100] (percent per epoch"),
        "{err}"
    );
    let err = build::<B>(
        "ll-ct",
        None,
        &serde_json::json!({ "delta_rel": 0.002 }),
        &setup(&train),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("unknown hyperparameter 'delta_rel'; valid: delta_rel_percent"),
        "{err}"
    );
    let err = build::<B>(
        "an",
        None,
        &serde_json::json!({ "alpha": 1 }),
        &setup(&train),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("an: unknown hyperparameter 'alpha'; valid: none"),
        "{err}"
    );
    let no_epochs = LossSetup::<B> {
        epochs: 0,
        ..setup(&train)
    };
    assert!(build::<B>("an", None, &serde_json::Value::Null, &no_epochs).is_err());
    let ok = build::<B>(
        "hill",
        None,
        &serde_json::json!({ "lamb": 2.0, "reduction": "mean" }),
        &setup(&train),
    );
    assert!(ok.is_ok());
}

#[test]
fn ll_cp_state_round_trips_through_a_checkpoint() {
    // 4 x 3, one positive per row; epoch 3 with delta 25 %: k = ceil(12 * 0.25) = 3 corrections.
    let codes = [1i8, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0];
    let logits = [
        2.0f32, 5.0, -3.0, 4.0, 1.0, -1.0, 0.5, 3.0, 2.0, 1.0, -2.0, 6.0,
    ];
    let train = labels(codes.to_vec(), 4, 3);
    let mut loss = build::<B>(
        "ll-cp",
        None,
        &serde_json::json!({ "delta_rel_percent": 25.0 }),
        &setup(&train),
    )
    .unwrap();
    eval(loss.as_mut(), &logits, &codes, 4, 3, 3);
    let state = loss.state();
    let corrected: usize = state.values["corrected"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_array().unwrap().len())
        .sum();
    assert_eq!(corrected, 3);
    let mut restored = build::<B>(
        "ll-cp",
        None,
        &serde_json::json!({ "delta_rel_percent": 25.0 }),
        &setup(&train),
    )
    .unwrap();
    restored.load_state(&state).unwrap();
    assert_eq!(restored.state(), state);
    // A corrected entry is now an observed positive: the same batch gives the same loss in both.
    let a = eval(loss.as_mut(), &logits, &codes, 4, 3, 3).0;
    let b = eval(restored.as_mut(), &logits, &codes, 4, 3, 3).0;
    assert_eq!(a, b);
    let bad = LossState {
        values: serde_json::json!({ "corrected": 5 }),
        ..state.clone()
    };
    assert!(restored.load_state(&bad).is_err());
    let outside = LossState {
        values: serde_json::json!({ "corrected": { "4": [0] } }),
        ..state.clone()
    };
    let err = restored.load_state(&outside).unwrap_err();
    assert!(
        err.to_string()
            .contains("row 4 is outside the training set"),
        "{err}"
    );
    let other = LossState {
        loss: "em-apl".into(),
        ..state
    };
    assert!(restored.load_state(&other).is_err());
}

/// Where the references give NaN (Hill: `ln sigmoid(x - 1)` underflows for x below about -88 in
/// f32, even on negatives; GR: `p^q2` has an infinite derivative where sigmoid underflows), ours
/// stay finite, as their docs say.
#[test]
fn hill_and_gr_stay_finite_where_the_references_give_nan() {
    let codes = [0i8, -1, 0, 1];
    let logits = [-100.0f32, -95.0, -1000.0, 3.0];
    let train = labels(codes.to_vec(), 1, 4);
    for name in ["hill", "gr"] {
        let mut loss = build::<B>(name, None, &serde_json::Value::Null, &setup(&train)).unwrap();
        let (value, grad) = eval(loss.as_mut(), &logits, &codes, 1, 4, 2);
        assert!(
            value.is_finite() && grad.iter().all(|g| g.is_finite()),
            "{name}: {value} {grad:?}"
        );
    }
}
