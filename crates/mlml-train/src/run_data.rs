//! The `[data]` section of a run's config and the splits it gives: feature vectors, images held
//! in a `.npy` array, or image files listed in an mlml-data label set.

use std::path::{Path, PathBuf};

use crate::error::{bail, Context, Result};
use crate::probe::{extract_features, CacheOutcome, FeatureCache, ProbeInput};
pub use crate::run_rows::{AnySource, Standardization};
use crate::{
    Backbone, ConvBackend, FeatureSet, ImageArray, ImageFiles, ModelConfig, Source, Weights,
};
use burn::tensor::backend::Backend;
use mlml_data::formats::ZeroMeans;
use mlml_data::generate::{
    drop_positives, keep_per_image, single_positive, spml_split, DropParams, KeepPerImageParams,
    ReleaseRule, SinglePositiveParams, SplitParams,
};
use mlml_data::pipeline::{BadImagePolicy, Transform};
use mlml_data::pipeline::{IMAGENET_MEAN, IMAGENET_STD};
use mlml_data::rng::GeneratorKind;
use mlml_data::LabelMatrix;
use serde::{Deserialize, Serialize};

/// Which labels the training rows keep.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabelProtocol {
    /// Every label (the full-label upper bound).
    Full,
    /// One observed positive per row, uniformly chosen (ChaCha8 with `label_seed`).
    SinglePositive,
    /// This fraction of the positives kept (at least one per row), the rest unobserved, as
    /// the Hill / SPLC partial-label settings ("40 % of positives left"): `{ partial = 0.4 }`.
    Partial(f64),
    /// Per image, the Hill / SPLC release's rule for "75 % / 40 % of labels left" (of `n`
    /// positives keep `floor(n/2)+1` or `floor(n/5)+1`, chosen uniformly): `{ release-rule = 40 }`.
    /// The release's own files come through `mlml-data import --format hill` and
    /// `observed-set`.
    ReleaseRule(f64),
    /// The observed labels of `data.observed_set`, a label set of the training images (the
    /// Hill / SPLC release's lists, imported with `mlml-data import --format hill`), looked up
    /// by image path; the validation rows carved from the training file keep the full labels
    /// of `data.train_set`: `"observed-set"`.
    ObservedSet,
}

impl LabelProtocol {
    /// The protocol in words, for logs and reports.
    pub fn describe(self) -> String {
        match self {
            LabelProtocol::Full => "full".into(),
            LabelProtocol::SinglePositive => "single-positive".into(),
            LabelProtocol::Partial(keep) => {
                format!("partial ({:.0} % of positives kept)", 100.0 * keep)
            }
            LabelProtocol::ReleaseRule(percent) => {
                format!("the Hill / SPLC release's per-image rule for {percent} % of labels left")
            }
            LabelProtocol::ObservedSet => "the observed labels of data.observed_set".into(),
        }
    }
}

/// A transform by name (`spml`, `asl`, `eval`, `flip`) or spelled out field by field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TransformSpec {
    /// A named transform: `spml`, `asl`, `eval` or `flip`.
    Named(String),
    /// A transform spelled out field by field.
    Custom(Transform),
}

/// How image arrays are scaled after `x / 255`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArrayNormalize {
    /// Per-channel mean and standard deviation of the training rows.
    #[default]
    TrainStatistics,
    /// Values in [0, 1].
    None,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
/// The `[data]` section: where the rows come from, which labels the training rows keep, the
/// split, and how images are read.
pub struct DataConfig {
    /// `[n, d]` feature matrix (`.npy`).
    #[serde(default)]
    pub train_features: Option<PathBuf>,
    /// `u8` images `[n, h, w]` (grey) or `[n, c, h, w]` (`.npy` or `.npy.gz`).
    #[serde(default)]
    pub train_images: Option<PathBuf>,
    /// An mlml-data label set of image files (`.tsv` list, or `.npy` with its sidecar), full
    /// labels; the images lie under `images`.
    #[serde(default)]
    pub train_set: Option<PathBuf>,
    /// `[n, C]` full 0/1 labels (`.npy`) of `train_features` or `train_images`.
    #[serde(default)]
    pub train_labels: Option<PathBuf>,
    /// One class name per line (features and image arrays).
    #[serde(default)]
    pub classes: Option<PathBuf>,
    /// Folder the label sets' image paths are relative to (default: the set file's folder).
    #[serde(default)]
    pub images: Option<PathBuf>,
    #[serde(default = "single_positive_protocol")]
    /// Which labels the training rows keep.
    pub labels: LabelProtocol,
    /// With `labels = "observed-set"`: the label set whose observed labels the training rows
    /// take, its image paths relative to the image root of `train_set`.
    #[serde(default)]
    pub observed_set: Option<PathBuf>,
    #[serde(default)]
    /// Seed of the label draw.
    pub label_seed: u64,
    /// The generator of the single-positive draw: `chacha8` (default: drawn on the training
    /// rows after the validation split) or `numpy-mt19937`, Cole et al.'s protocol bit for bit
    /// (drawn on the whole training file in its order, then split, as their scripts do; seed
    /// 1200 in their files).
    #[serde(default)]
    pub label_generator: GeneratorKind,
    /// Test rows, of the same kind as the training rows; with them the report gives the test
    /// figures of the selected epoch.
    #[serde(default)]
    pub test_features: Option<PathBuf>,
    #[serde(default)]
    /// Test images `[m, h, w]` or `[m, c, h, w]` (`.npy`), beside `test_labels`.
    pub test_images: Option<PathBuf>,
    #[serde(default)]
    /// A label set of test image files, full labels.
    pub test_set: Option<PathBuf>,
    /// `[m, C]` full 0/1 test labels (`.npy`) of `test_features` or `test_images`.
    #[serde(default)]
    pub test_labels: Option<PathBuf>,
    /// Fraction of the training file held out for validation (the single-positive split).
    #[serde(default = "default_val_fraction")]
    pub val_fraction: f64,
    #[serde(default = "default_split_seed")]
    /// Seed of the validation split.
    pub split_seed: u64,
    /// The training transform of image files (`spml`, `asl`, `eval`, or a table), or of image
    /// arrays (`eval`, or `flip`: a horizontal flip with probability 0.5).
    #[serde(default)]
    pub transform: Option<TransformSpec>,
    /// The square working size of image files.
    #[serde(default = "default_image_size")]
    pub image_size: u32,
    /// Scaling of image arrays.
    #[serde(default)]
    pub normalize: ArrayNormalize,
    /// Threads that decode image files.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// What a missing, truncated or undecodable image does: `fail` or `skip`.
    #[serde(default)]
    pub bad_images: BadImagePolicy,
    /// Folder of the decoded-image cache (image files; `None`: decode every epoch).
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// Folder of the linear-probe feature cache (default: `$MLML_CACHE_DIR/features`, else
    /// `$HOME/.cache/mlml/features`).
    #[serde(default)]
    pub feature_cache: Option<PathBuf>,
    /// Which rows pick the epoch: `held-out` (the default: `val_fraction` of the training
    /// file) or `test`, the ASL / Hill / SPLC reference's protocol (it trains on all of
    /// train2014 and picks its epoch on val2014, its test split, so its test figures are
    /// optimistic; the report says so).
    #[serde(default)]
    pub selection: SelectionSplit,
    /// Leave out each training epoch's last batch when it is short (PyTorch's `drop_last`, as
    /// Cole et al.'s loaders; Zhou et al.'s keep it).
    #[serde(default)]
    pub drop_last: bool,
}

/// Which rows select the epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SelectionSplit {
    /// Rows held out of the training file.
    #[default]
    HeldOut,
    /// The test rows themselves (a reference's protocol, never a default).
    Test,
}

impl DataConfig {
    /// Every file and folder the config names that is not there, as `data.KEY: PATH` lines:
    /// checked before a run directory is written, so that a typo never leaves a run behind.
    pub fn missing_paths(&self) -> Vec<String> {
        let files = [
            ("train_features", &self.train_features),
            ("train_images", &self.train_images),
            ("train_set", &self.train_set),
            ("train_labels", &self.train_labels),
            ("classes", &self.classes),
            ("observed_set", &self.observed_set),
            ("test_features", &self.test_features),
            ("test_images", &self.test_images),
            ("test_set", &self.test_set),
            ("test_labels", &self.test_labels),
        ];
        let mut missing: Vec<String> = files
            .into_iter()
            .filter_map(|(key, path)| Some((key, path.as_ref()?)))
            .filter(|(_, path)| !path.is_file())
            .map(|(key, path)| format!("data.{key}: {} (no such file)", path.display()))
            .collect();
        if let Some(images) = self.images.as_ref().filter(|p| !p.is_dir()) {
            missing.push(format!(
                "data.images: {} (no such folder)",
                images.display()
            ));
        }
        missing
    }
}

fn single_positive_protocol() -> LabelProtocol {
    LabelProtocol::SinglePositive
}

fn default_val_fraction() -> f64 {
    0.2
}

fn default_split_seed() -> u64 {
    1200
}

fn default_image_size() -> u32 {
    224
}

fn default_workers() -> usize {
    2
}

/// The splits of a run: training rows with the protocol's labels, validation and test rows
/// with full labels, all standardised with the training rows' statistics.
pub struct Splits {
    /// The training rows, with their observed labels.
    pub train: AnySource,
    /// The validation rows, with their full labels.
    pub val: AnySource,
    /// The test rows, when the config has them.
    pub test: Option<AnySource>,
    /// The training rows' statistics the inputs were standardised with.
    pub standardization: Option<Standardization>,
    /// Row `i` of `train` is row `train_rows[i]` of the training file.
    pub train_rows: Vec<usize>,
    /// The sample id (the image path as listed, for image files) of each row of the training
    /// file.
    pub file_ids: Vec<String>,
}

impl Splits {
    /// The training file's labels as the run observes them: the training rows' observed labels
    /// in their rows, the held-out rows unobserved (they are scored with their own labels). A
    /// label set [`mlml_data::review::apply`] can add suggestions to, and `data.observed_set`
    /// can train on.
    ///
    /// # Errors
    /// None in practice (the shapes come from the splits).
    pub fn observed_file_labels(&self) -> Result<LabelMatrix> {
        let train = self.train.labels();
        let c = train.n_classes();
        let mut values = vec![mlml_data::UNOBSERVED; self.file_ids.len() * c];
        for (i, &row) in self.train_rows.iter().enumerate() {
            values[row * c..(row + 1) * c].copy_from_slice(train.row(i));
        }
        Ok(LabelMatrix::new(
            train.classes().to_vec(),
            self.file_ids.clone(),
            values,
        )?)
    }
}

impl DataConfig {
    /// The inputs given for the training (or test) rows: config key and path.
    fn inputs(&self, train: bool) -> Vec<(&'static str, &PathBuf)> {
        let keys: [(&'static str, &Option<PathBuf>); 3] = if train {
            [
                ("train_features", &self.train_features),
                ("train_images", &self.train_images),
                ("train_set", &self.train_set),
            ]
        } else {
            [
                ("test_features", &self.test_features),
                ("test_images", &self.test_images),
                ("test_set", &self.test_set),
            ]
        };
        keys.into_iter()
            .filter_map(|(key, path)| path.as_ref().map(|p| (key, p)))
            .collect()
    }

    /// Image files under this config's transforms (the scoring one: the square resize and the
    /// training transform's normalisation) and decoding threads.
    pub fn image_files(&self, paths: Vec<PathBuf>, labels: LabelMatrix) -> Result<ImageFiles> {
        let train = self.file_transform()?;
        let eval = Transform::eval(self.image_size, train.normalize.clone());
        let mut files = ImageFiles::new(paths, labels, train, eval)?;
        files.workers = self.workers.max(1);
        Ok(files)
    }

    /// The training transform of image files.
    pub fn file_transform(&self) -> Result<Transform> {
        let size = self.image_size;
        Ok(match &self.transform {
            None => Transform::spml(size),
            Some(TransformSpec::Custom(t)) => {
                t.validate().context("data.transform")?;
                t.clone()
            }
            Some(TransformSpec::Named(name)) => {
                Transform::named(name, size).with_context(|| {
                    format!(
                    "data.transform: unknown transform '{name}' for image files ({}, or a table)",
                    Transform::NAMES.join(", ")
                )
                })?
            }
        })
    }

    fn array_flip(&self) -> Result<f64> {
        Ok(match &self.transform {
            None => 0.0,
            Some(TransformSpec::Named(name)) => match name.as_str() {
                "eval" => 0.0,
                "flip" => 0.5,
                other => bail!(
                    "data.transform: unknown transform '{other}' for image arrays (eval or flip)"
                ),
            },
            Some(TransformSpec::Custom(_)) => bail!(
                "data.transform: image arrays take `eval` or `flip`; spelled-out transforms are for image files"
            ),
        })
    }

    fn read_rows(&self, train: bool) -> Result<Option<AnySource>> {
        let inputs = self.inputs(train);
        let (key, path) = match inputs.as_slice() {
            [] if train => bail!(
                "[data] needs one of train_features (a .npy matrix), train_images (a .npy u8 array) or train_set (a label set of image files)"
            ),
            [] => return Ok(None),
            [one] => *one,
            more => bail!(
                "[data] gives {}: choose one",
                more.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(" and ")
            ),
        };
        let labels_key = if train { "train_labels" } else { "test_labels" };
        let labels_path = if train {
            &self.train_labels
        } else {
            &self.test_labels
        };
        let need_labels = || {
            labels_path
                .as_ref()
                .with_context(|| format!("data.{key} needs data.{labels_key} (a [n, C] 0/1 .npy)"))
        };
        let classes = || {
            self.classes
                .as_ref()
                .with_context(|| format!("data.{key} needs data.classes (one name per line)"))
                .and_then(|p| Ok(mlml_data::formats::read_class_list(p)?))
        };
        Ok(Some(
            match key.split_once('_').map_or("", |(_, kind)| kind) {
                "features" => AnySource::Features(FeatureSet::from_npy(
                    path,
                    need_labels()?,
                    classes()?,
                    ZeroMeans::Negative,
                )?),
                "images" => {
                    let mut array = ImageArray::from_npy(path, Some(need_labels()?), classes()?)?;
                    array.hflip = self.array_flip()?;
                    AnySource::Array(array)
                }
                _ => {
                    let set = mlml_data::formats::load(path)?;
                    let root = self.image_root(path);
                    let paths = set.image_paths.iter().map(|p| root.join(p)).collect();
                    let mut files = self.image_files(paths, set.labels)?;
                    files.bad_images = self.bad_images;
                    files.cache_dir = self.cache_dir.clone();
                    AnySource::Files(files)
                }
            },
        ))
    }

    /// The folder the image paths of the label set `set` are relative to.
    fn image_root(&self, set: &Path) -> PathBuf {
        self.images
            .clone()
            .unwrap_or_else(|| set.parent().map(Path::to_path_buf).unwrap_or_default())
    }

    /// The labels of the whole training file as `data.observed_set` observes them, row by
    /// row: image files matched by path, feature or array rows by sample id (a run's
    /// `observed-labels.npy` has them). The two must list the same rows and classes, and an
    /// observed positive must be a positive of the full labels: anything else means they
    /// describe different data.
    fn observed_set_labels(&self, all: &AnySource) -> Result<LabelMatrix> {
        let Some(path) = &self.observed_set else {
            bail!(
                "data.labels = \"observed-set\" needs data.observed_set (a label set of the \
                 training rows: a Hill / SPLC release list imported with `mlml-data import`, or \
                 a run's observed-labels.npy after `mlml-data review apply`)"
            );
        };
        let set = mlml_data::formats::load(path)?;
        match (all, &self.train_set) {
            (AnySource::Files(files), Some(train_set)) => set
                .observed_labels_of(
                    path,
                    &files.labels,
                    &files.paths,
                    &self.image_root(train_set),
                )
                .with_context(|| {
                    format!(
                        "data.observed_set against data.train_set {}",
                        train_set.display()
                    )
                }),
            _ => set
                .observed_labels_by_id(path, all.labels())
                .context("data.observed_set against the training rows"),
        }
    }

    /// The training rows' observed labels under the config's protocol.
    fn observed_labels(&self, full: &LabelMatrix) -> Result<LabelMatrix> {
        Ok(match self.labels {
            LabelProtocol::ObservedSet => {
                bail!("an observed set covers the whole training file, not a split of it")
            }
            LabelProtocol::Full => full.clone(),
            LabelProtocol::SinglePositive => {
                let params = SinglePositiveParams {
                    seed: self.label_seed,
                    generator: self.label_generator,
                    ..Default::default()
                };
                single_positive(full, &params)?.0
            }
            LabelProtocol::Partial(_) | LabelProtocol::ReleaseRule(_)
                if self.label_generator != GeneratorKind::Chacha8 =>
            {
                bail!("data.label_generator = \"numpy-mt19937\" reproduces the single-positive protocol only; partial labels are drawn with chacha8")
            }
            LabelProtocol::ReleaseRule(percent) => {
                let Some(rule) = ReleaseRule::from_percent(percent) else {
                    bail!("data.labels: the release has rules for 75 and 40 (% of labels left), got release-rule = {percent}");
                };
                let params = KeepPerImageParams {
                    rule,
                    observe_negatives: 0.0,
                    seed: self.label_seed,
                };
                keep_per_image(full, &params)?.0
            }
            LabelProtocol::Partial(keep) => {
                if !(keep > 0.0 && keep <= 1.0) {
                    bail!("data.labels: the partial fraction of positives kept must be in (0, 1], got {keep}");
                }
                let params = DropParams {
                    ratio: 1.0 - keep,
                    min_positives: 1,
                    observe_negatives: 0.0,
                    seed: self.label_seed,
                };
                drop_positives(full, &params)?.0
            }
        })
    }

    /// The feature cache's folder.
    pub fn feature_cache_dir(&self) -> PathBuf {
        if let Some(dir) = &self.feature_cache {
            return dir.clone();
        }
        match (std::env::var_os("MLML_CACHE_DIR"), std::env::var_os("HOME")) {
            (Some(dir), _) => PathBuf::from(dir).join("features"),
            (None, Some(home)) => PathBuf::from(home).join(".cache/mlml/features"),
            (None, None) => PathBuf::from(".mlml-cache/features"),
        }
    }

    /// Reads the data and makes the splits; a linear probe turns the images into features
    /// first (the whole training file and the test file, so the cache serves every split).
    pub fn prepare<B: ConvBackend>(&self, probe: Option<&Prober<'_, B>>) -> Result<Splits> {
        let mut all = self.read_rows(true)?.expect("training rows are required");
        let mut test = self.read_rows(false)?;
        if let Some(probe) = probe {
            all = probe.features(all, "train")?;
            test = test.map(|t| probe.features(t, "test")).transpose()?;
        }
        if let Some(test) = &test {
            if test.kind() != all.kind()
                || test.input_size() != all.input_size()
                || test.labels().classes() != all.labels().classes()
            {
                bail!(
                    "the test rows ({}, input size {}, {} classes) do not match the training rows ({}, input size {}, {} classes)",
                    test.kind(),
                    test.input_size(),
                    test.labels().n_classes(),
                    all.kind(),
                    all.input_size(),
                    all.labels().n_classes()
                );
            }
        }
        let on_test = self.selection == SelectionSplit::Test;
        let file_ids = all.labels().sample_ids().to_vec();
        let split = if on_test {
            mlml_data::generate::Split {
                train: (0..all.len()).collect(),
                val: Vec::new(),
            }
        } else {
            spml_split(
                all.len(),
                &SplitParams {
                    val_frac: self.val_fraction,
                    seed: self.split_seed,
                    ..Default::default()
                },
            )?
        };
        // Cole et al.'s scripts draw the observed labels on the whole training file, then
        // split, and an observed set covers the whole file; the validation rows keep their
        // clean labels either way.
        let from_set = self.labels == LabelProtocol::ObservedSet;
        if self.observed_set.is_some() && !from_set {
            bail!(
                "data.observed_set is given but data.labels is {}: set data.labels = \"observed-set\" to train on it",
                self.labels.describe()
            );
        }
        let drawn_first = from_set || self.label_generator == GeneratorKind::NumpyMt19937;
        let mut val = match (&test, on_test) {
            (Some(test), true) => test.select(&(0..test.len()).collect::<Vec<_>>()),
            (None, true) => bail!(
                "data.selection = \"test\" picks the epoch on the test rows, and this config has none (data.test_features, test_images or test_set)"
            ),
            (_, false) => all.select(&split.val),
        };
        let mut train = if drawn_first {
            let observed = if from_set {
                self.observed_set_labels(&all)?
            } else {
                self.observed_labels(all.labels())?
            };
            all.with_labels(observed)?.select(&split.train)
        } else {
            all.select(&split.train)
        };
        let standardization = match &mut train {
            AnySource::Features(t) => {
                let (mean, std) = t.standardization();
                Some(Standardization { mean, std })
            }
            AnySource::Array(t) if self.normalize == ArrayNormalize::TrainStatistics => {
                let (mean, std) = t.channel_statistics();
                Some(Standardization { mean, std })
            }
            _ => None,
        };
        if let Some(s) = &standardization {
            for rows in [Some(&mut train), Some(&mut val), test.as_mut()]
                .into_iter()
                .flatten()
            {
                s.apply(rows);
            }
        }
        let train = if drawn_first {
            train
        } else {
            let observed = self.observed_labels(train.labels())?;
            train.with_labels(observed)?
        };
        Ok(Splits {
            train,
            val,
            test,
            standardization,
            train_rows: split.train,
            file_ids,
        })
    }

    /// The test rows alone (for `eval --split test` without rebuilding the training split).
    pub fn test_rows<B: ConvBackend>(
        &self,
        probe: Option<&Prober<'_, B>>,
        standardization: Option<&Standardization>,
    ) -> Result<Option<AnySource>> {
        let mut test = self.read_rows(false)?;
        if let Some(probe) = probe {
            test = test.map(|t| probe.features(t, "test")).transpose()?;
        }
        if let (Some(rows), Some(s)) = (test.as_mut(), standardization) {
            s.apply(rows);
        }
        Ok(test)
    }
}

/// Turns image rows into the frozen backbone's features for a linear probe, through the
/// feature cache; the backbone is built (and its weights read) only on a cache miss.
pub struct Prober<'a, B: Backend> {
    device: B::Device,
    model: &'a ModelConfig,
    seed: u64,
    batch_size: usize,
    cache: FeatureCache,
    backbone: std::cell::OnceCell<Backbone<B>>,
    /// Feature sets read from the cache.
    pub hits: std::cell::Cell<usize>,
    /// Feature sets computed by the backbone.
    pub misses: std::cell::Cell<usize>,
}

impl<'a, B: ConvBackend> Prober<'a, B> {
    /// A prober for a linear-probe model (`None` for any other).
    pub fn new(
        data: &DataConfig,
        model: &'a ModelConfig,
        seed: u64,
        batch_size: usize,
        device: &B::Device,
    ) -> Option<Self> {
        model.is_probe().then(|| Self {
            device: device.clone(),
            model,
            seed,
            batch_size,
            cache: FeatureCache {
                dir: data.feature_cache_dir(),
            },
            backbone: std::cell::OnceCell::new(),
            hits: std::cell::Cell::new(0),
            misses: std::cell::Cell::new(0),
        })
    }

    /// How images reach the backbone: grey arrays become three channels, and arrays (in
    /// [0, 1]) get ImageNet's normalisation, which the pipeline's transforms of image files
    /// already apply.
    fn input(&self, rows: &AnySource) -> ProbeInput {
        let array = matches!(rows, AnySource::Array(_));
        ProbeInput {
            size: self.model.probe_size,
            grey_to_rgb: array,
            normalize: array.then_some((IMAGENET_MEAN, IMAGENET_STD)),
        }
    }

    /// The rows' features, with their labels.
    pub fn features(&self, rows: AnySource, which: &str) -> Result<AnySource> {
        if matches!(rows, AnySource::Features(_)) {
            bail!("model.mode = \"linear-probe\" needs images; the data gives feature vectors");
        }
        let input = self.input(&rows);
        let channels = if input.grey_to_rgb {
            3
        } else {
            rows.input_size()
        };
        let seed = if self.model.weights == Weights::Random {
            format!(" seed {}", self.seed)
        } else {
            String::new()
        };
        let key = format!(
            "mlml linear-probe features v1\nbackbone {}{seed}\ninput {}\nrows {}\n",
            self.model.backbone_key(),
            input.describe(),
            rows.fingerprint()
        );
        let device = &self.device;
        let (features, dim, outcome) = self.cache.get_or_compute(&key, rows.len(), || {
            let backbone = match self.backbone.get() {
                Some(b) => b,
                None => {
                    let built = crate::seeded_init::<B, _>(device, self.seed, || {
                        self.model.probe_backbone(channels, device)
                    })?;
                    self.backbone.get_or_init(|| built)
                }
            };
            tracing::info!(
                "mlml: extracting {} features of {} {which} rows (cached in {} for later runs)",
                self.model.backbone.name(),
                rows.len(),
                self.cache.dir.display()
            );
            extract_features(backbone, &rows, &input, self.batch_size, device)
        })?;
        match outcome {
            CacheOutcome::Hit => self.hits.set(self.hits.get() + 1),
            CacheOutcome::Miss => self.misses.set(self.misses.get() + 1),
        }
        Ok(AnySource::Features(FeatureSet {
            features,
            dim,
            labels: rows.labels().clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlml_data::generate::single_positive;
    use mlml_data::POSITIVE;
    use tempfile::TempDir;

    fn yeast(extra: &str) -> DataConfig {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../datasets/yeast");
        toml::from_str(&format!(
            "train_features = \"{root}/train_x.npy\"\ntrain_labels = \"{root}/train_y.npy\"\n\
             classes = \"{root}/classes.txt\"\n{extra}"
        ))
        .unwrap()
    }

    /// Cole et al.'s order: the single-positive draw on the whole training file (the
    /// library's generator, checked against their files in mlml-data), then the 80/20 split.
    #[test]
    fn the_numpy_protocol_draws_on_the_whole_file_then_splits() {
        let config = yeast("label_generator = \"numpy-mt19937\"\nlabel_seed = 1200");
        let splits = config.prepare::<burn::backend::Flex>(None).unwrap();
        let full = config.read_rows(true).unwrap().unwrap().labels().clone();
        let params = SinglePositiveParams {
            seed: 1200,
            generator: GeneratorKind::NumpyMt19937,
            ..Default::default()
        };
        let whole = single_positive(&full, &params).unwrap().0;
        let split = spml_split(
            full.n_samples(),
            &SplitParams {
                val_frac: 0.2,
                seed: 1200,
                ..Default::default()
            },
        )
        .unwrap();
        let train = splits.train.labels();
        assert_eq!(train.n_samples(), split.train.len());
        for (k, &row) in split.train.iter().enumerate() {
            assert_eq!(
                train.row(k),
                whole.row(row),
                "training row {k} (file row {row})"
            );
        }
        // The validation rows keep their clean labels.
        for (k, &row) in split.val.iter().enumerate() {
            assert_eq!(splits.val.labels().row(k), full.row(row));
        }
        // The default (ChaCha8 after the split) draws other labels.
        let chacha = yeast("label_seed = 1200")
            .prepare::<burn::backend::Flex>(None)
            .unwrap();
        assert_ne!(chacha.train.labels().values(), train.values());
    }

    #[test]
    fn the_numpy_generator_refuses_partial_labels() {
        let config = yeast("label_generator = \"numpy-mt19937\"\nlabels = { partial = 0.4 }");
        let Err(err) = config.prepare::<burn::backend::Flex>(None) else {
            panic!("partial labels with numpy-mt19937 were accepted");
        };
        assert!(
            err.to_string()
                .contains("reproduces the single-positive protocol only"),
            "{err}"
        );
    }

    /// `{ release-rule = 40 }`: each training row keeps floor(n/5)+1 of its n positives, a
    /// subset of them, with every other label unobserved; the validation rows stay clean.
    #[test]
    fn the_release_rule_keeps_its_count_per_training_row() {
        use mlml_data::{POSITIVE, UNOBSERVED};
        let config = yeast("labels = { release-rule = 40 }\nlabel_seed = 5");
        let splits = config.prepare::<burn::backend::Flex>(None).unwrap();
        let full = config.read_rows(true).unwrap().unwrap().labels().clone();
        let split = spml_split(
            full.n_samples(),
            &SplitParams {
                val_frac: config.val_fraction,
                seed: config.split_seed,
                ..Default::default()
            },
        )
        .unwrap();
        let train = splits.train.labels();
        assert_eq!(train.n_samples(), split.train.len());
        let mut dropped = 0;
        for (k, &row) in split.train.iter().enumerate() {
            let n = full.row(row).iter().filter(|&&v| v == POSITIVE).count();
            let kept = train.row(k).iter().filter(|&&v| v == POSITIVE).count();
            assert_eq!(kept, n.min(n / 5 + 1), "training row {k} (file row {row})");
            for (after, before) in train.row(k).iter().zip(full.row(row)) {
                assert!(*after == UNOBSERVED || (*after == POSITIVE && *before == POSITIVE));
            }
            dropped += n - kept;
        }
        assert!(dropped > 0);
        for (k, &row) in split.val.iter().enumerate() {
            assert_eq!(splits.val.labels().row(k), full.row(row));
        }
        let bad = yeast("labels = { release-rule = 50 }");
        let Err(err) = bad.prepare::<burn::backend::Flex>(None) else {
            panic!("release-rule = 50 was accepted");
        };
        assert!(err.to_string().contains("rules for 75 and 40"), "{err}");
    }

    /// Twelve images of classes a, b, c (image `i` has `a` when `i` is even, `b` when
    /// `i.is_multiple_of(3)`, `c` otherwise too) and an observed set listing them in reverse order, each
    /// keeping its first positive; `edit` rewrites the observed set's lines.
    fn observed_set_fixture(edit: impl Fn(Vec<String>) -> Vec<String>) -> (TempDir, DataConfig) {
        let dir = tempfile::tempdir().unwrap();
        let positives = |i: usize| -> Vec<&str> {
            let mut p = Vec::new();
            if i.is_multiple_of(2) {
                p.push("a");
            }
            if i.is_multiple_of(3) {
                p.push("b");
            }
            if p.is_empty() || i.is_multiple_of(5) {
                p.push("c");
            }
            p
        };
        let full: String = (0..12)
            .map(|i| format!("img/{i}.jpg\t{}\n", positives(i).join(",")))
            .collect();
        std::fs::write(
            dir.path().join("train.tsv"),
            format!("#classes\ta,b,c\n{full}"),
        )
        .unwrap();
        let lines = (0..12)
            .rev()
            .map(|i| format!("img/{i}.jpg\t{}", positives(i)[0]))
            .collect();
        let observed = edit(lines).join("\n");
        std::fs::write(
            dir.path().join("observed.tsv"),
            format!("#classes\ta,b,c\n#unlisted\tunobserved\n{observed}\n"),
        )
        .unwrap();
        let config = toml::from_str(&format!(
            "train_set = {:?}\nobserved_set = {:?}\nlabels = \"observed-set\"\nval_fraction = 0.25\nimage_size = 32",
            dir.path().join("train.tsv").display().to_string(),
            dir.path().join("observed.tsv").display().to_string(),
        ))
        .unwrap();
        (dir, config)
    }

    /// `labels = "observed-set"`: each training row takes its image's observed labels (looked
    /// up by path, whatever the order of the observed set), the validation rows keep the
    /// full annotation.
    #[test]
    fn an_observed_set_labels_the_training_rows_and_leaves_validation_full() {
        use mlml_data::{NEGATIVE, UNOBSERVED};
        let (_dir, config) = observed_set_fixture(|lines| lines);
        let splits = config.prepare::<burn::backend::Flex>(None).unwrap();
        let (train, val) = (splits.train.labels(), splits.val.labels());
        assert_eq!((train.n_samples(), val.n_samples()), (9, 3));
        let index = |id: &str| -> usize {
            id.trim_start_matches("img/")
                .trim_end_matches(".jpg")
                .parse()
                .unwrap()
        };
        let first = |i: usize| {
            if i.is_multiple_of(2) {
                0
            } else if i.is_multiple_of(3) {
                1
            } else {
                2
            }
        };
        for (k, id) in train.sample_ids().iter().enumerate() {
            let i = index(id);
            for class in 0..3 {
                let expected = if class == first(i) {
                    POSITIVE
                } else {
                    UNOBSERVED
                };
                assert_eq!(
                    train.row(k)[class],
                    expected,
                    "training image {i}, class {class}"
                );
            }
        }
        let mut val_negatives = 0;
        for (k, id) in val.sample_ids().iter().enumerate() {
            let i = index(id);
            let row = val.row(k);
            assert_eq!(row[0] == POSITIVE, i % 2 == 0, "validation image {i}");
            assert_eq!(row[1] == POSITIVE, i % 3 == 0, "validation image {i}");
            val_negatives += row.iter().filter(|&&v| v == NEGATIVE).count();
        }
        assert!(
            val_negatives > 0,
            "the validation rows lost their negatives"
        );
    }

    #[test]
    fn an_observed_set_that_disagrees_with_the_training_set_is_refused() {
        let message = |edit: fn(Vec<String>) -> Vec<String>| {
            let (_dir, config) = observed_set_fixture(edit);
            match config.prepare::<burn::backend::Flex>(None) {
                Ok(_) => panic!("accepted"),
                Err(e) => e.to_string(),
            }
        };
        let missing = message(|mut l| {
            l.retain(|l| !l.starts_with("img/4.jpg"));
            l
        });
        assert!(
            missing.contains("observed.tsv: no line for img/4.jpg"),
            "{missing}"
        );
        // Image 1 has only c.
        let contradicts = message(|mut l| {
            for line in &mut l {
                if line.starts_with("img/1.jpg") {
                    *line = "img/1.jpg\ta".into();
                }
            }
            l
        });
        assert!(
            contradicts.contains("img/1.jpg is positive for 'a'"),
            "{contradicts}"
        );
        let extra = message(|mut l| {
            l.push("img/99.jpg\ta".into());
            l
        });
        assert!(
            extra.contains("13 images") && extra.contains("12"),
            "{extra}"
        );
        // An observed set without the protocol that reads it is a mistake, not ignored.
        let (_dir, mut config) = observed_set_fixture(|l| l);
        config.labels = LabelProtocol::Full;
        let err = config
            .prepare::<burn::backend::Flex>(None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("data.observed_set is given"), "{err}");
    }

    /// A spelled-out transform is checked when the run starts, the field named.
    #[test]
    fn a_transform_table_out_of_range_is_refused_with_its_field() {
        let table = |jitter: &str| {
            yeast(&format!(
                "[transform]\nname = \"mine\"\nhflip = 0.5\nresize = {{ square = {{ size = 64 }} }}\n\
                 color_jitter = {{ {jitter} }}"
            ))
        };
        assert!(table("hue = 0.1, saturation = 0.3")
            .file_transform()
            .is_ok());
        let err = table("hue = 0.6").file_transform().unwrap_err().to_string();
        assert!(
            err.contains("data.transform") && err.contains("color_jitter.hue"),
            "{err}"
        );
    }
}
