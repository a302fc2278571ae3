//! The training recipe of each row of a paper table: the repository whose published number the
//! row is compared with, and every value it sets, with where that value comes from.
//!
//! A paper setting's template (`configs/recipes/*.toml`) holds the data protocol and the
//! network; a row's recipe is applied over it as `--set`s. Each source names the original
//! repository's file (or the maintainer's statement) and the section of the project's
//! reference notes it was read from. `cargo xtask reproduce SETTING --plan` prints every row's
//! recipe and resolved config.

/// The four single-positive benchmarks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dataset {
    Voc,
    Coco,
    Nus,
    Cub,
}

impl Dataset {
    /// The loss presets' name (`training.preset`).
    pub fn preset(self) -> &'static str {
        match self {
            Dataset::Voc => "voc",
            Dataset::Coco => "coco",
            Dataset::Nus => "nuswide",
            Dataset::Cub => "cub",
        }
    }
}

/// One value of a recipe: a config key, its TOML value, and its source.
#[derive(Clone, Debug, PartialEq)]
pub struct RecipeValue {
    pub key: &'static str,
    pub value: String,
    pub source: &'static str,
}

/// What a row trains with.
#[derive(Clone, Debug, PartialEq)]
pub struct Recipe {
    /// A short name: `zhou`, `cole`, `ll`, `boostlu`, `gr`, `asl`.
    pub name: &'static str,
    /// The repository (and script) it follows.
    pub follows: &'static str,
    /// What differs from that repository, in words.
    pub differs: Vec<&'static str>,
    /// The values set over the setting's template.
    pub values: Vec<RecipeValue>,
}

impl Recipe {
    /// The `--set KEY=VALUE`s of the recipe.
    pub fn sets(&self) -> Vec<String> {
        self.values
            .iter()
            .map(|v| format!("{}={}", v.key, v.value))
            .collect()
    }
}

/// Where the values come from (`shared/reference/`, cited by section).
const ZHOU_TABLE: &str =
    "Zhou et al. main.py per-dataset bsize / lr (spml-an-epr-role-em.md 1.8, 4.3)";
const ZHOU_TRAINING: &str =
    "Zhou et al. main.py: Adam on the whole network, no head multiplier, no weight decay, 10 epochs (spml-an-epr-role-em.md 4.3)";
const ZHOU_STOP: &str = "Zhou et al. main.train: stop at the first epoch whose val mAP does not improve (spml-an-epr-role-em.md 1.8)";
const ZHOU_LOADERS: &str = "Zhou et al. loaders: drop_last=False (spml-an-epr-role-em.md 4.3)";
const ZHOU_PRESET: &str = "Zhou et al. main.py per-dataset alpha / beta / warmup_epoch (spml-an-epr-role-em.md 1.8); Cole et al.'s expected_num_pos per dataset";
const COLE_TRAINING: &str = "Cole et al. train.py end_to_end: Adam, no schedule, no weight decay, 10 epochs, best val epoch (spml-an-epr-role-em.md 4.2)";
const COLE_SWEEP: &str = "Cole et al. sweep bsize {8, 16} x lr {1e-2 .. 1e-5} (spml-an-epr-role-em.md 4.2); this point: Zhou et al.'s for the dataset; `--sweep` runs the grid";
const COLE_LOADERS: &str =
    "Cole et al. loaders: drop_last=True (spml-an-epr-role-em.md 2, 'Cole's ... also use drop_last=True')";
const LL_MAINTAINER: &str =
    "first author's reply, github.com/snucml/LargeLossMatters/issues/4 (results.md 2.3)";
const LL_CODE: &str =
    "LargeLossMatters train.py / config.py: bsize 16, 10 epochs, head lr_mult 10 (largeloss-boostlu-gr.md 1.5, 4.1)";
const LL_SGD: &str =
    "LargeLossMatters config.py's SGD option: momentum 0.9, weight decay 1e-3 (largeloss-boostlu-gr.md 1.5)";
const LL_STOP: &str =
    "LargeLossMatters train.py: stop when best val mAP - val mAP > 3 (largeloss-boostlu-gr.md 1.5)";
const BOOSTLU_CODE: &str = "BridgeGapExplanationPAMC config.py / README: Adam 1e-5, head x10, bsize 16, 10 epochs, no early stop (largeloss-boostlu-gr.md 2.2)";
const BOOSTLU_ALPHA: &str =
    "BridgeGapExplanationPAMC config.py default and README --alpha 5 (largeloss-boostlu-gr.md 2.1)";
const BOOSTLU_RATE: &str =
    "BridgeGapExplanationPAMC: delta_rel fixed per scheme, LL-R 0.5 % (largeloss-boostlu-gr.md 2.2)";
const GR_CODE: &str = "GRLoss config.py defaults: bsize 8, lr 1e-5, lr_mult 10, Adam, 8 epochs (largeloss-boostlu-gr.md 3.3)";
const GR_STOP: &str =
    "GRLoss train.py: stop when best val mAP - val mAP > 2 (largeloss-boostlu-gr.md 3.3)";

/// The losses of each family (the registry's names); the full-label row and every other
/// loss take the setting's default, Zhou et al.'s recipe.
pub const COLE_ROWS: &[&str] = &["epr"];
pub const LL_ROWS: &[&str] = &["ll-r", "ll-ct", "ll-cp"];

fn value(key: &'static str, value: impl ToString, source: &'static str) -> RecipeValue {
    RecipeValue {
        key,
        value: value.to_string(),
        source,
    }
}

/// Zhou et al.'s per-dataset (batch size, learning rate).
fn zhou_batch_lr(dataset: Dataset) -> (usize, &'static str) {
    match dataset {
        Dataset::Voc => (8, "1e-5"),
        Dataset::Coco => (16, "1e-5"),
        Dataset::Nus => (16, "1e-5"),
        Dataset::Cub => (8, "1e-4"),
    }
}

/// The shared end-to-end fine-tuning values of the single-positive lineage at `dataset`'s
/// batch size and learning rate.
fn spml_values(
    dataset: Dataset,
    batch_lr_source: &'static str,
    training: &'static str,
) -> Vec<RecipeValue> {
    let (batch, lr) = zhou_batch_lr(dataset);
    vec![
        value("training.optimizer", "\"adam\"", training),
        value("training.epochs", 10, training),
        value("training.batch_size", batch, batch_lr_source),
        value("training.lr", lr, batch_lr_source),
        value("training.head_lr_mult", "1.0", training),
        value("training.weight_decay", "0.0", training),
        value(
            "training.preset",
            format!("\"{}\"", dataset.preset()),
            ZHOU_PRESET,
        ),
    ]
}

/// The recipe of `loss` (a registry name, or the full-label row) on a single-positive
/// benchmark.
pub fn single_positive(dataset: Dataset, loss: &str) -> Recipe {
    if LL_ROWS.contains(&loss) {
        return large_loss(dataset, loss);
    }
    match loss {
        "boostlu" => boostlu(),
        "gr" => gr(),
        _ if COLE_ROWS.contains(&loss) => {
            let mut values = spml_values(dataset, COLE_SWEEP, COLE_TRAINING);
            values.push(value("data.drop_last", true, COLE_LOADERS));
            Recipe {
                name: "cole",
                follows: "elijahcole/single-positive-multi-label train.py (end_to_end)",
                differs: vec![
                    "one point of the published batch x lr sweep (Zhou et al.'s for the dataset); `--sweep` runs all eight and keeps the best validation run",
                    "validation and test scored on every row (Cole et al.'s val and test loaders drop the last partial batch too)",
                    "f32 throughout",
                ],
                values,
            }
        }
        _ => {
            let mut values = spml_values(dataset, ZHOU_TABLE, ZHOU_TRAINING);
            values.push(value("training.patience", 1, ZHOU_STOP));
            values.push(value("data.drop_last", false, ZHOU_LOADERS));
            Recipe {
                name: "zhou",
                follows: "Correr-Zhou/SPML-AckTheUnknown main.py",
                differs: vec![
                    "f32 throughout",
                    "ResNet-50's ImageNet weights read from torchvision's file",
                ],
                values,
            }
        }
    }
}

fn large_loss(dataset: Dataset, loss: &str) -> Recipe {
    // (optimizer, lr, delta_rel % of LL-R, LL-Ct, LL-Cp): the maintainer's table.
    let (optimizer, lr, rates) = match dataset {
        Dataset::Voc => ("sgd", "5e-3", [0.2, 0.2, 0.1]),
        Dataset::Coco => ("adam", "1e-5", [0.4, 0.2, 0.2]),
        Dataset::Nus => ("adam", "1e-5", [0.4, 0.2, 0.2]),
        Dataset::Cub => ("adam", "7.5e-5", [0.4, 0.4, 0.2]),
    };
    let scheme = LL_ROWS.iter().position(|l| *l == loss).expect("an LL row");
    let mut values = vec![
        value(
            "training.optimizer",
            format!("\"{optimizer}\""),
            LL_MAINTAINER,
        ),
        value("training.lr", lr, LL_MAINTAINER),
        value(
            "training.loss_overrides.delta_rel_percent",
            rates[scheme],
            LL_MAINTAINER,
        ),
        value("training.epochs", 10, LL_CODE),
        value("training.batch_size", 16, LL_CODE),
        value("training.head_lr_mult", "10.0", LL_CODE),
        value("training.stop_below_best", "3.0", LL_STOP),
    ];
    if optimizer == "sgd" {
        values.push(value("training.momentum", 0.9, LL_SGD));
        values.push(value("training.weight_decay", "1e-3", LL_SGD));
    } else {
        values.push(value("training.weight_decay", "0.0", LL_CODE));
    }
    Recipe {
        name: "ll",
        follows: "snucml/LargeLossMatters train.py, with the first author's per-dataset optimizer, lr and delta_rel",
        differs: vec![
            "the maintainer's reply does not say which of the paper's two settings its values are for; used for end to end, the only one the code runs",
            "f32 throughout",
        ],
        values,
    }
}

fn boostlu() -> Recipe {
    Recipe {
        name: "boostlu",
        follows: "youngwk/BridgeGapExplanationPAMC train.py (LL-R + BoostLU)",
        differs: vec![
            "the same values on every dataset, as the repository fixes them",
            "f32 throughout",
        ],
        values: vec![
            value("training.optimizer", "\"adam\"", BOOSTLU_CODE),
            value("training.lr", "1e-5", BOOSTLU_CODE),
            value("training.head_lr_mult", "10.0", BOOSTLU_CODE),
            value("training.batch_size", 16, BOOSTLU_CODE),
            value("training.epochs", 10, BOOSTLU_CODE),
            value("training.weight_decay", "0.0", BOOSTLU_CODE),
            value("model.boost_alpha", "5.0", BOOSTLU_ALPHA),
            value(
                "training.loss_overrides.delta_rel_percent",
                0.5,
                BOOSTLU_RATE,
            ),
        ],
    }
}

fn gr() -> Recipe {
    Recipe {
        name: "gr",
        follows: "yan4xi1/GRLoss train.py with config.py's defaults",
        differs: vec![
            "the paper's per-dataset beta / alpha / q2q3 were not found: config.py's defaults (Pascal's) on every dataset",
            "f32 throughout",
        ],
        values: vec![
            value("training.optimizer", "\"adam\"", GR_CODE),
            value("training.lr", "1e-5", GR_CODE),
            value("training.head_lr_mult", "10.0", GR_CODE),
            value("training.batch_size", 8, GR_CODE),
            value("training.epochs", 8, GR_CODE),
            value("training.weight_decay", "0.0", GR_CODE),
            value("training.stop_below_best", "2.0", GR_STOP),
        ],
    }
}

/// The partial-label settings' recipe: the template itself (`configs/recipes/asl-coco.toml`
/// carries the ASL / Hill / SPLC values and their sources).
pub fn asl() -> Recipe {
    Recipe {
        name: "asl",
        follows: "xinyu1205/robust-loss-mlml train.py (the ASL recipe), as configs/recipes/asl-coco.toml",
        differs: vec![
            "the epoch is picked on 5 % of train2014 held out, not on val2014 (the test split) as the reference does; `--select-on-test` gives the reference's protocol, labelled in the output",
            "f32 throughout (the reference runs autocast with a GradScaler)",
        ],
        values: Vec::new(),
    }
}

/// The batch sizes and learning rates of Cole et al.'s sweep.
pub const COLE_GRID: &[(usize, &str)] = &[
    (8, "1e-2"),
    (8, "1e-3"),
    (8, "1e-4"),
    (8, "1e-5"),
    (16, "1e-2"),
    (16, "1e-3"),
    (16, "1e-4"),
    (16, "1e-5"),
];
