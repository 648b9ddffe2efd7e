"""NVML (nvidia-ml-py) power, utilisation, temperature and energy of one NVIDIA GPU.

Power is the board's draw as the driver reports it (on recent GPUs a 1 s moving average);
energy comes from the driver's cumulative counter where the GPU has one (Volta and newer),
which makes joules per frame exact even for short windows.
"""
from __future__ import annotations

import threading
import time
from typing import Optional

from trt_infer_ros.measure.power import PowerSample, PowerSampler


def _pynvml():
    import pynvml          # the module nvidia-ml-py installs
    return pynvml


def unavailable_reason(index: int = 0) -> Optional[str]:
    """None when NVML answers for GPU `index`; else why not, in one sentence."""
    try:
        nv = _pynvml()
    except ImportError:
        return "NVML not available: nvidia-ml-py is not installed"
    try:
        nv.nvmlInit()
    except Exception as err:   # NVMLError_LibraryNotFound / _DriverNotLoaded / ...
        return f"NVML not available: {err} (no NVIDIA driver on this machine)"
    try:
        count = nv.nvmlDeviceGetCount()
        if index >= count:
            return f"NVML not available: GPU {index} asked for, {count} present"
        return None
    finally:
        nv.nvmlShutdown()


class NvmlSampler(PowerSampler):
    source = "nvml"

    def __init__(self, interval_s: float = 0.05, index: int = 0) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.index = index
        self._nv = _pynvml()
        self._nv.nvmlInit()
        self._handle = self._nv.nvmlDeviceGetHandleByIndex(index)
        name = self._nv.nvmlDeviceGetName(self._handle)
        self.device_name = name.decode() if isinstance(name, bytes) else str(name)
        try:
            limit = self._nv.nvmlDeviceGetEnforcedPowerLimit(self._handle) / 1000.0
        except self._nv.NVMLError:
            limit = None
        self.power_limit_w = limit
        self.has_energy_counter = self._energy_j() is not None
        self.description = (f"NVML on GPU {index} ({self.device_name}) every "
                            f"{interval_s * 1000:.0f} ms; energy from the "
                            + ("driver's counter" if self.has_energy_counter
                               else "integral of the power readings"))

    def _energy_j(self) -> Optional[float]:
        try:
            return self._nv.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1000.0
        except self._nv.NVMLError:
            return None

    def read(self) -> PowerSample:
        nv, h = self._nv, self._handle
        t = time.monotonic()
        fields = {}
        power = nv.nvmlDeviceGetPowerUsage(h) / 1000.0
        util = nv.nvmlDeviceGetUtilizationRates(h)
        temp = nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)
        fields["mem_util"] = util.memory
        try:
            fields["sm_mhz"] = nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM)
            fields["mem_used_mb"] = nv.nvmlDeviceGetMemoryInfo(h).used / 2**20
        except nv.NVMLError:
            pass
        if self.has_energy_counter:
            energy = self._energy_j()
            if energy is not None:
                fields["energy_j"] = energy
        return PowerSample(t=t, power_w=power, gpu_util=float(util.gpu), temp_c=float(temp),
                           fields=fields)

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self._add(self.read())
            except self._nv.NVMLError:
                pass                      # one failed reading: the next one decides
            stop.wait(self.interval_s)

    def close(self) -> None:
        try:
            self._nv.nvmlShutdown()
        except Exception:
            pass
