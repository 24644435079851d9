"""Child processes: started in their own process group with their output in a log
file, stopped (SIGTERM, then SIGKILL) by the supervisor on every way out of the run."""

import os
import signal
import subprocess
import time
import urllib.request


class Supervisor:
    """Owns every long-running process the run starts; `stop_all` ends them."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.children = []  # (name, Popen)
        self.peaks = {}  # name → peak resident memory before the last `take_peaks`, MiB

    def start(self, name, argv, env=None):
        log = open(os.path.join(self.log_dir, f"{name}.log"), "ab")
        child = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        self.children.append((name, child))
        return child

    def check_alive(self):
        """Names of the processes that exited on their own."""
        return [name for name, child in self.children if child.poll() is not None]

    def peak_rss_mb(self):
        """Each live child's peak resident memory so far (VmHWM, and what it was before
        `take_peaks` reset it), in MiB, by name."""
        peaks = dict(self.peaks)
        for name, mb in self._hwm().items():
            peaks[name] = max(peaks.get(name, 0.0), mb)
        return peaks

    def take_peaks(self):
        """Each live child's peak resident memory since the last call (or its start), in
        MiB, by name; then starts each one's count again from its current resident memory
        (writing 5 to `/proc/<pid>/clear_refs`), so a phase's peak is its own."""
        peaks = self._hwm()
        for name, mb in peaks.items():
            self.peaks[name] = max(self.peaks.get(name, 0.0), mb)
        for name, child in self.children:
            try:
                with open(f"/proc/{child.pid}/clear_refs", "w") as f:
                    f.write("5")
            except OSError:
                continue
        return peaks

    def _hwm(self):
        peaks = {}
        for name, child in self.children:
            try:
                with open(f"/proc/{child.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            peaks[name] = max(peaks.get(name, 0.0), int(line.split()[1]) / 1024)
            except OSError:
                continue
        return peaks

    def stop_all(self):
        for name, child in reversed(self.children):
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        deadline = time.time() + 15
        for name, child in reversed(self.children):
            try:
                child.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait(timeout=5)
        self.children.clear()


def listening(port, host="127.0.0.1"):
    import socket
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def wait_http(url, seconds, alive=lambda: True):
    """Waits until `url` answers 2xx; raises after `seconds` or if `alive()` turns false."""
    deadline = time.time() + seconds
    last = None
    while time.time() < deadline:
        if not alive():
            raise RuntimeError(f"the process behind {url} exited")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if 200 <= response.status < 300:
                    return
        except Exception as e:  # not up yet
            last = e
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready in {seconds} s ({last})")


def cpu_split(pid):
    """(user, system) CPU seconds a process has used so far ((0, 0) if it is gone): system
    time is the kernel working for it, page faults included (how the workers' CPU growing
    with their number was traced to the kernel clearing huge pages)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick
    except (OSError, IndexError, ValueError):
        return 0.0, 0.0


def cpu_seconds(pid):
    """User + system CPU seconds a process has used so far (0 if it is gone)."""
    return sum(cpu_split(pid))


def context_switches(pid):
    """(voluntary, involuntary) context switches of a process so far ((0, 0) if it is
    gone): involuntary ones are the scheduler taking the core away, which grows when more
    runnable processes than cores share the machine."""
    found = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name.endswith("ctxt_switches"):
                    found[name] = int(value)
    except (OSError, ValueError):
        pass
    return found.get("voluntary_ctxt_switches", 0), found.get("nonvoluntary_ctxt_switches", 0)


def thread_cpu(pid):
    """CPU seconds so far of a process's threads, summed by thread name."""
    totals = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return totals
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                head, _, rest = f.read().rpartition(")")
            name = head.partition("(")[2]
            fields = rest.split()
            totals[name] = totals.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            continue
    return totals


GROUPS = {"rabbitmq": "beam.smp", "redis": "redis-server", "postgres": "postgres"}


def cpu_snapshot(own):
    """CPU seconds so far of each process of the shared services and of `own` (name → pid)."""
    snapshot = {name: {pid: cpu_seconds(pid)} for name, pid in own.items()}
    for group, command in GROUPS.items():
        pids = subprocess.run(["pgrep", "-x", command], capture_output=True, text=True).stdout.split()
        snapshot[group] = {int(pid): cpu_seconds(int(pid)) for pid in pids}
    return snapshot


def cpu_used(before, after):
    """CPU seconds each group used between two snapshots (processes born in between count whole)."""
    return {group: sum(cpu - before.get(group, {}).get(pid, 0.0) for pid, cpu in pids.items())
            for group, pids in after.items()}


def compiler_running():
    """Whether a rustc is running (another build would skew the numbers)."""
    return bool(subprocess.run(["pgrep", "-x", "rustc"], capture_output=True, text=True).stdout.strip())


def machine_busy():
    """Seconds of CPU the machine spent busy and in total so far, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def run(argv, timeout, env=None, log=None):
    """Runs a command to completion in its own process group (so whatever it starts goes
    down with it if the run is interrupted or the command overruns `timeout`); returns
    (exit code, stdout, CPU seconds of it and its children, stderr)."""
    before = os.times()
    child = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = child.communicate(timeout=timeout)
    except BaseException:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        raise
    after = os.times()
    if log:
        with open(log, "a") as f:
            f.write(f"$ {' '.join(argv)}\n{out}\n{err}\n")
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return child.returncode, out, cpu, err
