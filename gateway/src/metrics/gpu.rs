//! GPU memory and utilisation (`gatehouse_gpu_*{gpu,name}`), read at scrape time through
//! NVML, the NVIDIA driver's management library. The gauges exist in every build (so the
//! dashboard's queries stay valid); they get samples only in builds with the `nvml` feature
//! (on in `cuda` builds) on a machine whose driver answers.

use prometheus::core::Collector;
use prometheus::{GaugeVec, IntGaugeVec, Opts};

use super::must;

/// Per-GPU gauges and, in `nvml` builds, the driver they are read from.
#[derive(Clone)]
pub struct GpuMetrics {
    /// Bytes of device memory in use (by any process).
    pub memory_used_bytes: IntGaugeVec,
    /// Bytes of device memory in all.
    pub memory_total_bytes: IntGaugeVec,
    /// Share of the last sample period in which a kernel ran, 0 to 1.
    pub utilization_ratio: GaugeVec,
    #[cfg(feature = "nvml")]
    nvml: Option<std::sync::Arc<nvml_wrapper::Nvml>>,
}

impl std::fmt::Debug for GpuMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        #[cfg(feature = "nvml")]
        let driver = self.nvml.is_some();
        #[cfg(not(feature = "nvml"))]
        let driver = false;
        f.debug_struct("GpuMetrics").field("nvml", &driver).finish()
    }
}

const LABELS: [&str; 2] = ["gpu", "name"];

impl Default for GpuMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl GpuMetrics {
    /// Defines the gauges; in `nvml` builds, also loads NVML (a missing driver is logged
    /// once here, and the gauges stay empty).
    pub fn new() -> Self {
        Self {
            memory_used_bytes: must(IntGaugeVec::new(
                Opts::new("gpu_memory_used_bytes", "GPU memory in use, any process."),
                &LABELS,
            )),
            memory_total_bytes: must(IntGaugeVec::new(
                Opts::new("gpu_memory_total_bytes", "GPU memory in all."),
                &LABELS,
            )),
            utilization_ratio: must(GaugeVec::new(
                Opts::new(
                    "gpu_utilization_ratio",
                    "Share of NVML's last sample period in which a kernel ran on the GPU.",
                ),
                &LABELS,
            )),
            #[cfg(feature = "nvml")]
            nvml: nvml_wrapper::Nvml::init()
                .inspect_err(|e| {
                    tracing::warn!(error = %e, "NVML is unavailable: no GPU metrics will be reported");
                })
                .ok()
                .map(std::sync::Arc::new),
        }
    }

    /// The collectors to register.
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.memory_used_bytes.clone()),
            Box::new(self.memory_total_bytes.clone()),
            Box::new(self.utilization_ratio.clone()),
        ]
    }

    /// Reads every GPU the driver lists into the gauges (scrape time). A GPU that fails to
    /// answer loses its samples until it answers again; nothing happens without NVML.
    pub fn refresh(&self) {
        #[cfg(feature = "nvml")]
        if let Some(nvml) = &self.nvml {
            self.memory_used_bytes.reset();
            self.memory_total_bytes.reset();
            self.utilization_ratio.reset();
            let count = nvml.device_count().unwrap_or(0);
            for index in 0..count {
                if let Err(e) = self.read(nvml, index) {
                    tracing::debug!(gpu = index, error = %e, "cannot read GPU metrics");
                }
            }
        }
    }

    #[cfg(feature = "nvml")]
    fn read(
        &self,
        nvml: &nvml_wrapper::Nvml,
        index: u32,
    ) -> Result<(), nvml_wrapper::error::NvmlError> {
        let device = nvml.device_by_index(index)?;
        let name = device.name()?;
        let memory = device.memory_info()?;
        let index = index.to_string();
        let labels = [index.as_str(), name.as_str()];
        self.memory_used_bytes
            .with_label_values(&labels)
            .set(i64::try_from(memory.used).unwrap_or(i64::MAX));
        self.memory_total_bytes
            .with_label_values(&labels)
            .set(i64::try_from(memory.total).unwrap_or(i64::MAX));
        // Some GPUs (MIG slices) do not report utilisation; memory still counts.
        if let Ok(u) = device.utilization_rates() {
            self.utilization_ratio
                .with_label_values(&labels)
                .set(f64::from(u.gpu) / 100.0);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpus_are_read_only_through_a_driver() {
        let gpu = GpuMetrics::new();
        gpu.refresh();
        let samples: usize = gpu
            .collectors()
            .iter()
            .flat_map(|c| c.collect())
            .map(|family| family.get_metric().len())
            .sum();
        // Without NVML compiled in, or without a driver (this CI), the gauges stay empty
        // and nothing fails; with both, every GPU has its memory gauges.
        if cfg!(feature = "nvml") && std::path::Path::new("/dev/nvidiactl").exists() {
            assert!(samples >= 2, "{samples} GPU samples");
        } else {
            assert_eq!(samples, 0);
        }
    }
}
