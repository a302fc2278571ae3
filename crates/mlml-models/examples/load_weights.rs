//! Loads a torchvision ResNet state dict and reports what did not fit:
//! `cargo run -p mlml-models --example load_weights -- resnet18|resnet34|resnet50|resnet101 FILE`.

use std::path::Path;
use std::process::ExitCode;

use burn::backend::Flex;
use mlml_models::ResNetConfig;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [arch, file] = &args[..] else {
        eprintln!("usage: load_weights resnet18|resnet34|resnet50|resnet101 FILE");
        return ExitCode::from(2);
    };
    let config = match arch.as_str() {
        "resnet18" => ResNetConfig::resnet18(),
        "resnet34" => ResNetConfig::resnet34(),
        "resnet50" => ResNetConfig::resnet50(),
        "resnet101" => ResNetConfig::resnet101(),
        other => {
            eprintln!("load_weights: unknown architecture '{other}'");
            return ExitCode::from(2);
        }
    };
    match config
        .init::<Flex>(&Default::default())
        .load_torchvision(Path::new(file))
    {
        Ok(_) => {
            println!("{file}: loaded into {arch}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("load_weights: {e}");
            ExitCode::from(2)
        }
    }
}
