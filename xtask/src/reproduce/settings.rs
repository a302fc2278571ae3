//! The settings `reproduce` knows: the embedded ones and the papers', with each paper setting's
//! data layout, import, labels and rows' recipes, in one table.

use std::path::Path;

use crate::recipes::{self, Dataset, Recipe, RecipeValue};

/// A setting on an embedded dataset.
pub(super) struct Setting {
    pub(super) name: &'static str,
    pub(super) config: &'static str,
    pub(super) summary: &'static str,
    /// Seeds when `--seeds` is not given.
    pub(super) seeds: usize,
    /// Whether seed s also draws the labels (`data.label_seed = s`); otherwise every seed trains
    /// on the config's one draw and the seeds differ only in the network's initialisation and
    /// batch order.
    pub(super) seed_draws_labels: bool,
    /// What the rows train (the table's note): a network trained end to end has class
    /// activation maps, so `boostlu` has a row; a head on feature vectors has none.
    pub(super) model: SettingModel,
    /// The same network and recipe in another framework, whose rows stand beside ours.
    pub(super) twin: Option<Twin>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SettingModel {
    /// An MLP on feature vectors (yeast, scene).
    FeatureMlp,
    /// An image network trained end to end.
    EndToEnd,
}

/// A script that trains the setting's network and recipe in PyTorch on the rows and observed
/// labels of one of our runs (read from its `observed-labels.npy`).
pub(super) struct Twin {
    pub(super) framework: &'static str,
    pub(super) script: &'static str,
    /// The rows it trains, each with the stem of its committed measurements
    /// (`<committed>/<stem><seed>.json`).
    pub(super) rows: &'static [(&'static str, &'static str)],
    /// Where the measurements of the committed table lie, read when `--pytorch` is not given.
    pub(super) committed: &'static str,
    /// Where they were measured, for the table's note.
    pub(super) committed_on: &'static str,
}

/// `--quick`'s rows: AN, the full-label bound and one loss of each family (the family, then the
/// loss that stands for it).
pub(super) const QUICK: &[(&str, &str)] = &[
    ("the baseline", "an"),
    (
        "Cole et al.'s assume-negative variants and regularisers (an-ls, wan, epr, role)",
        "role",
    ),
    (
        "the robust losses of the ASL and Hill scripts (asl-bce, focal, asl, hill, splc)",
        "hill",
    ),
    (
        "large-loss rejection and correction (ll-r, ll-ct, ll-cp, boostlu)",
        "ll-r",
    ),
    ("entropy maximisation (em, em-apl)", "em-apl"),
    ("the generalised robust loss (gr)", "gr"),
];

pub(super) const EMBEDDED: &[Setting] = &[
    Setting {
        name: "yeast-single",
        config: "configs/yeast-single.toml",
        summary: "yeast (14 labels, 4.2 positives per row), one observed positive per training row",
        seeds: 5,
        seed_draws_labels: true,
        model: SettingModel::FeatureMlp,
        twin: None,
    },
    Setting {
        name: "yeast-40",
        config: "configs/yeast-40.toml",
        summary: "yeast, 40 % of the training positives kept (at least one per row)",
        seeds: 5,
        seed_draws_labels: true,
        model: SettingModel::FeatureMlp,
        twin: None,
    },
    Setting {
        name: "yeast-75",
        config: "configs/yeast-75.toml",
        summary: "yeast, 75 % of the training positives kept (at least one per row)",
        seeds: 5,
        seed_draws_labels: true,
        model: SettingModel::FeatureMlp,
        twin: None,
    },
    Setting {
        name: "scene-single",
        config: "configs/scene-single.toml",
        summary: "scene (6 labels, 1.07 positives per row), one observed positive per training row",
        seeds: 5,
        seed_draws_labels: true,
        model: SettingModel::FeatureMlp,
        twin: None,
    },
    Setting {
        name: "scene-40",
        config: "configs/scene-40.toml",
        summary: "scene, 40 % of the training positives kept (at least one per row)",
        seeds: 5,
        seed_draws_labels: true,
        model: SettingModel::FeatureMlp,
        twin: None,
    },
    Setting {
        name: "scene-75",
        config: "configs/scene-75.toml",
        summary: "scene, 75 % of the training positives kept (at least one per row)",
        seeds: 5,
        seed_draws_labels: true,
        model: SettingModel::FeatureMlp,
        twin: None,
    },
    Setting {
        name: "fashion-single",
        config: "configs/fashion-single.toml",
        summary:
            "the Fashion-MNIST composite (64x64 canvases, 10 labels, 2.26 positives per row), \
                  one observed positive per training row (one draw, label_seed 0); the small CNN \
                  trained end to end",
        seeds: 3,
        seed_draws_labels: false,
        model: SettingModel::EndToEnd,
        twin: Some(Twin {
            framework: "PyTorch",
            script: "scripts/fashion_torch.py",
            rows: &[("an", "torch-an"), (FULL_LABEL_ROW, "torch-full")],
            committed: "docs/results/fashion-cnn-runs",
            committed_on: "2026-12-06 on a 2-core AMD EPYC, Debian's python3-torch 1.13, one run \
                           at a time (docs/results/fashion-cnn.md)",
        }),
    },
];

/// The full-label upper bound's row name.
pub(super) const FULL_LABEL_ROW: &str = "bce (full labels)";

/// What the single-positive settings' rows train with.
pub(super) const SINGLE_POSITIVE_RECIPES: &str = "ResNet-50 at 448 px, each row with the recipe of the \
     repository its published number comes from (Zhou et al.'s for AN, AN-LS, WAN, ROLE, EM, \
     EM+APL, focal, ASL and full labels; Cole et al.'s for EPR; Large Loss Matters' for LL-R/Ct/Cp; \
     BoostLU's; GR Loss'): `--plan` prints them";

/// A paper setting reproduce can run: where its data sits under `--data` and how it is imported.
pub(super) struct PaperRun {
    pub(super) name: &'static str,
    /// The setting: the data and its labels protocol.
    pub(super) summary: &'static str,
    /// What it trains with, after the summary.
    pub(super) recipe: &'static str,
    /// The recipe (`configs/recipes/`), with its labels protocol.
    pub(super) config: &'static str,
    /// `mlml-data import` of the training and of the test file.
    pub(super) import_train: Import,
    pub(super) import_test: Import,
    /// The folder under `--data` the imported image paths are relative to.
    pub(super) images: &'static str,
    /// Paths under `--data` that must exist.
    pub(super) needs: &'static [&'static str],
    /// Where the training labels come from.
    pub(super) labels: TrainLabels,
    /// Each row's training recipe.
    pub(super) recipes: Recipes,
}

/// How a paper setting's rows train.
#[derive(Clone, Copy, Debug)]
pub(super) enum Recipes {
    /// Each row with the recipe of the repository its published number comes from.
    SinglePositive(Dataset),
    /// Every row with the ASL recipe of the template; SPLC's threshold where the release sets
    /// one.
    Asl { splc_tau: Option<f64> },
}

impl Recipes {
    pub(super) fn recipe(self, loss: &str) -> Recipe {
        match self {
            Recipes::SinglePositive(dataset) => recipes::single_positive(dataset, loss),
            Recipes::Asl { splc_tau } => {
                let mut recipe = recipes::asl();
                if let (Some(tau), "splc") = (splc_tau, loss) {
                    recipe.values.push(RecipeValue {
                        key: "training.loss_overrides.tau",
                        value: tau.to_string(),
                        source: "robust-loss-mlml README: \"when SPLC is used on COCO-75% labels left, the threshold is set 0.65\" (results.md 1)",
                    });
                }
                recipe
            }
        }
    }
}

/// Where a paper setting's training labels come from.
#[derive(Clone, Copy)]
pub(super) enum TrainLabels {
    /// The recipe's single-positive protocol (Cole et al.'s draw), on the imported annotation
    /// file.
    SinglePositive,
    /// Every label of the annotation file.
    Full,
    /// The Hill / SPLC release's "`percent` % left" list, `file`, when it lies in `--data`;
    /// otherwise the release's per-image rule redrawn on the annotation file (the list itself
    /// cannot be regenerated: its generator and seed are unknown).
    Release { percent: u32, file: &'static str },
}

/// A COCO 2014 setting: the annotation files and images under `--data`, with the Hill / SPLC
/// settings' ASL recipe.
pub(super) const fn coco_2014(
    name: &'static str,
    summary: &'static str,
    labels: TrainLabels,
) -> PaperRun {
    PaperRun {
        name,
        summary,
        recipe: "the ASL / Hill / SPLC recipe (ResNet-50 448, RandAugment + Cutout, OneCycle, EMA)",
        config: "configs/recipes/asl-coco.toml",
        import_train: Import {
            input: "annotations/instances_train2014.json",
            args: &["--format", "coco", "--image-prefix", "train2014"],
            data_paths: &[],
        },
        import_test: Import {
            input: "annotations/instances_val2014.json",
            args: &["--format", "coco", "--image-prefix", "val2014"],
            data_paths: &[],
        },
        images: "",
        needs: &[
            "annotations/instances_train2014.json",
            "annotations/instances_val2014.json",
            "train2014",
            "val2014",
        ],
        labels,
        recipes: Recipes::Asl { splc_tau: None },
    }
}

pub(super) const PAPER_RUNS: &[PaperRun] = &[
    PaperRun {
        recipe: SINGLE_POSITIVE_RECIPES,
        config: "configs/recipes/spml-coco-single.toml",
        recipes: Recipes::SinglePositive(Dataset::Coco),
        import_train: Import {
            input: "annotations/instances_train2014.json",
            // Cole et al.'s row order, which their label draw follows.
            args: &[
                "--format",
                "coco",
                "--image-prefix",
                "train2014",
                "--order",
                "id-string",
            ],
            data_paths: &[],
        },
        ..coco_2014(
            "coco-single",
            "COCO 2014, one observed positive per training image (Cole et al. 2021's protocol: \
         single-positive labels, 20 % of train held out for validation, seed 1200)",
            TrainLabels::SinglePositive,
        )
    },
    coco_2014(
        "coco-40",
        "COCO 2014, 40 % of the positives left (Zhang et al. 2021's Hill / SPLC setting)",
        TrainLabels::Release {
            percent: 40,
            file: "coco_train_0.4left.txt",
        },
    ),
    PaperRun {
        recipes: Recipes::Asl {
            splc_tau: Some(0.65),
        },
        ..coco_2014(
            "coco-75",
            "COCO 2014, 75 % of the positives left (Zhang et al. 2021's Hill / SPLC setting)",
            TrainLabels::Release {
                percent: 75,
                file: "coco_train_0.75left.txt",
            },
        )
    },
    PaperRun {
        name: "coco-full",
        recipe: "the ASL / Hill / SPLC recipe with every label",
        ..coco_2014("coco-full", "COCO 2014, full labels", TrainLabels::Full)
    },
    PaperRun {
        name: "voc-single",
        summary: "PASCAL VOC 2012, one observed positive per training image (Cole et al. 2021's \
         protocol, val as the test split)",
        recipe: SINGLE_POSITIVE_RECIPES,
        config: "configs/recipes/spml-voc-single.toml",
        import_train: Import {
            input: "VOCdevkit/VOC2012",
            args: &["--format", "voc", "--split", "train"],
            data_paths: &[],
        },
        import_test: Import {
            input: "VOCdevkit/VOC2012",
            args: &["--format", "voc", "--split", "val"],
            data_paths: &[],
        },
        images: "VOCdevkit/VOC2012",
        needs: &[
            "VOCdevkit/VOC2012/Annotations",
            "VOCdevkit/VOC2012/ImageSets/Main/train.txt",
            "VOCdevkit/VOC2012/ImageSets/Main/val.txt",
            "VOCdevkit/VOC2012/JPEGImages",
        ],
        labels: TrainLabels::SinglePositive,
        recipes: Recipes::SinglePositive(Dataset::Voc),
    },
    PaperRun {
        name: "nus-single",
        summary:
            "NUS-WIDE (81 concepts), one observed positive per training image (Cole et al. 2021's \
         protocol on the papers' formatted files: 20 % of train held out for validation, seed \
         1200; Zhou et al.'s files and Cole et al.'s re-crawl are different image sets)",
        recipe: SINGLE_POSITIVE_RECIPES,
        config: "configs/recipes/spml-nus-single.toml",
        // No script makes NUS-WIDE's formatted files: the papers ship them, and their rows
        // and columns are the protocol.
        import_train: Import {
            input: "formatted_train_labels.npy",
            args: &["--format", "npy", "--zero-means", "negative"],
            data_paths: &[("--images", "formatted_train_images.npy")],
        },
        import_test: Import {
            input: "formatted_val_labels.npy",
            args: &["--format", "npy", "--zero-means", "negative"],
            data_paths: &[("--images", "formatted_val_images.npy")],
        },
        images: "Flickr",
        needs: &[
            "formatted_train_labels.npy",
            "formatted_train_images.npy",
            "formatted_val_labels.npy",
            "formatted_val_images.npy",
            "Flickr",
        ],
        labels: TrainLabels::SinglePositive,
        recipes: Recipes::SinglePositive(Dataset::Nus),
    },
    PaperRun {
        name: "cub-single",
        summary:
            "CUB-200-2011's 312 attributes, one observed positive per training image (Cole et al. \
         2021's protocol: 20 % of train held out for validation, seed 1200)",
        recipe: SINGLE_POSITIVE_RECIPES,
        config: "configs/recipes/spml-cub-single.toml",
        // Cole et al.'s `format_cub.py`: the 312 attributes' `is_present`, rows in images.txt
        // order, split by train_test_split.txt; the importer reads the same files.
        import_train: Import {
            input: "",
            args: &["--format", "cub", "--split", "train"],
            data_paths: &[],
        },
        import_test: Import {
            input: "",
            args: &["--format", "cub", "--split", "test"],
            data_paths: &[],
        },
        images: "",
        needs: &[
            "images.txt",
            "train_test_split.txt",
            "attributes/image_attribute_labels.txt",
            "images",
        ],
        labels: TrainLabels::SinglePositive,
        recipes: Recipes::SinglePositive(Dataset::Cub),
    },
];

/// One `mlml-data import`: its input, relative to `--data`, and its other arguments.
pub(super) struct Import {
    pub(super) input: &'static str,
    pub(super) args: &'static [&'static str],
    /// Options whose value is a path under `--data`: (flag, path).
    pub(super) data_paths: &'static [(&'static str, &'static str)],
}

/// `--smoke`: the whole path on a handful of images, in seconds on a CPU: the small CNN from
/// random weights at 32 px, one epoch.
pub(super) const SMOKE: &[&str] = &[
    "model.backbone=\"small-cnn\"",
    "model.weights=\"random\"",
    "data.image_size=32",
    "data.workers=1",
    "training.epochs=1",
    "training.batch_size=4",
];

/// The losses a smoke run trains when none is asked for: plain AN and two stateful ones.
pub(super) const SMOKE_LOSSES: &[&str] = &["an", "role", "ll-ct"];

pub(super) fn paper_setting_message(name: &str, summary: &str, data: Option<&Path>) -> String {
    let (layout, source) = if name.starts_with("coco") {
        (
            "train2014/, val2014/ and annotations/instances_{train,val}2014.json",
            "https://cocodataset.org/#download (2014 Train images, 2014 Val images, 2014 Train/Val annotations)",
        )
    } else if name.starts_with("voc") {
        (
            "VOCdevkit/VOC2012/JPEGImages/ and VOCdevkit/VOC2012/Annotations/",
            "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/ (training/validation data)",
        )
    } else if name.starts_with("nus") {
        (
            "Flickr/ (the images) and formatted_{train,val}_{labels,images}.npy, the papers' \
             formatted files",
            "the images from \
             https://lms.comp.nus.edu.sg/wp-content/uploads/2019/research/nuswide/NUS-WIDE.html; \
             the formatted files from the single-positive papers' repositories \
             (elijahcole/single-positive-multi-label, Correr-Zhou/SPML-AckTheUnknown)",
        )
    } else if name.starts_with("cub") {
        (
            "the CUB_200_2011 folder: images.txt, train_test_split.txt, images/ and \
             attributes/image_attribute_labels.txt (attributes.txt in it or beside it)",
            "https://www.vision.caltech.edu/datasets/cub_200_2011/",
        )
    } else {
        ("nothing: the set is embedded", "datasets/")
    };
    let data_line = match data {
        None => format!("it needs --data DIR holding {layout} (from {source})."),
        Some(dir) if !dir.is_dir() => format!(
            "--data {}: no such directory; it should hold {layout} (from {source}).",
            dir.display()
        ),
        Some(dir) => format!(
            "--data {}: expected to hold {layout} (from {source}).",
            dir.display()
        ),
    };
    format!(
        "{name} ({summary}): {data_line}\nThe embedded settings need no data: {}.",
        EMBEDDED
            .iter()
            .map(|s| s.name)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project_root;
    #[test]
    fn every_embedded_setting_has_its_config() {
        for setting in EMBEDDED {
            assert!(
                project_root().join(setting.config).is_file(),
                "{}",
                setting.config
            );
        }
    }
}

/// Every paper row's resolved recipe against the values of its reference, written out here
/// independently of `recipes.rs`, with their sources.
#[cfg(test)]
mod recipe_tests {
    use super::*;
    use crate::project_root;

    /// The rows of each family on a single-positive setting.
    const ZHOU: &[&str] = &[
        "an",
        "an-ls",
        "wan",
        "role",
        "em",
        "em-apl",
        "focal",
        "asl",
        FULL_LABEL_ROW,
    ];
    const COLE: &[&str] = &["epr"];
    const LL: &[&str] = &["ll-r", "ll-ct", "ll-cp"];
    const BOOSTLU: &[&str] = &["boostlu"];
    const GR: &[&str] = &["gr"];
    const SINGLE: &[&str] = &["voc-single", "coco-single", "nus-single", "cub-single"];
    const ASL: &[&str] = &["coco-40", "coco-75", "coco-full"];
    const ASL_ROWS: &[&str] = &["an", "asl", "hill", "splc", "focal", FULL_LABEL_ROW];

    /// (settings, rows, key, expected TOML value, source).
    type Expected = (
        &'static [&'static str],
        &'static [&'static str],
        &'static str,
        &'static str,
        &'static str,
    );

    const EXPECTED: &[Expected] = &[
        // Zhou et al. main.py, per-dataset bsize / lr (spml-an-epr-role-em.md 1.8).
        (
            &["voc-single"],
            ZHOU,
            "training.batch_size",
            "8",
            "Zhou main.py, pascal",
        ),
        (
            &["voc-single"],
            ZHOU,
            "training.lr",
            "1e-5",
            "Zhou main.py, pascal",
        ),
        (
            &["coco-single"],
            ZHOU,
            "training.batch_size",
            "16",
            "Zhou main.py, coco",
        ),
        (
            &["coco-single"],
            ZHOU,
            "training.lr",
            "1e-5",
            "Zhou main.py, coco",
        ),
        (
            &["nus-single"],
            ZHOU,
            "training.batch_size",
            "16",
            "Zhou main.py, nuswide",
        ),
        (
            &["nus-single"],
            ZHOU,
            "training.lr",
            "1e-5",
            "Zhou main.py, nuswide",
        ),
        (
            &["cub-single"],
            ZHOU,
            "training.batch_size",
            "8",
            "Zhou main.py, cub",
        ),
        (
            &["cub-single"],
            ZHOU,
            "training.lr",
            "1e-4",
            "Zhou main.py, cub",
        ),
        (
            SINGLE,
            ZHOU,
            "training.optimizer",
            "\"adam\"",
            "Zhou main.py: Adam on f",
        ),
        (
            SINGLE,
            ZHOU,
            "training.head_lr_mult",
            "1.0",
            "Zhou main.py: one group",
        ),
        (
            SINGLE,
            ZHOU,
            "training.weight_decay",
            "0.0",
            "Zhou main.py: no decay",
        ),
        (
            SINGLE,
            ZHOU,
            "training.epochs",
            "10",
            "Zhou main.py: num_epochs 10",
        ),
        (
            SINGLE,
            ZHOU,
            "training.patience",
            "1",
            "Zhou main.train: first non-improving epoch stops",
        ),
        (
            SINGLE,
            ZHOU,
            "data.drop_last",
            "false",
            "Zhou loaders: drop_last=False",
        ),
        (
            &["coco-single"],
            ZHOU,
            "training.preset",
            "\"coco\"",
            "EM / EM+APL coco alpha, beta, warmup",
        ),
        (
            &["cub-single"],
            ZHOU,
            "training.preset",
            "\"cub\"",
            "EM / EM+APL cub alpha, beta, warmup",
        ),
        // Cole et al. train.py end_to_end at one sweep point (spml-an-epr-role-em.md 4.2).
        (
            SINGLE,
            COLE,
            "data.drop_last",
            "true",
            "Cole loaders: drop_last=True",
        ),
        (
            SINGLE,
            COLE,
            "training.optimizer",
            "\"adam\"",
            "Cole train.py: Adam",
        ),
        (
            SINGLE,
            COLE,
            "training.epochs",
            "10",
            "Cole train.py end_to_end: 10 epochs",
        ),
        (
            &["coco-single"],
            COLE,
            "training.batch_size",
            "16",
            "a point of Cole's grid",
        ),
        (
            &["cub-single"],
            COLE,
            "training.lr",
            "1e-4",
            "a point of Cole's grid",
        ),
        // Large Loss Matters: the maintainer's table (results.md 2.3), the code's defaults (1.5).
        (
            &["voc-single"],
            LL,
            "training.optimizer",
            "\"sgd\"",
            "LLM issue 4: VOC SGD",
        ),
        (
            &["voc-single"],
            LL,
            "training.lr",
            "5e-3",
            "LLM issue 4: VOC 5e-3",
        ),
        (
            &["voc-single"],
            LL,
            "training.momentum",
            "0.9",
            "LLM config.py SGD option",
        ),
        (
            &["voc-single"],
            LL,
            "training.weight_decay",
            "1e-3",
            "LLM config.py SGD option",
        ),
        (
            &["coco-single", "nus-single", "cub-single"],
            LL,
            "training.optimizer",
            "\"adam\"",
            "LLM issue 4: Adam",
        ),
        (
            &["coco-single", "nus-single"],
            LL,
            "training.lr",
            "1e-5",
            "LLM issue 4: 1e-5",
        ),
        (
            &["cub-single"],
            LL,
            "training.lr",
            "7.5e-5",
            "LLM issue 4: CUB 7.5e-5",
        ),
        (
            &["voc-single"],
            &["ll-r"],
            "training.loss_overrides.delta_rel_percent",
            "0.2",
            "LLM issue 4",
        ),
        (
            &["voc-single"],
            &["ll-ct"],
            "training.loss_overrides.delta_rel_percent",
            "0.2",
            "LLM issue 4",
        ),
        (
            &["voc-single"],
            &["ll-cp"],
            "training.loss_overrides.delta_rel_percent",
            "0.1",
            "LLM issue 4",
        ),
        (
            &["coco-single", "nus-single"],
            &["ll-r"],
            "training.loss_overrides.delta_rel_percent",
            "0.4",
            "LLM issue 4",
        ),
        (
            &["coco-single", "nus-single"],
            &["ll-ct", "ll-cp"],
            "training.loss_overrides.delta_rel_percent",
            "0.2",
            "LLM issue 4",
        ),
        (
            &["cub-single"],
            &["ll-r", "ll-ct"],
            "training.loss_overrides.delta_rel_percent",
            "0.4",
            "LLM issue 4",
        ),
        (
            &["cub-single"],
            &["ll-cp"],
            "training.loss_overrides.delta_rel_percent",
            "0.2",
            "LLM issue 4",
        ),
        (
            SINGLE,
            LL,
            "training.batch_size",
            "16",
            "LLM config.py bsize 16",
        ),
        (
            SINGLE,
            LL,
            "training.epochs",
            "10",
            "LLM config.py num_epochs 10",
        ),
        (
            SINGLE,
            LL,
            "training.head_lr_mult",
            "10.0",
            "LLM train.py lr_mult 10",
        ),
        (
            SINGLE,
            LL,
            "training.stop_below_best",
            "3.0",
            "LLM train.py: drop > 3 stops",
        ),
        // BoostLU (largeloss-boostlu-gr.md 2.1, 2.2).
        (
            SINGLE,
            BOOSTLU,
            "model.boost_alpha",
            "5.0",
            "BoostLU config.py alpha 5",
        ),
        (SINGLE, BOOSTLU, "training.lr", "1e-5", "BoostLU fixed lr"),
        (
            SINGLE,
            BOOSTLU,
            "training.head_lr_mult",
            "10.0",
            "BoostLU head x10",
        ),
        (
            SINGLE,
            BOOSTLU,
            "training.batch_size",
            "16",
            "BoostLU bsize 16",
        ),
        (
            SINGLE,
            BOOSTLU,
            "training.epochs",
            "10",
            "BoostLU 10 epochs",
        ),
        (
            SINGLE,
            BOOSTLU,
            "training.loss_overrides.delta_rel_percent",
            "0.5",
            "BoostLU LL-R 0.5 %",
        ),
        // GR Loss config.py (largeloss-boostlu-gr.md 3.3).
        (
            SINGLE,
            GR,
            "training.batch_size",
            "8",
            "GRLoss config.py bsize 8",
        ),
        (
            SINGLE,
            GR,
            "training.lr",
            "1e-5",
            "GRLoss config.py lr 1e-5",
        ),
        (
            SINGLE,
            GR,
            "training.epochs",
            "8",
            "GRLoss config.py num_epochs 8",
        ),
        (
            SINGLE,
            GR,
            "training.head_lr_mult",
            "10.0",
            "GRLoss config.py lr_mult 10",
        ),
        (
            SINGLE,
            GR,
            "training.stop_below_best",
            "2.0",
            "GRLoss train.py: drop > 2 stops",
        ),
        // The protocol every single-positive row shares (spml-an-epr-role-em.md 3.4, 4.1).
        (SINGLE, ZHOU, "data.image_size", "448", "Resize((448, 448))"),
        (SINGLE, LL, "data.val_fraction", "0.2", "val_frac 0.2"),
        (SINGLE, GR, "data.split_seed", "1200", "split_seed 1200"),
        (
            SINGLE,
            BOOSTLU,
            "data.label_seed",
            "1200",
            "generate_observed_labels seed 1200",
        ),
        (
            SINGLE,
            COLE,
            "model.backbone",
            "\"resnet50\"",
            "torchvision resnet50",
        ),
        // The ASL recipe (asl-hill-splc.md 4).
        (
            ASL,
            ASL_ROWS,
            "training.batch_size",
            "128",
            "robust-loss-mlml train.py batch 128",
        ),
        (
            ASL,
            ASL_ROWS,
            "training.lr",
            "1e-4",
            "OneCycleLR max_lr 1e-4",
        ),
        (
            ASL,
            ASL_ROWS,
            "training.weight_decay",
            "1e-4",
            "add_weight_decay 1e-4",
        ),
        (
            ASL,
            ASL_ROWS,
            "training.epochs",
            "31",
            "Stop_epoch 30: 31 epochs",
        ),
        (
            ASL,
            ASL_ROWS,
            "training.ema_decay",
            "0.9997",
            "ModelEma 0.9997",
        ),
        (
            ASL,
            ASL_ROWS,
            "training.schedule.one-cycle.epochs",
            "80",
            "OneCycleLR epochs 80",
        ),
        (
            ASL,
            ASL_ROWS,
            "training.schedule.one-cycle.pct_start",
            "0.2",
            "pct_start 0.2",
        ),
        (
            ASL,
            ASL_ROWS,
            "data.transform",
            "\"asl\"",
            "CutoutPIL + RandAugment",
        ),
        (
            &["coco-75"],
            &["splc"],
            "training.loss_overrides.tau",
            "0.65",
            "robust-loss-mlml README",
        ),
    ];

    /// The template with the row's recipe applied as `--set KEY=VALUE`s.
    fn resolved(run: &PaperRun, loss: &str) -> toml::Table {
        let text = std::fs::read_to_string(project_root().join(run.config)).unwrap();
        let mut table: toml::Table = toml::from_str(&text).unwrap();
        for set in run.recipes.recipe(loss).sets() {
            let (key, value) = set.split_once('=').unwrap();
            let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
                .unwrap_or_else(|e| panic!("{}: {set}: {e}", run.name))
                .remove("v")
                .unwrap();
            let parts: Vec<&str> = key.split('.').collect();
            let mut node = &mut table;
            for part in &parts[..parts.len() - 1] {
                node = node
                    .entry(part.to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                    .as_table_mut()
                    .unwrap();
            }
            node.insert(parts[parts.len() - 1].to_string(), value);
        }
        table
    }

    fn lookup<'a>(table: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
        let mut parts = key.split('.');
        let mut value = table.get(parts.next()?)?;
        for part in parts {
            value = value.as_table()?.get(part)?;
        }
        Some(value)
    }

    fn same(a: &toml::Value, b: &toml::Value) -> bool {
        match (
            a.as_float().or(a.as_integer().map(|i| i as f64)),
            b.as_float().or(b.as_integer().map(|i| i as f64)),
        ) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        }
    }

    #[test]
    fn every_row_trains_with_its_references_values() {
        let mut checked = 0;
        for (settings, rows, key, expected, source) in EXPECTED {
            let want: toml::Value = toml::from_str::<toml::Table>(&format!("v = {expected}"))
                .unwrap()
                .remove("v")
                .unwrap();
            for setting in *settings {
                let run = PAPER_RUNS.iter().find(|r| r.name == *setting).unwrap();
                for loss in *rows {
                    let table = resolved(run, loss);
                    let got = lookup(&table, key);
                    assert!(
                        got.is_some_and(|g| same(g, &want)),
                        "{setting}, {loss}: {key} is {got:?}, the reference has {expected} ({source})"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 300, "{checked}");
    }

    /// What a family must not carry over from another: an early stop or a multiplier.
    #[test]
    fn no_row_inherits_another_recipes_stopping_rule() {
        for setting in SINGLE {
            let run = PAPER_RUNS.iter().find(|r| r.name == *setting).unwrap();
            for loss in LL.iter().chain(BOOSTLU).chain(GR).chain(COLE) {
                let table = resolved(run, loss);
                assert!(
                    lookup(&table, "training.patience").is_none(),
                    "{setting}, {loss}"
                );
            }
            for loss in ZHOU.iter().chain(COLE).chain(BOOSTLU) {
                let table = resolved(run, loss);
                assert!(
                    lookup(&table, "training.stop_below_best").is_none(),
                    "{setting}, {loss}"
                );
            }
        }
    }

    #[test]
    fn every_value_of_every_recipe_names_its_source() {
        for run in PAPER_RUNS {
            for loss in ZHOU.iter().chain(COLE).chain(LL).chain(BOOSTLU).chain(GR) {
                let recipe = run.recipes.recipe(loss);
                assert!(!recipe.follows.is_empty());
                for v in &recipe.values {
                    assert!(v.source.len() > 20, "{}: {loss}: {}", run.name, v.key);
                }
            }
        }
    }
}
