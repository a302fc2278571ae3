//! `cargo xtask reproduce`'s command line.

use std::path::PathBuf;

use super::settings::{EMBEDDED, PAPER_RUNS};
use crate::project_root;

#[derive(Debug)]
pub(super) struct Options {
    pub(super) setting: String,
    /// `None`: the setting's default.
    pub(super) seeds: Option<usize>,
    pub(super) losses: Vec<String>,
    pub(super) mlml: Option<PathBuf>,
    pub(super) runs: Option<PathBuf>,
    pub(super) results: PathBuf,
    pub(super) sweep: bool,
    pub(super) data: Option<PathBuf>,
    pub(super) backend: String,
    pub(super) smoke: bool,
    /// Print each row's recipe and resolved run instead of training.
    pub(super) plan: bool,
    pub(super) json: bool,
    /// Pick the epoch on the test split (the ASL reference's protocol).
    pub(super) select_on_test: bool,
    /// Only AN, the full-label row and one loss of each family (`settings::QUICK`).
    pub(super) quick: bool,
    /// Train the setting's PyTorch twin too, instead of reading its committed measurements.
    pub(super) pytorch: bool,
    /// Runs side by side; `None`: one per four cores.
    pub(super) jobs: Option<usize>,
}

pub(super) fn usage() -> String {
    let names: Vec<&str> = EMBEDDED.iter().map(|s| s.name).collect();
    format!(
        "usage: cargo xtask reproduce <setting> [--seeds N] [--loss NAME]... [--quick] [--sweep] \
         [--jobs N] [--pytorch] [--backend cpu|wgpu|cuda] [--data DIR] [--smoke] [--plan [--json]] [--select-on-test] \
         [--mlml PATH] [--runs DIR] [--results DIR]\n  embedded settings: {}\n  \
         paper settings (with --data DIR; --plan needs none): {}",
        names.join(", "),
        PAPER_RUNS
            .iter()
            .map(|r| r.name)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

pub(super) fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        setting: String::new(),
        seeds: None,
        losses: Vec::new(),
        mlml: None,
        runs: None,
        results: project_root().join("docs/results"),
        sweep: false,
        data: None,
        backend: "cpu".into(),
        smoke: false,
        plan: false,
        json: false,
        select_on_test: false,
        quick: false,
        pytorch: false,
        jobs: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value\n{}", usage()))
        };
        match arg.as_str() {
            "--seeds" => options.seeds = Some(positive("--seeds", &value("--seeds")?)?),
            "--jobs" => options.jobs = Some(positive("--jobs", &value("--jobs")?)?),
            "--loss" => options.losses.push(value("--loss")?),
            "--mlml" => options.mlml = Some(value("--mlml")?.into()),
            "--runs" => options.runs = Some(value("--runs")?.into()),
            "--results" => options.results = value("--results")?.into(),
            "--data" => options.data = Some(value("--data")?.into()),
            "--sweep" => options.sweep = true,
            "--smoke" => options.smoke = true,
            "--quick" => options.quick = true,
            "--pytorch" => options.pytorch = true,
            "--plan" => options.plan = true,
            "--json" => options.json = true,
            "--select-on-test" => options.select_on_test = true,
            "--backend" => {
                let v = value("--backend")?;
                if !["cpu", "wgpu", "cuda"].contains(&v.as_str()) {
                    return Err(format!("--backend {v}: expected cpu, wgpu or cuda"));
                }
                options.backend = v;
            }
            "-h" | "--help" => return Err(usage()),
            flag if flag.starts_with('-') => {
                return Err(format!("unknown option {flag}\n{}", usage()))
            }
            name if options.setting.is_empty() => options.setting = name.to_string(),
            extra => return Err(format!("unexpected argument {extra}\n{}", usage())),
        }
    }
    if options.setting.is_empty() {
        return Err(usage());
    }
    if options.quick && !options.losses.is_empty() {
        return Err(format!(
            "--quick chooses the rows itself: give it or --loss, not both\n{}",
            usage()
        ));
    }
    if options.json && !options.plan {
        return Err(format!("--json goes with --plan\n{}", usage()));
    }
    Ok(options)
}

/// A count of at least one, as `flag` takes it.
fn positive(flag: &str, value: &str) -> Result<usize, String> {
    value
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{flag} {value}: expected a positive integer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let o = parse(&args(&["yeast-single", "--seeds", "3", "--loss", "hill"])).unwrap();
        assert_eq!((o.setting.as_str(), o.seeds), ("yeast-single", Some(3)));
        assert_eq!(o.losses, ["hill"]);
        assert!(parse(&args(&["yeast-single", "--seeds", "0"]))
            .unwrap_err()
            .contains("--seeds 0: expected a positive integer"));
        assert!(parse(&args(&["yeast-single", "--frobnicate"]))
            .unwrap_err()
            .contains("unknown option --frobnicate"));
        assert!(parse(&args(&[])).unwrap_err().starts_with("usage:"));
        assert!(parse(&args(&["fashion-single", "--quick", "--loss", "an"]))
            .unwrap_err()
            .contains("--quick chooses the rows itself"));
        assert!(parse(&args(&["fashion-single", "--jobs", "two"]))
            .unwrap_err()
            .contains("--jobs two: expected a positive integer"));
        let o = parse(&args(&[
            "fashion-single",
            "--quick",
            "--jobs",
            "2",
            "--pytorch",
        ]))
        .unwrap();
        assert_eq!((o.quick, o.jobs, o.pytorch), (true, Some(2), true));
    }
}
