"""The machine's noise signals, recorded for every trial: on a shared VM a point moves with the
neighbours, so a result carries what the machine was doing while it was measured.

* steal: CPU time the hypervisor gave to other guests (/proc/stat), as a share of the trial's
  CPU time; a trial above HEAVY_STEAL_PCT is marked.
* other load: CPU busy time on this machine that neither the server nor the load generator used,
  as a share of the machine's CPU over the trial. The result gives their CPU in the measured
  window only; it is scaled to warm-up + window, so start-up and stop are counted as others'.
* cpu_mhz: the clock the kernel reports, where it reports one.
"""
import os
import time

HEAVY_STEAL_PCT = 5.0
_STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def cpu_ticks():
    """The machine's CPU time so far, in clock ticks, by kind (first line of /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:len(_STAT_FIELDS) + 1]]
    except (OSError, ValueError):
        return None
    return dict(zip(_STAT_FIELDS, values))


def cpu_mhz():
    """Mean current clock over CPUs, from cpufreq or /proc/cpuinfo; None when neither says."""
    freqs = []
    for cpu in range(os.cpu_count() or 1):
        try:
            with open(f"/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq") as f:
                freqs.append(int(f.read()) / 1000)
        except (OSError, ValueError):
            break
    if not freqs:
        try:
            with open("/proc/cpuinfo") as f:
                freqs = [float(line.split(":")[1]) for line in f if line.startswith("cpu MHz")]
        except (OSError, ValueError):
            pass
    return round(sum(freqs) / len(freqs), 1) if freqs else None


class NoiseProbe:
    """Brackets one trial: start() before it, finish(result) after it."""

    def start(self):
        self.ticks0, self.t0 = cpu_ticks(), time.monotonic()
        return self

    def finish(self, result=None, load_share=1.0):
        """load_share: (warm-up + window) / window, to scale the result's CPU to the load's time."""
        ticks1, wall = cpu_ticks(), time.monotonic() - self.t0
        out = {"cpu_mhz": cpu_mhz(), "loadavg_1m": _loadavg()}
        if not (self.ticks0 and ticks1):
            return out
        d = {k: ticks1[k] - self.ticks0[k] for k in _STAT_FIELDS}
        total = sum(d.values()) or 1
        out["steal_pct"] = round(100 * d["steal"] / total, 2)
        out["heavy_steal"] = out["steal_pct"] >= HEAVY_STEAL_PCT
        busy_s = (total - d["idle"] - d["iowait"] - d["steal"]) / os.sysconf("SC_CLK_TCK")
        ours = _our_cpu_s(result)
        if ours is not None and wall > 0:
            ours *= load_share
            out["other_cpu_pct"] = round(100 * max(0.0, busy_s - ours) / (wall * (os.cpu_count() or 1)), 1)
        return out


def _loadavg():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _our_cpu_s(result):
    """CPU seconds the server and loadgen used in the measured window, from the result."""
    try:
        s, lg = result["server"], result["loadgen"]
        return s["cpu_user_s"] + s["cpu_sys_s"] + lg["cpu_user_s"] + lg["cpu_sys_s"]
    except (TypeError, KeyError):
        return None
