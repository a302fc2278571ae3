//! Both training recipes replayed against `tests/vectors/train_recipes.json`, which ran them
//! with PyTorch's own `Adam` and `OneCycleLR` on deterministic gradients (float64): the ASL /
//! Hill / SPLC recipe (Adam eps 1e-8, coupled L2 1e-4 on >= 2-D parameters, one-cycle with beta1
//! cycling, EMA 0.9997 after every step) and the single-positive recipe (Adam, head at 10x the
//! learning rate). Every learning rate and beta1 of the schedule's 400 steps, and the parameters
//! and EMA after each of the 120 replayed steps, in f32 at 1e-5 relative (plus a floor of 1e-6
//! of the tensor's largest magnitude, for entries that cross zero).
//!
//! `tests/vectors/optimizers.json` (made by `gen_optimizers.py` from the same tensors and
//! gradients) replays PyTorch's `AdamW` (decay on >= 2-D parameters) under a per-step
//! `CosineAnnealingLR`, and `SGD` with momentum and weight decay and with Nesterov momentum, 60
//! steps each, checked the same way.
//!
//! The file is sensitive to Adam's epsilon (`bn.beta` has gradients of 1e-6) and to coupled
//! versus decoupled decay (`head.weight`'s L2 term is as large as its gradient): the last
//! tests check that burn's default epsilon and a decayed BatchNorm both fail it.

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, Param};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::lr_scheduler::LrScheduler;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use mlml_train::{cosine_lr, torch_sgd, ModelEma, OneCycleConfig, TorchAdam, TorchAdamConfig};
use serde_json::Value;

type B = Autodiff<Flex>;
type Inner = Flex;

/// The vector's five tensors, named as in the file.
#[derive(Module, Debug)]
struct Net<B: Backend> {
    conv_weight: Param<Tensor<B, 4>>,
    bn_gamma: Param<Tensor<B, 1>>,
    bn_beta: Param<Tensor<B, 1>>,
    head_weight: Param<Tensor<B, 2>>,
    head_bias: Param<Tensor<B, 1>>,
}

const NAMES: [&str; 5] = [
    "backbone.conv.weight",
    "backbone.bn.gamma",
    "backbone.bn.beta",
    "head.weight",
    "head.bias",
];

fn load() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/train_recipes.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn load_optimizers() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/optimizers.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn shape(v: &Value, name: &str) -> Vec<usize> {
    v["shapes"][name]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn tensor<B2: Backend, const D: usize>(values: &[f64], shape: &[usize]) -> Tensor<B2, D> {
    let values: Vec<f32> = values.iter().map(|x| *x as f32).collect();
    Tensor::from_data(TensorData::new(values, shape.to_vec()), &Default::default())
}

fn init(v: &Value) -> Net<B> {
    let t = |name: &str| floats(&v["init"][name]);
    Net {
        conv_weight: Param::from_tensor(tensor(&t(NAMES[0]), &shape(v, NAMES[0]))),
        bn_gamma: Param::from_tensor(tensor(&t(NAMES[1]), &shape(v, NAMES[1]))),
        bn_beta: Param::from_tensor(tensor(&t(NAMES[2]), &shape(v, NAMES[2]))),
        head_weight: Param::from_tensor(tensor(&t(NAMES[3]), &shape(v, NAMES[3]))),
        head_bias: Param::from_tensor(tensor(&t(NAMES[4]), &shape(v, NAMES[4]))),
    }
}

/// The generator's gradient of parameter `name` at 1-based step `t` (see the file's
/// `gradient` field), computed in f64 as the generator did.
fn gradient(v: &Value, name: &str, t: usize) -> Vec<f64> {
    let n: usize = shape(v, name).iter().product();
    let k = (name.bytes().map(u64::from).sum::<u64>() % 97 + 1) as f64;
    let scale = v["gradient_scale"][name].as_f64().unwrap();
    let t = t as f64;
    (0..n)
        .map(|i| {
            let i = i as f64;
            (0.37 * t * (i + 1.0) + k).sin() * (0.5 + 0.5 * (0.11 * t + i).cos()) * scale
        })
        .collect()
}

fn grads(v: &Value, net: &Net<B>, t: usize, which: &[usize]) -> GradientsParams {
    let mut grads = GradientsParams::new();
    for &p in which {
        let name = NAMES[p];
        let g = gradient(v, name, t);
        let s = shape(v, name);
        match p {
            0 => grads.register(net.conv_weight.id, tensor::<Inner, 4>(&g, &s)),
            1 => grads.register(net.bn_gamma.id, tensor::<Inner, 1>(&g, &s)),
            2 => grads.register(net.bn_beta.id, tensor::<Inner, 1>(&g, &s)),
            3 => grads.register(net.head_weight.id, tensor::<Inner, 2>(&g, &s)),
            _ => grads.register(net.head_bias.id, tensor::<Inner, 1>(&g, &s)),
        }
    }
    grads
}

fn values<B2: Backend, const D: usize>(t: Tensor<B2, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().into_vec::<f32>().unwrap()
}

fn tensors_of<B2: Backend>(net: &Net<B2>) -> [Vec<f32>; 5] {
    [
        values(net.conv_weight.val()),
        values(net.bn_gamma.val()),
        values(net.bn_beta.val()),
        values(net.head_weight.val()),
        values(net.head_bias.val()),
    ]
}

/// The worst `|got - expected| / (1e-5 |expected| + floor)` over the step's five tensors (<= 1 passes).
fn worst(got: &[Vec<f32>; 5], expected: &Value) -> (f64, String) {
    let mut worst = (0.0, String::new());
    for (p, name) in NAMES.iter().enumerate() {
        let e = floats(&expected[*name]);
        assert_eq!(got[p].len(), e.len(), "{name}: size");
        let floor = 1e-6 * e.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        for (i, (g, e)) in got[p].iter().zip(&e).enumerate() {
            let ratio = (*g as f64 - e).abs() / (1e-5 * e.abs() + floor);
            if ratio > worst.0 {
                worst = (ratio, format!("{name}[{i}]: got {g}, expected {e}"));
            }
        }
    }
    worst
}

/// Replays the ASL recipe with the given Adam; returns the worst parameter and EMA ratios.
fn replay_asl(
    v: &Value,
    adam: TorchAdamConfig,
    check_schedule: bool,
) -> (f64, String, f64, String) {
    let r = &v["asl_recipe"];
    let epochs = r["epochs"].as_u64().unwrap() as usize;
    let steps_per_epoch = r["steps_per_epoch"].as_u64().unwrap() as usize;
    let replayed = r["replayed_steps"].as_u64().unwrap() as usize;
    let adam: TorchAdam = adam.init();
    let mut schedule = OneCycleConfig::new(r["lr"].as_f64().unwrap(), epochs * steps_per_epoch)
        .with_pct_start(r["pct_start"].as_f64().unwrap())
        .with_div_factor(r["div_factor"].as_f64().unwrap())
        .with_final_div_factor(r["final_div_factor"].as_f64().unwrap())
        .with_base_momentum(r["base_momentum"].as_f64().unwrap())
        .with_max_momentum(r["max_momentum"].as_f64().unwrap())
        .init(Some(adam.beta_1()));
    let beta_1 = adam.beta_1();
    let mut optimizer: OptimizerAdaptor<TorchAdam, Net<B>, B> = OptimizerAdaptor::from(adam);
    let mut net = init(v);
    let mut ema = ModelEma::new(&net, r["ema_decay"].as_f64().unwrap());
    let lrs = floats(&r["lr_before_step"]);
    let betas = floats(&r["beta1_before_step"]);
    assert_eq!(lrs.len(), epochs * steps_per_epoch);
    let (mut worst_param, mut worst_ema) = ((0.0, String::new()), (0.0, String::new()));
    for t in 1..=epochs * steps_per_epoch {
        let lr = schedule.step();
        if check_schedule {
            let (e_lr, e_beta) = (lrs[t - 1], betas[t - 1]);
            assert!(
                (lr - e_lr).abs() <= 1e-12 * e_lr,
                "step {t}: lr {lr} vs {e_lr}"
            );
            assert!(
                (beta_1.get() - e_beta).abs() <= 1e-12,
                "step {t}: beta1 {} vs {e_beta}",
                beta_1.get()
            );
        }
        if t > replayed {
            continue;
        }
        let g = grads(v, &net, t, &[0, 1, 2, 3, 4]);
        net = optimizer.step(lr, net, g);
        ema.update(&net);
        let p = worst(&tensors_of(&net), &r["params_after_step"][t - 1]);
        if p.0 > worst_param.0 {
            worst_param = (p.0, format!("step {t}: {}", p.1));
        }
        let e = worst(&tensors_of(ema.module()), &r["ema_after_step"][t - 1]);
        if e.0 > worst_ema.0 {
            worst_ema = (e.0, format!("step {t}: {}", e.1));
        }
    }
    assert_eq!(schedule.steps(), epochs * steps_per_epoch);
    (worst_param.0, worst_param.1, worst_ema.0, worst_ema.1)
}

fn asl_adam(v: &Value) -> TorchAdamConfig {
    let r = &v["asl_recipe"];
    TorchAdamConfig::new()
        .with_epsilon(r["eps"].as_f64().unwrap())
        .with_weight_decay(r["weight_decay"].as_f64().unwrap())
}

#[test]
fn asl_recipe_schedule_adam_l2_and_ema_match_pytorch() {
    let v = load();
    let decayed: Vec<&str> = v["asl_recipe"]["decayed_params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    // The parameters of >= 2 dimensions are exactly the ones the reference decays.
    assert_eq!(decayed, ["backbone.conv.weight", "head.weight"]);
    let (param, where_param, ema, where_ema) = replay_asl(&v, asl_adam(&v), true);
    eprintln!("worst ratio: parameters {param:.3} ({where_param}), EMA {ema:.3} ({where_ema})");
    assert!(param <= 1.0, "parameters: {where_param} (ratio {param})");
    assert!(ema <= 1.0, "EMA: {where_ema} (ratio {ema})");
}

#[test]
fn spml_recipe_with_a_ten_times_head_matches_pytorch() {
    let v = load();
    let r = &v["spml_recipe"];
    let lr = r["lr"].as_f64().unwrap();
    let mult = r["head_lr_mult"].as_f64().unwrap();
    let mut optimizer: OptimizerAdaptor<TorchAdam, Net<B>, B> =
        OptimizerAdaptor::from(TorchAdamConfig::new().init());
    let mut net = init(&v);
    let steps = r["replayed_steps"].as_u64().unwrap() as usize;
    for t in 1..=steps {
        // Two parameter groups: one step per group, each at its own learning rate.
        let backbone = grads(&v, &net, t, &[0, 1, 2]);
        let head = grads(&v, &net, t, &[3, 4]);
        net = optimizer.step(lr, net, backbone);
        net = optimizer.step(lr * mult, net, head);
        let (ratio, at) = worst(&tensors_of(&net), &r["params_after_step"][t - 1]);
        assert!(ratio <= 1.0, "step {t}: {at} (ratio {ratio})");
    }
}

#[test]
fn the_vector_catches_burns_epsilon_and_decayed_batchnorm() {
    let v = load();
    // burn's Adam default epsilon, 1e-5.
    let (param, at, _, _) = replay_asl(&v, asl_adam(&v).with_epsilon(1e-5), false);
    assert!(param > 1.0, "epsilon 1e-5 went unnoticed ({at})");
    eprintln!("epsilon 1e-5: worst ratio {param:.1} ({at})");
    // Decay on every parameter, BatchNorm's 1-D gamma and beta too.
    let (param, at, _, _) = replay_asl(&v, asl_adam(&v).with_decay_min_dims(1), false);
    assert!(param > 1.0, "decayed 1-D parameters went unnoticed ({at})");
    eprintln!("decayed 1-D: worst ratio {param:.1} ({at})");
}

/// The EMA averages BatchNorm's running statistics too, and keeps its own: a training forward
/// pass moves the model's running mean, the average follows by (1 - decay) only.
#[test]
fn ema_averages_batchnorm_statistics_without_sharing_them() {
    use burn::nn::{BatchNorm, BatchNormConfig};
    let device = Default::default();
    let bn: BatchNorm<B> = BatchNormConfig::new(2).with_momentum(0.5).init(&device);
    let mut ema = ModelEma::new(&bn, 0.9);
    // Batch mean of each channel is 4.0; momentum 0.5 moves the running mean 0 -> 2.
    let x = Tensor::<B, 4>::full([2, 2, 1, 1], 4.0, &device);
    let _ = bn.forward(x);
    assert_eq!(values(bn.running_mean.value_sync()), vec![2.0, 2.0]);
    assert_eq!(
        values(ema.module().running_mean.value_sync()),
        vec![0.0, 0.0],
        "the average has its own statistics"
    );
    ema.update(&bn);
    let mean = values(ema.module().running_mean.value_sync());
    assert!(mean.iter().all(|m| (m - 0.2).abs() < 1e-6), "{mean:?}");
    let var = values(ema.module().running_var.value_sync());
    // The running variance stays 1 (a constant batch has variance 0: 0.5 * 1 + 0.5 * 0 = 0.5
    // in the model, 0.9 * 1 + 0.1 * 0.5 = 0.95 in the average).
    assert!(var.iter().all(|v| (v - 0.95).abs() < 1e-6), "{var:?}");
}

/// Replays `steps` steps of `optimizer` with learning rate `lr(t)` against `expected[t - 1]`;
/// the worst ratio and where.
fn replay_plain<O: Optimizer<Net<B>, B>>(
    v: &Value,
    mut optimizer: O,
    lr: impl Fn(usize) -> f64,
    expected: &Value,
) -> (f64, String) {
    let mut net = init(v);
    let steps = expected.as_array().unwrap().len();
    let mut worst_seen = (0.0, String::new());
    for t in 1..=steps {
        let g = grads(v, &net, t, &[0, 1, 2, 3, 4]);
        net = optimizer.step(lr(t), net, g);
        let (ratio, at) = worst(&tensors_of(&net), &expected[t - 1]);
        if ratio > worst_seen.0 {
            worst_seen = (ratio, format!("step {t}: {at}"));
        }
    }
    worst_seen
}

fn replay_adamw(v: &Value, o: &Value, decoupled: bool) -> (f64, String) {
    let r = &o["adamw_cosine"];
    let (lr, min_lr) = (r["lr"].as_f64().unwrap(), r["min_lr"].as_f64().unwrap());
    let total = r["total_steps"].as_u64().unwrap() as usize;
    let adam: TorchAdam = TorchAdamConfig::new()
        .with_epsilon(r["eps"].as_f64().unwrap())
        .with_weight_decay(r["weight_decay"].as_f64().unwrap())
        .with_decoupled_weight_decay(decoupled)
        .init();
    let optimizer: OptimizerAdaptor<TorchAdam, Net<B>, B> = OptimizerAdaptor::from(adam);
    replay_plain(
        v,
        optimizer,
        |t| cosine_lr(lr, min_lr, total, t - 1),
        &r["params_after_step"],
    )
}

#[test]
fn cosine_schedule_matches_pytorch_at_every_step() {
    let o = load_optimizers();
    let r = &o["adamw_cosine"];
    let (lr, min_lr) = (r["lr"].as_f64().unwrap(), r["min_lr"].as_f64().unwrap());
    let total = r["total_steps"].as_u64().unwrap() as usize;
    let expected = floats(&r["lr_before_step"]);
    assert_eq!(expected.len(), total);
    for (step, e) in expected.iter().enumerate() {
        let got = cosine_lr(lr, min_lr, total, step);
        assert!((got - e).abs() <= 1e-12 * e, "step {step}: {got} vs {e}");
    }
    // burn's own cosine scheduler gives the same curve.
    let mut burn_cosine =
        burn::optim::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig::new(lr, total)
            .with_min_lr(min_lr)
            .init()
            .unwrap();
    for (step, e) in expected.iter().enumerate() {
        let got = LrScheduler::step(&mut burn_cosine);
        assert!(
            (got - e).abs() <= 1e-12 * e,
            "burn, step {step}: {got} vs {e}"
        );
    }
}

#[test]
fn adamw_under_a_cosine_schedule_matches_pytorch() {
    let (v, o) = (load(), load_optimizers());
    let (ratio, at) = replay_adamw(&v, &o, true);
    eprintln!("AdamW worst ratio {ratio:.3} ({at})");
    assert!(ratio <= 1.0, "{at} (ratio {ratio})");
    // Adam's coupled L2 in its place is caught.
    let (ratio, at) = replay_adamw(&v, &o, false);
    assert!(ratio > 1.0, "coupled decay went unnoticed ({at})");
}

#[test]
fn sgd_with_momentum_and_weight_decay_matches_pytorch() {
    let (v, o) = (load(), load_optimizers());
    for case in ["sgd_momentum", "sgd_nesterov"] {
        let r = &o[case];
        let lr = r["lr"].as_f64().unwrap();
        let config = torch_sgd(
            r["momentum"].as_f64().unwrap(),
            r["nesterov"].as_bool().unwrap(),
            r["weight_decay"].as_f64().unwrap(),
        );
        let (ratio, at) = replay_plain(
            &v,
            config.init::<B, Net<B>>(),
            |_| lr,
            &r["params_after_step"],
        );
        eprintln!("{case}: worst ratio {ratio:.3} ({at})");
        assert!(ratio <= 1.0, "{case}: {at} (ratio {ratio})");
    }
    // burn's default momentum (dampening 0.1) is not PyTorch's.
    let r = &o["sgd_momentum"];
    let dampened = burn::optim::SgdConfig::new()
        .with_momentum(Some(burn::optim::momentum::MomentumConfig::new()))
        .with_weight_decay(Some(burn::optim::decay::WeightDecayConfig::new(
            r["weight_decay"].as_f64().unwrap() as f32,
        )));
    let lr = r["lr"].as_f64().unwrap();
    let (ratio, at) = replay_plain(
        &v,
        dampened.init::<B, Net<B>>(),
        |_| lr,
        &r["params_after_step"],
    );
    assert!(ratio > 1.0, "dampening 0.1 went unnoticed ({at})");
}
