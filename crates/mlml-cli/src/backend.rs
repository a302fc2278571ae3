//! The one place where a device name becomes a concrete burn backend: Flex on the CPU (always
//! built), wgpu and CUDA behind the `wgpu` and `cuda` cargo features. Everything else is
//! generic over the backend.

use anyhow::{bail, Result};
use mlml_train::TrainBackend;
use serde::{Deserialize, Serialize};

/// Where a command runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceKind {
    /// burn's Flex backend on the CPU.
    #[default]
    Cpu,
    /// burn's wgpu backend (Vulkan, Metal, DX12) on the default adapter.
    Wgpu,
    /// burn's CUDA backend on GPU 0.
    Cuda,
}

/// The backend and device a command ran on, for reports.
#[derive(Clone, Copy, Debug)]
pub struct Placement {
    pub backend: &'static str,
    pub device: &'static str,
}

/// Work that runs on any backend: `run` is called once with the backend `DeviceKind` maps to.
pub trait Job {
    type Output;
    fn run<B: TrainBackend>(self, device: B::Device, placement: Placement) -> Result<Self::Output>;
}

/// Whether this binary was built with the backend of `kind` (checked before a run directory is
/// written).
///
/// # Errors
/// A backend that this binary was built without, saying how to build it.
pub fn built_in(kind: DeviceKind) -> Result<()> {
    let (name, built) = match kind {
        DeviceKind::Cpu => ("cpu", true),
        DeviceKind::Wgpu => ("wgpu", cfg!(feature = "wgpu")),
        DeviceKind::Cuda => ("cuda", cfg!(feature = "cuda")),
    };
    if !built {
        bail!(
            "--device {name}: this mlml was built without the `{name}` backend; build it with \
             `cargo build --release -p mlml-cli --features {name}`"
        );
    }
    Ok(())
}

/// Runs `job` on the backend of `kind`.
///
/// # Errors
/// A backend that this binary was built without, a GPU that cannot be opened, or the job's
/// own error.
pub fn dispatch<J: Job>(kind: DeviceKind, job: J) -> Result<J::Output> {
    match kind {
        DeviceKind::Cpu => job.run::<burn::backend::Autodiff<burn::backend::Flex>>(
            Default::default(),
            Placement {
                backend: "flex",
                device: "cpu",
            },
        ),
        #[cfg(feature = "wgpu")]
        DeviceKind::Wgpu => {
            let device = burn::backend::wgpu::WgpuDevice::default();
            check_gpu::<burn::backend::Wgpu>("wgpu", &device)?;
            job.run::<burn::backend::Autodiff<burn::backend::Wgpu>>(
                device,
                Placement {
                    backend: "wgpu",
                    device: "default adapter",
                },
            )
        }
        #[cfg(feature = "cuda")]
        DeviceKind::Cuda => {
            let device = burn::backend::cuda::CudaDevice::new(0);
            check_gpu::<burn::backend::Cuda>("cuda", &device)?;
            job.run::<burn::backend::Autodiff<burn::backend::Cuda>>(
                device,
                Placement {
                    backend: "cuda",
                    device: "gpu 0",
                },
            )
        }
        #[allow(unreachable_patterns)]
        other => {
            built_in(other)?;
            unreachable!("a backend that is built in has its arm above")
        }
    }
}

/// Checks that a small tensor can live on a GPU device: a machine without the driver or
/// adapter fails here with a message instead of a panic deep inside a run.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn check_gpu<B: burn::tensor::backend::Backend>(name: &str, device: &B::Device) -> Result<()> {
    let device = device.clone();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = burn::tensor::Tensor::<B, 1>::zeros([1], &device).into_data();
    }));
    std::panic::set_hook(hook);
    if let Err(panic) = opened {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "no message".into());
        bail!("--device {name}: cannot open the device ({message}); is its driver installed?")
    }
    Ok(())
}
