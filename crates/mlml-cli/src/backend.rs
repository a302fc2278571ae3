//! The one place where a device name becomes a concrete burn backend: Flex on the CPU (always
//! built), wgpu and CUDA behind the `wgpu` and `cuda` cargo features. Everything else is
//! generic over the backend.

use anyhow::{bail, Result};
use mlml_train::TrainBackend;
use serde::{Deserialize, Serialize};

/// A backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceKind {
    /// burn's Flex backend on the CPU.
    #[default]
    Cpu,
    /// burn's wgpu backend (Vulkan, Metal, DX12).
    Wgpu,
    /// burn's CUDA backend.
    Cuda,
}

/// Where a command runs, as `--device` names it: `cpu`, `wgpu` (wgpu's default adapter, which
/// is lavapipe where no GPU is), `wgpu:N` (the N-th discrete GPU wgpu lists), `cuda` or `cuda:N`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Device {
    pub kind: DeviceKind,
    /// The GPU's index; `None`: the default one.
    pub index: Option<usize>,
}

impl std::str::FromStr for Device {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let (name, index) = match text.split_once(':') {
            Some((name, index)) => (name, Some(index)),
            None => (text, None),
        };
        let kind = match name {
            "cpu" => DeviceKind::Cpu,
            "wgpu" => DeviceKind::Wgpu,
            "cuda" => DeviceKind::Cuda,
            _ => {
                return Err(format!(
                    "unknown device '{text}': expected cpu, wgpu, wgpu:N, cuda or cuda:N"
                ))
            }
        };
        let index = match index {
            None => None,
            Some(_) if kind == DeviceKind::Cpu => {
                return Err(format!("'{text}': the CPU takes no index (use cpu)"))
            }
            Some(i) => Some(i.parse::<usize>().map_err(|_| {
                format!("'{text}': the index after ':' must be a number, as in {name}:0")
            })?),
        };
        Ok(Device { kind, index })
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.kind {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Wgpu => "wgpu",
            DeviceKind::Cuda => "cuda",
        };
        match self.index {
            Some(i) => write!(f, "{name}:{i}"),
            None => f.write_str(name),
        }
    }
}

/// The backend and device a command ran on, for reports.
#[derive(Clone, Debug)]
pub struct Placement {
    pub backend: &'static str,
    pub device: String,
}

/// Work that runs on any backend: `run` is called once with the backend `DeviceKind` maps to,
/// and its devices (one, or the data-parallel devices of a training run).
pub trait Job {
    type Output;
    fn run<B: TrainBackend>(
        self,
        devices: Vec<B::Device>,
        placement: Placement,
    ) -> Result<Self::Output>;
}

/// Whether this binary was built with the backend of `kind` (checked before a run directory is
/// written).
///
/// # Errors
/// A backend that this binary was built without, saying how to build it.
pub fn built_in(device: Device) -> Result<()> {
    let (name, built) = match device.kind {
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

/// The first of `devices`, which must all be of one backend.
///
/// # Errors
/// No device, or devices of two backends.
pub fn one_backend(devices: &[Device]) -> Result<Device> {
    let Some(&first) = devices.first() else {
        bail!("no device given");
    };
    if let Some(other) = devices.iter().find(|d| d.kind != first.kind) {
        bail!(
            "devices {first} and {other}: one run trains on one backend (give cuda:0,cuda:1, or cpu,cpu)"
        );
    }
    Ok(first)
}

/// Runs `job` on the backend of `devices` (one backend: data parallelism is across devices of
/// one kind).
///
/// # Errors
/// No device, devices of several backends, a backend that this binary was built without, a
/// GPU that cannot be opened, or the job's own error.
pub fn dispatch<J: Job>(devices: &[Device], job: J) -> Result<J::Output> {
    let first = one_backend(devices)?;
    let names =
        |name: &dyn Fn(&Device) -> String| devices.iter().map(name).collect::<Vec<_>>().join(", ");
    match first.kind {
        DeviceKind::Cpu => job.run::<burn::backend::Autodiff<burn::backend::Flex>>(
            vec![Default::default(); devices.len()],
            Placement {
                backend: "flex",
                device: names(&|_| "cpu".into()),
            },
        ),
        #[cfg(feature = "wgpu")]
        DeviceKind::Wgpu => {
            use burn::backend::wgpu::WgpuDevice;
            let wgpu_device = |device: &Device| match device.index {
                None => WgpuDevice::DefaultDevice,
                Some(i) => WgpuDevice::DiscreteGpu(i),
            };
            for device in devices {
                check_gpu::<burn::backend::Wgpu>(*device, &wgpu_device(device))?;
            }
            job.run::<burn::backend::Autodiff<burn::backend::Wgpu>>(
                devices.iter().map(wgpu_device).collect(),
                Placement {
                    backend: "wgpu",
                    device: names(&|device| match device.index {
                        None => "default adapter".into(),
                        Some(i) => format!("discrete gpu {i}"),
                    }),
                },
            )
        }
        #[cfg(feature = "cuda")]
        DeviceKind::Cuda => {
            let cuda_device =
                |device: &Device| burn::backend::cuda::CudaDevice::new(device.index.unwrap_or(0));
            for device in devices {
                check_gpu::<burn::backend::Cuda>(*device, &cuda_device(device))?;
            }
            job.run::<burn::backend::Autodiff<burn::backend::Cuda>>(
                devices.iter().map(cuda_device).collect(),
                Placement {
                    backend: "cuda",
                    device: names(&|device| format!("gpu {}", device.index.unwrap_or(0))),
                },
            )
        }
        #[allow(unreachable_patterns)]
        _ => {
            built_in(first)?;
            unreachable!("a backend that is built in has its arm above")
        }
    }
}

/// Checks that a small tensor can live on a GPU device: a machine without the driver or
/// adapter fails here with a message instead of a panic deep inside a run.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn check_gpu<B: burn::tensor::backend::Backend>(name: Device, device: &B::Device) -> Result<()> {
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
