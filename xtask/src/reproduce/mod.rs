//! `cargo xtask reproduce <setting>`: trains every registered loss (and the full-label BCE upper
//! bound) on a setting with the `mlml` binary, over several seeds, and writes the table, its JSON
//! and a chart to `docs/results/`.
//!
//! It calls `mlml` rather than linking the training crate, so that xtask stays free of burn.

mod embedded;
mod options;
mod paper;
mod published;
mod report;
mod runs;
pub(crate) use runs::target_dir;
mod settings;
mod twin;

use options::{parse, usage};
use settings::{paper_setting_message, EMBEDDED, PAPER_RUNS};

pub fn reproduce(args: &[String]) -> Result<(), String> {
    let options = parse(args)?;
    if options.select_on_test && !options.setting.starts_with("coco-") {
        return Err(
            "--select-on-test is the ASL / Hill / SPLC reference's protocol: coco-40, coco-75 and coco-full only"
                .into(),
        );
    }
    if options.plan {
        return paper::plan(&options);
    }
    let Some(setting) = EMBEDDED.iter().find(|s| s.name == options.setting) else {
        if let (Some(run), Some(data)) = (
            PAPER_RUNS.iter().find(|r| r.name == options.setting),
            options.data.as_deref().filter(|d| d.is_dir()),
        ) {
            return paper::run_paper_setting(run, &options, data);
        }
        if let Some(run) = PAPER_RUNS.iter().find(|r| r.name == options.setting) {
            return Err(paper_setting_message(
                run.name,
                run.summary,
                options.data.as_deref(),
            ));
        }
        return Err(unknown_setting(&options.setting));
    };
    embedded::run(setting, &options)
}

/// The message for a setting that is not one.
fn unknown_setting(name: &str) -> String {
    format!("unknown setting '{name}'\n{}", usage())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project_root;
    use published::published;
    #[test]
    fn a_paper_setting_says_what_data_it_needs_and_where_to_get_it() {
        let message =
            reproduce(&["coco-single".into(), "--data".into(), "/nowhere".into()]).unwrap_err();
        assert!(
            message.contains("--data /nowhere: no such directory"),
            "{message}"
        );
        assert!(
            message.contains("instances_{train,val}2014.json"),
            "{message}"
        );
        assert!(
            message.contains("https://cocodataset.org/#download"),
            "{message}"
        );
        let message = reproduce(&["voc-single".into()]).unwrap_err();
        assert!(
            message.contains("needs --data DIR holding VOCdevkit/VOC2012"),
            "{message}"
        );
        assert!(reproduce(&["mnist".into()])
            .unwrap_err()
            .starts_with("unknown setting 'mnist'"));
    }

    #[test]
    fn every_paper_setting_is_wired_to_a_recipe_and_a_published_column() {
        for run in PAPER_RUNS {
            assert!(project_root().join(run.config).is_file(), "{}", run.config);
            assert!(!run.needs.is_empty(), "{}", run.name);
        }
        // The columns of the single-positive table are the settings they name.
        assert_eq!(published("nus-single", "an").map(|p| p.0), Some(42.27));
        assert_eq!(published("cub-single", "em-apl").map(|p| p.0), Some(21.84));
        assert_eq!(published("voc-single", "ll-r").map(|p| p.0), Some(89.2));
        assert_eq!(published("coco-full", "an"), None);
    }
}
