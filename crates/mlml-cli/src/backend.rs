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
    /// The hardware's name as its driver gives it (the devices' distinct names, comma-separated).
    pub adapter: String,
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
                adapter: cpu_model(),
            },
        ),
        #[cfg(feature = "wgpu")]
        DeviceKind::Wgpu => {
            use burn::backend::wgpu::WgpuDevice;
            let wgpu_device = |device: &Device| match device.index {
                None => WgpuDevice::DefaultDevice,
                Some(i) => WgpuDevice::DiscreteGpu(i),
            };
            let adapters = devices
                .iter()
                .map(|device| open_wgpu(*device, &wgpu_device(device)))
                .collect::<Result<Vec<_>>>()?;
            job.run::<burn::backend::Autodiff<burn::backend::Wgpu>>(
                devices.iter().map(wgpu_device).collect(),
                Placement {
                    backend: "wgpu",
                    device: names(&|device| match device.index {
                        None => "default adapter".into(),
                        Some(i) => format!("discrete gpu {i}"),
                    }),
                    adapter: distinct(adapters),
                },
            )
        }
        #[cfg(feature = "cuda")]
        DeviceKind::Cuda => {
            let cuda_device =
                |device: &Device| burn::backend::cuda::CudaDevice::new(device.index.unwrap_or(0));
            let adapters = devices
                .iter()
                .map(|device| {
                    check_gpu::<burn::backend::Cuda>(*device, &cuda_device(device))?;
                    Ok(cuda_name(device.index.unwrap_or(0)))
                })
                .collect::<Result<Vec<_>>>()?;
            job.run::<burn::backend::Autodiff<burn::backend::Cuda>>(
                devices.iter().map(cuda_device).collect(),
                Placement {
                    backend: "cuda",
                    device: names(&|device| format!("gpu {}", device.index.unwrap_or(0))),
                    adapter: distinct(adapters),
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

/// The CPU's model as the kernel names it (`model name` in /proc/cpuinfo), or its architecture
/// where there is no such file.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name")?.split_once(':'))
                .map(|(_, model)| model.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// The names once each, in order, comma-separated: a run on four GPUs of one model names it
/// once.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn distinct(names: Vec<String>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for name in names {
        if !seen.contains(&name) {
            seen.push(name);
        }
    }
    seen.join(", ")
}

/// Opens a wgpu device as burn would on first use (the same graphics API and options), keeping
/// the adapter it picked to name it. A device is opened once per process: a second run in the
/// same process gets the name kept the first time.
#[cfg(feature = "wgpu")]
fn open_wgpu(name: Device, device: &burn::backend::wgpu::WgpuDevice) -> Result<String> {
    use burn::backend::wgpu::{graphics::AutoGraphicsApi, init_setup, RuntimeOptions, WgpuDevice};
    use std::sync::{Mutex, PoisonError};
    static OPENED: Mutex<Vec<(WgpuDevice, String)>> = Mutex::new(Vec::new());
    let mut opened = OPENED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, adapter)) = opened.iter().find(|(kept, _)| kept == device) {
        return Ok(adapter.clone());
    }
    let adapter = without_panic_message(|| {
        init_setup::<AutoGraphicsApi>(device, RuntimeOptions::default())
            .adapter
            .get_info()
            .name
    })
    .map_err(|message| {
        anyhow::anyhow!(
            "--device {name}: cannot open the device ({message}); is its Vulkan, Metal or DX12 \
             driver installed?"
        )
    })?;
    opened.push((device.clone(), adapter.clone()));
    Ok(adapter)
}

/// The CUDA device's name from the driver (`cuDeviceGetName`).
#[cfg(feature = "cuda")]
fn cuda_name(index: usize) -> String {
    use cudarc::driver::result;
    result::init()
        .and_then(|()| result::device::get(index as i32))
        .and_then(result::device::get_name)
        .unwrap_or_else(|e| format!("CUDA device {index} (its name: {e})"))
}

/// Runs `work`, turning a panic into its message without printing it: burn's backends panic
/// where a device cannot be opened.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn without_panic_message<T>(work: impl FnOnce() -> T) -> std::result::Result<T, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
    std::panic::set_hook(hook);
    outcome.map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "no message".into())
    })
}

/// Checks that a small tensor can live on a GPU device: a machine without the driver fails here
/// with a message instead of a panic deep inside a run.
#[cfg(feature = "cuda")]
fn check_gpu<B: burn::tensor::backend::Backend>(name: Device, device: &B::Device) -> Result<()> {
    let device = device.clone();
    without_panic_message(|| {
        let _ = burn::tensor::Tensor::<B, 1>::zeros([1], &device).into_data();
    })
    .map_err(|message| {
        anyhow::anyhow!(
            "--device {name}: cannot open the device ({message}); is its driver installed?"
        )
    })
}
