//! Classifies photos with EfficientNet-Lite0 and its shipped ImageNet weights, one JSON line per
//! image:
//!
//! ```sh
//! cargo run --release -p mlml-models --example classify -- IMAGE...
//! ```

use std::path::Path;
use std::process::ExitCode;

use burn::backend::Flex;
use burn::tensor::activation::softmax;
use mlml_models::{imagenet_batch, imagenet_classes, EfficientNetLite0};

fn main() -> ExitCode {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: classify IMAGE...");
        return ExitCode::from(2);
    }
    let device = Default::default();
    let model = match EfficientNetLite0::<Flex>::pretrained(&device) {
        Ok(model) => model,
        Err(e) => {
            eprintln!("classify: {e}");
            return ExitCode::from(2);
        }
    };
    let names = imagenet_classes();
    let mut failed = false;
    for path in &paths {
        let batch = match imagenet_batch::<Flex>(&[Path::new(path)], &device) {
            Ok(batch) => batch,
            Err(e) => {
                eprintln!("classify: {e}");
                failed = true;
                continue;
            }
        };
        let logits = model.forward(batch);
        let probabilities = softmax(logits.clone(), 1)
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .expect("f32");
        let logits = logits
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .expect("f32");
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        let top5: Vec<String> = order[..5]
            .iter()
            .map(|&i| {
                let name = names[i].replace('\\', "\\\\").replace('"', "\\\"");
                format!(
                    r#"{{"index": {i}, "name": "{name}", "logit": {:.2}, "probability": {:.4}}}"#,
                    logits[i], probabilities[i]
                )
            })
            .collect();
        let shown = path.replace('\\', "\\\\").replace('"', "\\\"");
        println!(r#"{{"image": "{shown}", "top5": [{}]}}"#, top5.join(", "));
    }
    if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}
