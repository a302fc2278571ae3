//! Every loss against the vectors produced by running its original implementation (see
//! `tests/vectors/*.json`: `source` names the code, `torch_version` the PyTorch that ran it).
//! Every case of every file is checked: loss value and gradient with respect to the logits (and
//! ROLE's estimator), in f32 on the CPU backend, against the files' float32 blocks.
//!
//! Tolerance: 1e-5 relative, plus an absolute floor. For a loss value the floor is 1e-9. For a
//! gradient it is 1e-6 of the largest magnitude of the gradient compared, so that it scales
//! with the tensor: entries that saturate in f32 (logits of +-20, where PyTorch's and Rust's
//! `exp` round differently and the reference gradient is 0) and entries near zero that come out
//! of f32 sums (whose rounding depends on the summation order) are judged against the size of
//! the gradient, not their own.

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Tensor, TensorData};
use mlml_losses::*;
use serde_json::Value;

type B = Autodiff<Flex>;

const REL: f64 = 1e-5;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .unwrap()
}

fn matrix(v: &Value) -> (Vec<f32>, usize, usize) {
    let rows = v.as_array().expect("a matrix");
    let c = rows[0].as_array().unwrap().len();
    let data = rows
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
        })
        .collect();
    (data, rows.len(), c)
}

fn tensor(v: &Value) -> Tensor<B, 2> {
    let (data, n, c) = matrix(v);
    Tensor::from_data(TensorData::new(data, [n, c]), &Default::default())
}

fn values(t: Tensor<Flex, 2>) -> Vec<f32> {
    t.into_data().convert::<f32>().into_vec::<f32>().unwrap()
}

fn assert_close(what: &str, got: f64, expected: f64, floor: f64) {
    let ok = (got - expected).abs() <= REL * expected.abs() + floor;
    assert!(
        ok,
        "{what}: got {got:e}, expected {expected:e} (diff {:e})",
        (got - expected).abs()
    );
}

/// Runs `loss` on the logits and compares the loss value and the logits' gradient.
fn check(
    what: &str,
    logits: Tensor<B, 2>,
    block: &Value,
    floor: f64,
    loss: impl FnOnce(Tensor<B, 2>) -> Tensor<B, 1>,
) {
    let logits = logits.require_grad();
    let value = loss(logits.clone());
    let grads = value.backward();
    let got = value.into_scalar() as f64;
    assert_close(
        &format!("{what}: loss"),
        got,
        block["loss"].as_f64().unwrap(),
        floor,
    );
    let grad_key = if block.get("grad_logits").is_some() {
        "grad_logits"
    } else {
        "grad"
    };
    let (expected, _, _) = matrix(&block[grad_key]);
    let got = values(logits.grad(&grads).expect("gradient"));
    assert_all_close(&format!("{what}: grad"), &got, &expected);
}

/// Every entry of `got` against `expected`, same length, floor scaled to the tensor.
fn assert_all_close<E: Copy + Into<f64>>(what: &str, got: &[f32], expected: &[E]) {
    assert_eq!(got.len(), expected.len(), "{what}: number of entries");
    let scale = expected
        .iter()
        .fold(0.0f64, |m, e| m.max((*e).into().abs()));
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert_close(
            &format!("{what}[{i}]"),
            *g as f64,
            (*e).into(),
            1e-6 * scale,
        );
    }
}

/// A label matrix of float codes (1 / -1 / 0).
fn label_matrix(codes: &[f32], n: usize, c: usize) -> mlml_data::LabelMatrix {
    mlml_data::LabelMatrix::new(
        (0..c).map(|j| format!("c{j}")).collect(),
        (0..n).map(|i| i.to_string()).collect(),
        codes.iter().map(|x| *x as i8).collect(),
    )
    .unwrap()
}

fn codes_of(t: &Tensor<B, 2>) -> Vec<f32> {
    values(t.clone().inner())
}

fn ctx_rows(n: usize) -> Vec<usize> {
    (0..n).collect()
}

#[test]
fn asl_lineage_bce_focal_asl_hill_splc() {
    for file in [
        "bce_asl.json",
        "focal_asl.json",
        "asl.json",
        "hill.json",
        "splc.json",
    ] {
        let v = load(file);
        let cases = v["cases"].as_array().unwrap();
        assert!(!cases.is_empty());
        for case in cases {
            let name = format!("{file} {}", case["name"]);
            let p = &case["params"];
            let logits = tensor(&case["inputs"]["logits"]);
            let targets = tensor(&case["inputs"]["targets"]).inner();
            let targets = Tensor::<B, 2>::from_inner(targets);
            let rows = ctx_rows(logits.dims()[0]);
            let mut boxed: Box<dyn MultiLabelLoss<B>> = match p["class"].as_str().unwrap() {
                "AsymmetricLoss" | "AsymmetricLossOptimized" => Box::new(
                    AsymmetricLossConfig::new()
                        .with_gamma_neg(p["gamma_neg"].as_f64().unwrap())
                        .with_gamma_pos(p["gamma_pos"].as_f64().unwrap())
                        .with_clip(p["clip"].as_f64().unwrap())
                        .with_eps(p["eps"].as_f64().unwrap())
                        .with_detach_focal(p["disable_torch_grad_focal_loss"].as_bool().unwrap())
                        .init("asl")
                        .unwrap(),
                ),
                "Hill" => Box::new(
                    HillLossConfig::new()
                        .with_lamb(p["lamb"].as_f64().unwrap())
                        .with_margin(p["margin"].as_f64().unwrap())
                        .with_gamma(p["gamma"].as_f64().unwrap())
                        .init()
                        .unwrap(),
                ),
                "SPLC" => Box::new(
                    SplcLossConfig::new()
                        .with_tau(p["tau"].as_f64().unwrap())
                        .with_change_epoch(p["change_epoch"].as_u64().unwrap() as usize)
                        .with_margin(p["margin"].as_f64().unwrap())
                        .with_gamma(p["gamma"].as_f64().unwrap())
                        .init()
                        .unwrap(),
                ),
                other => panic!("{name}: unknown class {other}"),
            };
            // SPLC's vectors record the reference's 0-based epoch index; mlml counts from 1.
            let epoch = case["inputs"]["epoch"]
                .as_u64()
                .map_or(1, |e| e as usize + 1);
            check(&name, logits, &case["float32"], 1e-9, |z| {
                boxed
                    .forward(z, targets, &LossContext::train(epoch, &rows).unwrap())
                    .unwrap()
            });
        }
    }
}

/// Single-positive line: targets are the observed labels (1 / 0), or the full labels for BCE.
#[test]
fn single_positive_line_bce_an_anls_wan_epr_em() {
    for file in [
        "bce.json",
        "an.json",
        "an_ls.json",
        "wan.json",
        "epr.json",
        "em.json",
    ] {
        let v = load(file);
        let logits = tensor(&v["inputs"]["logits"]);
        let rows = ctx_rows(logits.dims()[0]);
        for case in v["cases"].as_array().unwrap() {
            let h = &case["hyperparameters"];
            let name = format!("{file} {h}");
            let (mut boxed, labels): (Box<dyn MultiLabelLoss<B>>, &str) =
                match h["loss"].as_str().unwrap() {
                    "bce" => (Box::new(BceLoss), "true_labels"),
                    "an" => (Box::new(AssumeNegativeLoss), "observed_labels"),
                    "an_ls" => (
                        Box::new(
                            AnLsLossConfig::new()
                                .with_ls_coef(h["ls_coef"].as_f64().unwrap())
                                .init()
                                .unwrap(),
                        ),
                        "observed_labels",
                    ),
                    "wan" => (
                        Box::new(
                            WanLossConfig::new()
                                .with_n_classes(Some(h["num_classes"].as_u64().unwrap() as usize))
                                .init()
                                .unwrap(),
                        ),
                        "observed_labels",
                    ),
                    "epr" => (
                        Box::new(
                            EprLossConfig::new()
                                .with_expected_num_pos(h["expected_num_pos"].as_f64().unwrap())
                                .with_n_classes(Some(h["num_classes"].as_u64().unwrap() as usize))
                                .init()
                                .unwrap(),
                        ),
                        "observed_labels",
                    ),
                    "EM" => (
                        Box::new(
                            EmLossConfig::new()
                                .with_alpha(h["alpha"].as_f64().unwrap())
                                .init()
                                .unwrap(),
                        ),
                        "observed_labels",
                    ),
                    other => panic!("{name}: unknown loss {other}"),
                };
            let mut targets = tensor(&v["inputs"][labels]);
            if labels == "true_labels" {
                // Full 0/1 labels: 0 is an observed negative in mlml's codes.
                targets = targets.clone().mask_fill(targets.equal_elem(0.0), -1.0);
            }
            check(&name, logits.clone(), &case["float32"], 1e-9, |z| {
                boxed
                    .forward(z, targets, &LossContext::train(1, &rows).unwrap())
                    .unwrap()
            });
        }
    }
}

#[test]
fn role_matches_both_gradients() {
    let v = load("role.json");
    let logits = tensor(&v["inputs"]["logits"]);
    let targets = tensor(&v["inputs"]["observed_labels"]);
    let rows: Vec<usize> = v["inputs"]["batch_indices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap() as usize)
        .collect();
    for case in v["cases"].as_array().unwrap() {
        let h = &case["hyperparameters"];
        let estimator =
            LabelEstimator::from_logits(tensor(&v["inputs"]["estimator_logits"]).require_grad());
        let role = RoleLossConfig::new()
            .with_expected_num_pos(h["expected_num_pos"].as_f64().unwrap())
            .with_n_classes(Some(h["num_classes"].as_u64().unwrap() as usize))
            .init(estimator)
            .unwrap();
        let block = &case["float32"];
        let z = logits.clone().require_grad();
        let (matrix_part, penalty) = role.forward_parts(z.clone(), targets.clone(), &rows);
        assert_close(
            "role: reg_loss",
            penalty.clone().into_scalar() as f64,
            block["reg_loss"].as_f64().unwrap(),
            1e-9,
        );
        let loss = matrix_part.mean() + penalty;
        let grads = loss.backward();
        assert_close(
            "role: loss",
            loss.into_scalar() as f64,
            block["loss"].as_f64().unwrap(),
            1e-9,
        );
        let (expected, _, _) = matrix(&block["grad_logits"]);
        assert_all_close(
            &format!("role {h}: grad_logits"),
            &values(z.grad(&grads).unwrap()),
            &expected,
        );
        let (expected, _, _) = matrix(&block["grad_estimator_logits"]);
        let got = values(role.estimator.logits.val().grad(&grads).unwrap());
        // Dense over all rows of the estimator, as the reference's.
        assert_all_close(&format!("role {h}: grad_estimator_logits"), &got, &expected);
    }
}

/// The reference's label matrix with pseudo-negatives stored as `-s`: the codes (1 / 0) and the
/// pseudo-negatives as (row, class, s).
/// (row, class, s) of a pseudo-negative.
type Pseudo = (usize, usize, f32);

fn split_apl_matrix(v: &Value) -> (Vec<f32>, Vec<Pseudo>, usize, usize) {
    let (data, n, c) = matrix(v);
    let mut pseudo = Vec::new();
    let codes = data
        .iter()
        .enumerate()
        .map(|(k, &x)| {
            if x < 0.0 {
                pseudo.push((k / c, k % c, -x));
                0.0
            } else {
                x
            }
        })
        .collect();
    (codes, pseudo, n, c)
}

#[test]
fn em_apl_loss_and_pseudo_labelling_rounds() {
    let v = load("em_apl.json");
    let logits = tensor(&v["inputs"]["logits"]);
    let (codes, pseudo, n, c) = split_apl_matrix(&v["inputs"]["observed_labels"]);
    let targets = Tensor::<B, 2>::from_data(TensorData::new(codes, [n, c]), &Default::default());
    let rows = ctx_rows(n);
    let batch_observed = label_matrix(&codes_of(&targets), n, c);
    let mut state = AplState::default();
    for (r, j, s) in &pseudo {
        state.pseudo_negatives.entry(*r).or_default().push((*j, *s));
    }
    let state = LossState {
        loss: "em-apl".into(),
        values: serde_json::to_value(&state).unwrap(),
        tensors: Default::default(),
    };
    assert!(
        !pseudo.is_empty(),
        "the vector's batch holds pseudo-negatives"
    );
    for case in v["cases"].as_array().unwrap() {
        let h = &case["hyperparameters"];
        let mut loss = EmAplLossConfig::new()
            .with_alpha(h["alpha"].as_f64().unwrap())
            .with_beta(h["beta"].as_f64().unwrap())
            .init(10, &batch_observed)
            .unwrap();
        MultiLabelLoss::<B>::load_state(&mut loss, &state).unwrap();
        check(
            &format!("em_apl {h}"),
            logits.clone(),
            &case["float32"],
            1e-9,
            |z| {
                loss.forward(z, targets.clone(), &LossContext::train(1, &rows).unwrap())
                    .unwrap()
            },
        );
    }

    let pl = &v["pseudo_labeling"];
    let hp = &pl["hyperparameters"];
    let rounds = pl["rounds"].as_array().unwrap();
    let (first, _, n, c) = split_apl_matrix(&rounds[0]["observed_before"]);
    let observed = label_matrix(&first, n, c);
    let mut loss = EmAplLossConfig::new()
        .with_warmup_epoch(hp["warmup_epoch"].as_u64().unwrap() as usize)
        .with_neg_proportion(hp["neg_proportion"].as_f64().unwrap())
        .init(hp["num_epochs"].as_u64().unwrap() as usize, &observed)
        .unwrap();
    for round in rounds {
        let (logits, _, _) = matrix(&round["model_logits_float32"]);
        let probabilities: Vec<f32> = logits.iter().map(|x| 1.0 / (1.0 + (-x).exp())).collect();
        let epoch = round["epoch"].as_u64().unwrap() as usize;
        let assigned = loss
            .pseudo_label_round(epoch, &probabilities, &observed)
            .unwrap();
        let expected_counts: Vec<usize> = round["neg_pl_num_per_class"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        let (_, expected, _, _) = split_apl_matrix(&round["observed_after"]);
        let mut got: Vec<(usize, usize, f32)> = loss
            .apl_state()
            .pseudo_negatives
            .iter()
            .flat_map(|(r, e)| e.iter().map(move |(j, s)| (*r, *j, *s)))
            .collect();
        got.sort_by_key(|(r, j, _)| (*r, *j));
        assert_eq!(
            got.len(),
            expected.len(),
            "epoch {epoch}: number of pseudo-negatives"
        );
        for ((r, j, s), (er, ej, es)) in got.iter().zip(&expected) {
            assert_eq!((r, j), (er, ej), "epoch {epoch}: which entries");
            assert_close(
                &format!("epoch {epoch}: s at ({r}, {j})"),
                *s as f64,
                *es as f64,
                1e-9,
            );
        }
        assert_eq!(
            assigned, expected_counts,
            "epoch {epoch}: pseudo-negatives assigned per class"
        );
    }
    let unlabel: Vec<usize> = pl["unlabel_num"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(loss.apl_state().unlabel_num, unlabel);
}

fn large_loss(h: &Value, variant: &str) -> LargeLoss {
    let scheme = match h["scheme"].as_str().unwrap() {
        "LL-R" => LargeLossScheme::LlR,
        "LL-Ct" => LargeLossScheme::LlCt,
        "LL-Cp" => LargeLossScheme::LlCp,
        other => panic!("scheme {other}"),
    };
    let cp_variant = match variant {
        "released_cli" => LlCpVariant::Released,
        "intended_is_true" => LlCpVariant::StrictWriteBack,
        _ => LlCpVariant::Published,
    };
    LargeLossConfig::new(scheme)
        .with_delta_rel_percent(Some(h["delta_rel"].as_f64().unwrap() * 100.0))
        .with_cp_variant(cp_variant)
        .init()
        .unwrap()
}

#[test]
fn large_loss_schemes_and_ll_cp_write_back() {
    for file in ["ll_r.json", "ll_ct.json", "ll_cp.json"] {
        let v = load(file);
        let logits = tensor(&v["inputs"]["logits"]);
        let targets = tensor(&v["inputs"]["observed_labels"]);
        let c = logits.dims()[1];
        for case in v["cases"].as_array().unwrap() {
            let h = &case["hyperparameters"];
            let name = format!("{file} {}", case["id"]);
            let epoch = h["epoch_1_based"].as_u64().unwrap() as usize;
            assert_eq!(
                clean_rate(epoch, h["delta_rel"].as_f64().unwrap()),
                h["clean_rate_at_epoch"].as_f64().unwrap(),
                "{name}"
            );
            let block = &case["float32"];
            let mut loss = large_loss(h, case["variant"].as_str().unwrap());
            let rows: Vec<usize> = match block.get("batch_sample_indices") {
                Some(idx) => idx
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i.as_u64().unwrap() as usize)
                    .collect(),
                None => ctx_rows(logits.dims()[0]),
            };
            let k = loss.k(epoch, rows.len(), c);
            assert_eq!(
                k.unwrap_or(0) as u64,
                block["k"].as_u64().unwrap_or(0),
                "{name}: k"
            );
            check(&name, logits.clone(), block, 1e-9, |z| {
                loss.forward(
                    z,
                    targets.clone(),
                    &LossContext::train(epoch, &rows).unwrap(),
                )
                .unwrap()
            });
            // LL-Cp stores its selection at the optimizer step, as the reference does after
            // `optimizer.step()`.
            MultiLabelLoss::<B>::on_optimizer_step(
                &mut loss,
                &OptimizerStep {
                    lr: 0.0,
                    gradient: &|_| None,
                },
            )
            .unwrap();
            if let Some(after) = block.get("dataset_label_matrix_after") {
                let (before, _, _) = matrix(&block["dataset_label_matrix_before"]);
                let (after, _, _) = matrix(after);
                let mut expected: Vec<(usize, usize)> = (0..after.len())
                    .filter(|&k| after[k] == 1.0 && before[k] != 1.0)
                    .map(|k| (k / c, k % c))
                    .collect();
                expected.sort_unstable();
                let got: Vec<(usize, usize)> = loss
                    .corrected()
                    .iter()
                    .flat_map(|(r, js)| js.iter().map(move |j| (*r, *j)))
                    .collect();
                assert_eq!(got, expected, "{name}: corrected entries");
            }
        }
    }
}

/// BoostLU's loss is LL-R on the boosted head's logits: from the vector's logits, the loss and
/// its gradient with respect to the logits. (The head itself is tested in `mlml-models`.)
#[test]
fn boostlu_loss_on_the_boosted_logits() {
    let v = load("boostlu_head.json");
    let targets = tensor(&v["inputs"]["observed_labels"]);
    let cases = v["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let id = case["id"].as_str().unwrap();
        let block = &case["float32"];
        let logits = tensor(&block["logits"]);
        let (epoch, percent) = if case["loss"].as_str().unwrap().contains("epoch4") {
            (4, 5.0)
        } else {
            (1, 0.5)
        };
        let mut loss = LargeLossConfig::new(LargeLossScheme::LlR)
            .with_delta_rel_percent(Some(percent))
            .init()
            .unwrap();
        let rows = ctx_rows(logits.dims()[0]);
        check(&format!("boostlu {id}"), logits, block, 1e-9, |z| {
            loss.forward(
                z,
                targets.clone(),
                &LossContext::train(epoch, &rows).unwrap(),
            )
            .unwrap()
        });
    }
}

#[test]
fn gr_loss_schedules_and_values() {
    let v = load("gr_loss.json");
    let logits = tensor(&v["inputs"]["logits"]);
    let targets = tensor(&v["inputs"]["observed_labels"]);
    let rows = ctx_rows(logits.dims()[0]);
    for case in v["cases"].as_array().unwrap() {
        let h = &case["hyperparameters"];
        let arr = |key: &str| -> [f64; 4] {
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
            .with_beta(arr("beta"))
            .with_alpha(arr("alpha"))
            .with_q2(q[0].as_f64().unwrap())
            .with_q3(q[1].as_f64().unwrap())
            .with_linear_init(h["linear_init"].as_u64().unwrap() as usize)
            .init(h["num_epochs"].as_u64().unwrap() as usize)
            .unwrap();
        let epoch = h["epoch_1_based"].as_u64().unwrap() as usize;
        let s = loss.schedule(epoch);
        for (name, got, key) in [
            ("w", s.w, "w"),
            ("b", s.b, "b"),
            ("mu", s.mu, "mu"),
            ("sigma", s.sigma, "sigma"),
        ] {
            assert!(
                (got - h[key].as_f64().unwrap()).abs() < 1e-12,
                "{}: {name} {got}",
                case["id"]
            );
        }
        check(
            &format!("gr {}", case["id"]),
            logits.clone(),
            &case["float32"],
            1e-9,
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
