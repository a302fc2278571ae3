//! `mlml-data`: import datasets, make partial-label sets, inspect and verify them.
//!
//! Exit codes: 0 success, 1 `verify` found bad images, 2 usage, input or I/O error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use mlml_data::formats::{self, CocoOptions, CocoOrder, Difficult, Subset, Unlisted, ZeroMeans};
use mlml_data::generate::{
    drop_positives, keep_per_image, single_positive, spml_split, DropParams, DropReport, EmptyRows,
    KeepPerImageParams, ReleaseRule, SinglePositiveParams, SplitParams,
};
use mlml_data::rng::GeneratorKind;
use mlml_data::{stats, verify, Dataset, ProvenanceStep};
use serde_json::json;

/// mimalloc keeps freed large blocks for reuse, where glibc unmaps every buffer above 32 MiB
/// (a 448 px batch) and the next one faults its pages in again (`docs/benchmarks.md`, image
/// pipeline).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "mlml-data",
    version,
    about = "Build, inspect and verify multi-label sets with missing labels"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read a dataset's official files into an mlml label set (.tsv or .npy).
    Import(ImportArgs),
    /// Remove a fraction of the observed positives (seeded, exact over the whole set).
    Drop(DropArgs),
    /// Keep exactly one observed positive per image, chosen uniformly (the SPML protocol).
    SinglePositive(SinglePositiveArgs),
    /// Split off a validation set as the single-positive protocol does (80/20, MT19937 seed
    /// 1200, then the seed-999 subsampling pass): bit-exact with Cole et al.'s `get_data`.
    Split(SplitArgs),
    /// Print counts: samples, classes, positives, labels per image, per-class counts.
    Stats {
        /// A label set (.tsv or .npy with its sidecar).
        input: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check that every image exists and decodes; lists those that do not (exit 1).
    Verify {
        /// A label set.
        input: PathBuf,
        /// Folder the image paths are relative to.
        #[arg(long)]
        images: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Draw the first n samples of epoch 1 as the image pipeline delivers them (a PNG grid),
    /// and print their labels.
    Preview(PreviewArgs),
    /// Act on the suggestions `mlml suggest` wrote.
    #[command(subcommand)]
    Review(ReviewCommand),
}

#[derive(Subcommand)]
enum ReviewCommand {
    /// Write a new label set with the accepted suggestions observed (positives, or negatives for
    /// `mlml suggest --negatives`); its sidecar records the suggestions, their run, the rule and
    /// the count.
    Apply {
        /// The label set the suggestions' rows index (the run's `observed-labels.npy`, or the
        /// training label file).
        labels: PathBuf,
        /// The suggestions TSV `mlml suggest` wrote.
        suggestions: PathBuf,
        /// `top:N` (ranks 1..N), `min-score:S` (score >= S; <= S for negatives) or a reviewed
        /// copy of the TSV holding only the accepted lines.
        #[arg(long)]
        accept: mlml_data::review::Accept,
        /// The new label set (.tsv or .npy).
        #[arg(short, long)]
        output: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum PreviewTransform {
    /// Resize square, CutoutPIL(0.5), RandAugment (the ASL / Hill / SPLC recipe).
    Asl,
    /// Resize square, random horizontal flip (the single-positive recipe).
    Spml,
    /// Resize square.
    Eval,
    /// Resize(256), CenterCrop(224).
    ImagenetEval,
}

#[derive(Args)]
struct PreviewArgs {
    /// A label set (.tsv or .npy with its sidecar).
    input: PathBuf,
    /// Folder the image paths are relative to.
    #[arg(long)]
    images: PathBuf,
    /// The transform.
    #[arg(long, value_enum)]
    transform: PreviewTransform,
    /// Working size (square side) of spml and eval.
    #[arg(long, default_value_t = 224)]
    size: u32,
    /// The run seed (shuffling and each sample's random choices).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Samples to draw.
    #[arg(short = 'n', default_value_t = 16)]
    n: usize,
    /// The PNG to write.
    #[arg(short = 'o', long)]
    output: PathBuf,
    /// Print the labels as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum ImportFormat {
    /// COCO instances_*.json.
    Coco,
    /// A VOCdevkit/VOC20xx folder.
    Voc,
    /// A NUS-WIDE release folder (Concepts81.txt, AllLabels/, ImageList/).
    Nuswide,
    /// A CUB_200_2011 folder.
    Cub,
    /// mlml list file (path<TAB>classes).
    List,
    /// Hill/SPLC release list (name,idx idx ...); needs --classes.
    Hill,
    /// Dense .npy label matrix; needs --images.
    Npy,
}

#[derive(Args)]
struct ImportArgs {
    /// Source format.
    #[arg(long, value_enum)]
    format: ImportFormat,
    /// The file or folder to read.
    input: PathBuf,
    /// Where to write the set (.tsv list or .npy matrix, plus a .meta.json sidecar).
    #[arg(long, short)]
    output: PathBuf,
    /// Split: voc train|val|trainval|test; nuswide and cub all|train|test.
    #[arg(long)]
    split: Option<String>,
    /// voc: label of a class seen only in difficult objects.
    #[arg(long, value_enum, default_value = "positive")]
    difficult: Difficult,
    /// coco: keep images that have no annotation (left out by default, like the papers).
    #[arg(long)]
    keep_unannotated: bool,
    /// coco: row order.
    #[arg(long, value_enum, default_value = "file")]
    order: CocoOrder,
    /// coco, hill: folder prefix joined to each file name (e.g. train2014).
    #[arg(long)]
    image_prefix: Option<PathBuf>,
    /// hill, npy: class names, one per line (npy default: class_0, class_1, ...).
    #[arg(long)]
    classes: Option<PathBuf>,
    /// npy: image list (.npy of strings or a text file, one path per line).
    #[arg(long)]
    images: Option<PathBuf>,
    /// npy: what a 0 means (full 0/1 label files need `negative`).
    #[arg(long, value_enum, default_value = "unobserved")]
    zero_means: ZeroMeans,
    /// hill: what a class missing from a line means.
    #[arg(long, value_enum, default_value = "unobserved")]
    unlisted: Unlisted,
}

#[derive(Args)]
struct DropArgs {
    /// Fraction of the positives to remove, in [0, 1].
    #[arg(
        long,
        conflicts_with_all = ["keep", "release_rule"],
        required_unless_present_any = ["keep", "release_rule"]
    )]
    ratio: Option<f64>,
    /// Fraction of the positives to keep (1 - ratio).
    #[arg(long, conflicts_with = "release_rule")]
    keep: Option<f64>,
    /// Per image instead, the Hill / SPLC release's rule for "75 % / 40 % of labels left": of
    /// an image's n positives keep floor(n/2)+1 (75) or floor(n/5)+1 (40), chosen uniformly.
    #[arg(long, value_name = "75|40", conflicts_with = "min_positives")]
    release_rule: Option<f64>,
    /// Seed of the ChaCha8 generator.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Each image keeps at least this many of its positives (0 allowed).
    #[arg(long, default_value_t = 1)]
    min_positives: usize,
    /// Fraction of the true negatives kept observed (-1); the rest become unobserved.
    #[arg(long, default_value_t = 0.0)]
    observe_negatives: f64,
    /// Input label set.
    input: PathBuf,
    /// Output label set (.tsv or .npy).
    #[arg(long, short)]
    output: PathBuf,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SinglePositiveArgs {
    /// Seed (1200 with numpy-mt19937 reproduces Cole et al.'s files).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Random generator.
    #[arg(long, value_enum, default_value = "chacha8")]
    generator: GeneratorKind,
    /// Images with no positive: keep them (with none) or drop them.
    #[arg(long, value_enum, default_value = "keep")]
    empty: EmptyRows,
    /// Fraction of the true negatives kept observed (chacha8 only).
    #[arg(long, default_value_t = 0.0)]
    observe_negatives: f64,
    /// Input label set.
    input: PathBuf,
    /// Output label set (.tsv or .npy).
    #[arg(long, short)]
    output: PathBuf,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// `print!` that returns the write error instead of panicking on a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        write!(stdout, $($arg)*).and_then(|()| stdout.flush())?
    }};
}

/// `println!` that returns the write error instead of panicking on a closed pipe.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, $($arg)*).and_then(|()| stdout.flush())?
    }};
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[derive(Args)]
struct SplitArgs {
    /// Fraction of the rows for validation.
    #[arg(long, default_value_t = 0.2)]
    val_frac: f64,
    /// Seed of the permutation (MT19937).
    #[arg(long, default_value_t = 1200)]
    seed: u64,
    /// Seed of the subsampling pass (MT19937).
    #[arg(long, default_value_t = 999)]
    subsample_seed: u64,
    /// Fraction of the train split kept.
    #[arg(long, default_value_t = 1.0)]
    subsample_train: f64,
    /// Fraction of the validation split kept.
    #[arg(long, default_value_t = 1.0)]
    subsample_val: f64,
    /// Input label set.
    input: PathBuf,
    /// Output label set of the train rows (.tsv or .npy).
    #[arg(long)]
    train_out: PathBuf,
    /// Output label set of the validation rows (.tsv or .npy).
    #[arg(long)]
    val_out: PathBuf,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        // A reader that stops early (`mlml-data stats big.tsv | head -1`) is not an error.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mlml-data: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Import(args) => import(args),
        Command::Drop(args) => drop(args),
        Command::SinglePositive(args) => single(args),
        Command::Split(args) => split(args),
        Command::Stats { input, json } => {
            let dataset = formats::load(&input)?;
            let s = stats::stats(&dataset);
            if json {
                outln!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                out!("{s}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify {
            input,
            images,
            json,
        } => verify_cmd(&input, &images, json),
        Command::Preview(args) => preview_cmd(&args),
        Command::Review(ReviewCommand::Apply {
            labels,
            suggestions,
            accept,
            output,
        }) => {
            let dataset = formats::load(&labels)?;
            let (new, applied) = mlml_data::review::apply(&dataset, &suggestions, &accept)?;
            formats::save(&new, &output)?;
            eprintln!(
                "mlml-data: {} accepted ({}), {} left; wrote {}",
                applied.accepted,
                accept,
                applied.left,
                output.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn subset_arg(split: Option<&str>) -> Result<Subset> {
    match split.unwrap_or("all") {
        "all" => Ok(Subset::All),
        "train" => Ok(Subset::Train),
        "test" => Ok(Subset::Test),
        other => bail!("--split must be all, train or test, got '{other}'"),
    }
}

fn import(args: ImportArgs) -> Result<ExitCode> {
    let input = &args.input;
    let split = args.split.as_deref();
    let mut dataset = match args.format {
        ImportFormat::Coco => formats::read_coco(
            input,
            &CocoOptions {
                keep_unannotated: args.keep_unannotated,
                order: args.order,
                image_prefix: args.image_prefix.clone(),
            },
        )?,
        ImportFormat::Voc => {
            let Some(split) = split else {
                bail!("--split is required for voc (train, val, trainval or test)")
            };
            formats::read_voc(input, split, args.difficult)?
        }
        ImportFormat::Nuswide => formats::read_nuswide(input, subset_arg(split)?)?,
        ImportFormat::Cub => formats::read_cub(input, subset_arg(split)?)?,
        ImportFormat::List => formats::read_list(input)?,
        ImportFormat::Hill => {
            let Some(classes) = &args.classes else {
                bail!("--classes FILE is required for hill lists")
            };
            let mut set =
                formats::read_hill_list(input, formats::read_class_list(classes)?, args.unlisted)?;
            // The release lists bare file names (COCO_train2014_....jpg).
            if let Some(prefix) = &args.image_prefix {
                for path in &mut set.image_paths {
                    *path = prefix.join(&*path);
                }
            }
            set
        }
        ImportFormat::Npy => {
            let Some(images) = &args.images else {
                bail!("--images LIST is required for npy matrices")
            };
            let images = formats::read_image_list(images)?;
            let zero = args.zero_means;
            let n_classes = formats::npy::read_labels(input, zero)?.n_classes;
            let classes = match &args.classes {
                Some(path) => formats::read_class_list(path)?,
                None => formats::numbered_classes(n_classes),
            };
            let set = formats::read_npy_set(input, images, classes, zero)?;
            let counts = set.labels.counts();
            if args.zero_means == ZeroMeans::Unobserved
                && counts.negatives == 0
                && counts.unobserved > 0
            {
                eprintln!(
                    "note: {} holds no -1, so its {} zeros were read as unobserved; if 0 means absent \
                     (a full 0/1 annotation), import again with --zero-means negative",
                    input.display(),
                    counts.unobserved
                );
            }
            set
        }
    };
    if dataset.is_empty() {
        bail!("{}: no image to import", input.display());
    }
    if let (Some(split), None) = (split, &dataset.split) {
        dataset.split = Some(split.to_string());
    }
    let counts = dataset.labels.counts();
    dataset.provenance.push(ProvenanceStep {
        step: "import".into(),
        params: json!({
            "format": args.format.to_possible_value().map(|v| v.get_name().to_string()),
            "input": input.display().to_string(),
            "split": dataset.split,
        }),
        report: json!(counts),
    });
    formats::save(&dataset, &args.output)?;
    eprintln!(
        "imported {} images x {} classes ({} positives, {} negatives, {} unobserved) -> {}",
        dataset.len(),
        dataset.labels.n_classes(),
        counts.positives,
        counts.negatives,
        counts.unobserved,
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn write_result(
    dataset: &Dataset,
    step: ProvenanceStep,
    output: &Path,
    json_out: bool,
) -> Result<()> {
    let report = step.report.clone();
    let mut out = dataset.clone();
    out.provenance.push(step);
    formats::save(&out, output)?;
    if json_out {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

fn drop(args: DropArgs) -> Result<ExitCode> {
    if let Some(percent) = args.release_rule {
        return drop_by_release_rule(args, percent);
    }
    let ratio = match (args.ratio, args.keep) {
        (Some(r), None) => r,
        (None, Some(k)) if (0.0..=1.0).contains(&k) => 1.0 - k,
        (None, Some(k)) => bail!("parameter `keep` must be in [0, 1], got {k}"),
        _ => bail!("give exactly one of --ratio and --keep"),
    };
    let params = DropParams {
        ratio,
        min_positives: args.min_positives,
        observe_negatives: args.observe_negatives,
        seed: args.seed,
    };
    params.validate()?;
    let dataset = formats::load(&args.input)?;
    let (labels, report) = drop_positives(&dataset.labels, &params)?;
    let how = format!(
        "target {}, per-image minimum needs {}{}",
        report.target_kept,
        report.required_kept,
        if report.constrained {
            ": the minimum wins"
        } else {
            ""
        },
    );
    let result = Dataset { labels, ..dataset };
    write_dropped(result, "drop", json!(params), &report, &how, &args)
}

/// Reports a drop on stderr and writes the set with its provenance step.
fn write_dropped(
    result: Dataset,
    step: &str,
    params: serde_json::Value,
    report: &DropReport,
    how: &str,
    args: &DropArgs,
) -> Result<ExitCode> {
    eprintln!(
        "positives {} -> {} ({:.2} % kept; {how}); images with a positive {} -> {}; negatives {} -> {}",
        report.before.positives,
        report.after.positives,
        100.0 * report.kept_fraction,
        report.images_with_positives_before,
        report.images_with_positives_after,
        report.before.negatives,
        report.after.negatives,
    );
    let step = ProvenanceStep {
        step: step.into(),
        params: json!({ "generator": GeneratorKind::Chacha8, "params": params }),
        report: json!(report),
    };
    write_result(&result, step, &args.output, args.json)?;
    Ok(ExitCode::SUCCESS)
}

fn drop_by_release_rule(args: DropArgs, percent: f64) -> Result<ExitCode> {
    let Some(rule) = ReleaseRule::from_percent(percent) else {
        bail!("--release-rule {percent}: the release has rules for 75 and 40 (% of labels left)");
    };
    let params = KeepPerImageParams {
        rule,
        observe_negatives: args.observe_negatives,
        seed: args.seed,
    };
    let dataset = formats::load(&args.input)?;
    let (labels, report) = keep_per_image(&dataset.labels, &params)?;
    let how = format!("by the release's {} % rule", rule.percent());
    let result = Dataset { labels, ..dataset };
    write_dropped(
        result,
        "keep-per-image",
        json!(params),
        &report,
        &how,
        &args,
    )
}

fn single(args: SinglePositiveArgs) -> Result<ExitCode> {
    let params = SinglePositiveParams {
        seed: args.seed,
        generator: args.generator,
        observe_negatives: args.observe_negatives,
        empty_rows: args.empty,
    };
    params.validate()?;
    let mut dataset = formats::load(&args.input)?;
    let (labels, report) = single_positive(&dataset.labels, &params)?;
    if report.empty_rows > 0 {
        eprintln!(
            "{} images have no positive ({}): {} (e.g. {})",
            report.empty_rows,
            if report.dropped_rows > 0 {
                "dropped"
            } else {
                "kept with none"
            },
            if report.dropped_rows > 0 {
                "use --empty keep to keep them"
            } else {
                "use --empty drop to drop them"
            },
            report
                .empty_examples
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    eprintln!(
        "positives {} -> {}; images {} -> {}",
        report.before.positives,
        report.after.positives,
        dataset.len(),
        labels.n_samples()
    );
    dataset.retain_samples(|i| report.kept_rows[i]);
    let step = ProvenanceStep {
        step: "single-positive".into(),
        params: json!(params),
        report: json!(report),
    };
    let result = Dataset { labels, ..dataset };
    write_result(&result, step, &args.output, args.json)?;
    Ok(ExitCode::SUCCESS)
}

fn split(args: SplitArgs) -> Result<ExitCode> {
    let params = SplitParams {
        val_frac: args.val_frac,
        seed: args.seed,
        subsample_seed: args.subsample_seed,
        subsample_train: args.subsample_train,
        subsample_val: args.subsample_val,
    };
    let dataset = formats::load(&args.input)?;
    let rows = spml_split(dataset.len(), &params)?;
    eprintln!(
        "{} rows -> train {}, val {}",
        dataset.len(),
        rows.train.len(),
        rows.val.len()
    );
    for (name, chosen, output) in [
        ("train", &rows.train, &args.train_out),
        ("val", &rows.val, &args.val_out),
    ] {
        let mut keep = vec![false; dataset.len()];
        for &i in chosen {
            keep[i] = true;
        }
        let mut part = dataset.clone();
        part.retain_samples(|i| keep[i]);
        let step = ProvenanceStep {
            step: format!("split:{name}"),
            params: json!({ "generator": GeneratorKind::NumpyMt19937, "params": params }),
            report: json!({ "rows": chosen.len(), "of": dataset.len() }),
        };
        part.provenance.push(step);
        formats::save(&part, output)?;
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&rows)?);
    }
    Ok(ExitCode::SUCCESS)
}

fn verify_cmd(input: &Path, images: &Path, json_out: bool) -> Result<ExitCode> {
    let dataset = formats::load(input)?;
    if !images.is_dir() {
        bail!("{}: not a folder", images.display());
    }
    // indicatif hides the bar by itself when stderr is not a terminal.
    let bar = ProgressBar::new(dataset.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images ({per_sec}, eta {eta})")
            .context("progress template")?,
    );
    let bad = verify::verify_images(&dataset, images, || bar.inc(1));
    bar.finish_and_clear();
    if json_out {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({ "checked": dataset.len(), "bad": bad }))?
        );
    } else {
        for b in &bad {
            outln!("{}: {}", b.path.display(), b.reason);
        }
        eprintln!("{} images checked, {} bad", dataset.len(), bad.len());
    }
    Ok(if bad.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn preview_cmd(args: &PreviewArgs) -> Result<ExitCode> {
    use mlml_data::pipeline::{BatchPixels, ImageLoader, LoaderConfig, Transform};
    if args.n == 0 {
        bail!("-n must be at least 1");
    }
    if !args.images.is_dir() {
        bail!("{}: not a folder", args.images.display());
    }
    let dataset = formats::load(&args.input)?;
    let transform = match args.transform {
        PreviewTransform::Asl => Transform::asl(args.size),
        PreviewTransform::Spml => Transform::spml(args.size),
        PreviewTransform::Eval => Transform::eval(args.size, None),
        PreviewTransform::ImagenetEval => Transform::imagenet_eval(),
    };
    let paths: Vec<PathBuf> = dataset
        .image_paths
        .iter()
        .map(|p| args.images.join(p))
        .collect();
    let loader = ImageLoader::new(
        paths,
        transform,
        LoaderConfig {
            batch_size: args.n.min(dataset.len().max(1)),
            u8_batches: true,
            seed: args.seed,
            ..Default::default()
        },
    )?;
    let batch = loader
        .epoch(1)
        .next()
        .context("the label set has no sample")??;
    let BatchPixels::U8(pixels) = &batch.pixels else {
        unreachable!("asked for u8 batches")
    };
    let (w, h) = (batch.width, batch.height);
    let count = batch.rows.len() as u32;
    let cols = (f64::from(count).sqrt().ceil() as u32).max(1);
    let grid_rows = count.div_ceil(cols);
    let gap = 4;
    let mut grid = image::RgbImage::from_pixel(
        cols * (w + gap) + gap,
        grid_rows * (h + gap) + gap,
        image::Rgb([255, 255, 255]),
    );
    let plane = (w * h) as usize;
    for (tile, chw) in pixels.chunks_exact(3 * plane).enumerate() {
        let (x0, y0) = (
            gap + (tile as u32 % cols) * (w + gap),
            gap + (tile as u32 / cols) * (h + gap),
        );
        for y in 0..h {
            for x in 0..w {
                let i = (y * w + x) as usize;
                grid.put_pixel(
                    x0 + x,
                    y0 + y,
                    image::Rgb([chw[i], chw[plane + i], chw[2 * plane + i]]),
                );
            }
        }
    }
    let mut png = Vec::new();
    grid.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .context("encoding the preview")?;
    formats::write_atomic(&args.output, &png)?;
    let classes = dataset.labels.classes();
    // Per tile: its row, the names of its positives and the number of observed negatives.
    let tiles: Vec<(usize, Vec<&str>, usize)> = batch
        .rows
        .iter()
        .map(|&row| {
            let labels = dataset.labels.row(row);
            let positives = labels
                .iter()
                .zip(classes)
                .filter(|(v, _)| **v == mlml_data::POSITIVE)
                .map(|(_, c)| c.as_str())
                .collect();
            let negatives = labels.iter().filter(|v| **v == mlml_data::NEGATIVE).count();
            (row, positives, negatives)
        })
        .collect();
    if args.json {
        let rows: Vec<serde_json::Value> = tiles
            .iter()
            .enumerate()
            .map(|(tile, (row, positives, negatives))| {
                json!({
                    "tile": tile,
                    "row": row,
                    "image": dataset.image_paths[*row],
                    "positives": positives,
                    "negatives": negatives,
                })
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for (tile, (row, positives, _)) in tiles.iter().enumerate() {
            outln!(
                "{tile}\t{row}\t{}\t{}",
                dataset.image_paths[*row].display(),
                positives.join(",")
            );
        }
        eprintln!(
            "wrote {} ({} x {} tiles of {w} x {h}, row-major)",
            args.output.display(),
            cols,
            grid_rows
        );
    }
    Ok(ExitCode::SUCCESS)
}
