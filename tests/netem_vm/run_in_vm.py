#!/usr/bin/python3
"""Runs the netem branch of serverbench/namespaces.py for real, in a virtual machine whose kernel has
netem (this machine's kernel may not: CONFIG_NET_SCH_NETEM).

  run_in_vm.py BUILD_DIR

The guest kernel is Debian's generic one (the linux-image-amd64 of the apt lists): its .deb is
fetched with `apt-get download` and only the kernel and the few modules the check needs are
unpacked into a cache (never installed: nothing touches this machine's boot). An initramfs of
busybox-static, those modules and guest_init.sh boots it under qemu, with this machine's whole
file tree shared read-only over 9p and a temporary results folder shared writable. In the guest,
chrooted into that tree, /usr/bin/python3 runs guest_check.py from this checkout against BUILD_DIR.

KVM is used when it boots the guest (a host whose KVM runs only paravirtualised guests, e.g.
PVM, does not); else TCG. Exit: the guest's verdict; 77 (skipped) only when a prerequisite is
absent (not root, no qemu or busybox-static, the kernel package cannot be fetched).
"""

import ctypes
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SKIP = 77
CACHE = Path(os.environ.get("SERVERBENCH_VM_CACHE", "/var/cache/serverbench/netem-vm"))
# netem and veth for the links; 9p over virtio-pci for the shared trees (with what 9p needs).
MODULES = ("sch_netem", "veth", "virtio", "virtio_ring", "virtio_pci_legacy_dev", "virtio_pci_modern_dev",
           "virtio_pci", "netfs", "fscache", "9pnet", "9pnet_virtio", "9p")
KVM_BOOT_S = 20  # a KVM guest that has not reached its init by then will not: TCG instead
DEADLINE_S = int(os.environ.get("SERVERBENCH_VM_DEADLINE_S", "240"))  # under ctest's TIMEOUT
MARKER = "netem-vm: guest init"


def skip(reason: str) -> None:
    print(f"skipped: {reason}")
    sys.exit(SKIP)


def check_prerequisites() -> tuple[str, str]:
    """The qemu and static busybox to use; skips when one is absent."""
    if os.geteuid() != 0:
        skip("needs root (the guest's check makes namespaces, the kernel cache is in /var/cache)")
    qemu = shutil.which("qemu-system-x86_64")
    busybox = shutil.which("busybox") or ""
    if qemu is None:
        skip("no qemu-system-x86_64 (apt-get install qemu-system-x86)")
    if not busybox or is_dynamic_elf(Path(busybox)):
        skip("no static busybox (apt-get install busybox-static)")
    for tool in ("apt-get", "apt-cache", "dpkg-deb", "tar"):
        if shutil.which(tool) is None:
            skip(f"no {tool}: the guest kernel is fetched as a Debian package")
    return qemu, busybox


def is_dynamic_elf(path: Path) -> bool:
    """Whether an ELF file has a program interpreter (PT_INTERP): it needs a libc to run."""
    data = path.read_bytes()[:1 << 16]
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return True  # not a 64-bit ELF: not the busybox this needs
    phoff = int.from_bytes(data[32:40], "little")
    phentsize, phnum = int.from_bytes(data[54:56], "little"), int.from_bytes(data[56:58], "little")
    types = [int.from_bytes(data[phoff + i * phentsize:phoff + i * phentsize + 4], "little") for i in range(phnum)]
    return 3 in types


def kernel_package() -> str:
    """The versioned package linux-image-amd64 stands for now (e.g. linux-image-6.1.0-57-amd64)."""
    shown = subprocess.run(["apt-cache", "show", "--no-all-versions", "linux-image-amd64"],
                           capture_output=True, text=True)
    match = re.search(r"^Depends:.*?\b(linux-image-[0-9][^ ,]*)", shown.stdout, re.MULTILINE)
    if shown.returncode != 0 or not match:
        skip("apt knows no linux-image-amd64 (apt-get update?)")
    return match.group(1)


def ensure_kernel(package: str) -> Path:
    """CACHE/package holding vmlinuz and MODULES' .ko files; fetched and unpacked once."""
    target = CACHE / package
    if (target / "complete").exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    for old in CACHE.iterdir():  # an earlier kernel's files: the cache keeps one
        shutil.rmtree(old, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        started = time.monotonic()
        fetched = subprocess.run(["apt-get", "download", "-q", package], cwd=work, capture_output=True, text=True)
        debs = list(Path(work).glob("*.deb"))
        if fetched.returncode != 0 or not debs:
            skip(f"apt-get download {package} failed: {(fetched.stderr.strip() or 'no .deb').splitlines()[-1]}")
        wanted = ["*/vmlinuz-*"] + [f"*/{name}.ko" for name in MODULES]
        unpack = f"dpkg-deb --fsys-tarfile {debs[0]} | tar -x --wildcards -C {work} " + " ".join(f"'{w}'" for w in wanted)
        subprocess.run(["bash", "-o", "pipefail", "-c", unpack], check=True)
        staged = Path(work) / "kernel"
        staged.mkdir()
        shutil.move(next(Path(work).glob("boot/vmlinuz-*")), staged / "vmlinuz")
        for ko in Path(work).glob("lib/modules/*/kernel/**/*.ko"):
            shutil.move(ko, staged / ko.name)
        missing = [name for name in MODULES if not (staged / f"{name}.ko").exists()]
        assert not missing, f"{package} has no {missing}"
        (staged / "complete").write_text(package + "\n")
        staged.rename(target)
        print(f"netem-vm: {package} fetched and unpacked in {time.monotonic() - started:.1f} s")
    return target


def module_dependencies(ko: Path) -> list[str]:
    """The modules a .ko needs loaded first, from the depends= of its .modinfo section."""
    match = re.search(rb"(?:^|\0)depends=([^\0]*)\0", ko.read_bytes())
    return [name.replace("-", "_") for name in match.group(1).decode().split(",") if name] if match else []


def load_order(kernel: Path) -> list[str]:
    """MODULES, each after the modules it depends on (all of which must be among them)."""
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"module dependency cycle: {path}"
        assert name in MODULES, f"{path[-1]} needs {name}, which run_in_vm.py does not unpack"
        if name in order:
            return
        for dependency in module_dependencies(kernel / f"{name}.ko"):
            visit(dependency, path + (name,))
        order.append(name)

    for name in MODULES:
        visit(name, ())
    return order


def build_initramfs(kernel: Path, busybox: str, work: Path) -> Path:
    """An uncompressed newc cpio: /init (guest_init.sh), /bin/busybox, /modules/*.ko and their order."""
    tree = work / "initramfs"
    (tree / "bin").mkdir(parents=True)
    (tree / "modules").mkdir()
    shutil.copy(busybox, tree / "bin" / "busybox")
    shutil.copy(HERE / "guest_init.sh", tree / "init")
    order = load_order(kernel)
    for name in order:
        shutil.copy(kernel / f"{name}.ko", tree / "modules" / f"{name}.ko")
    (tree / "modules" / "order").write_text("".join(f"{name}.ko\n" for name in order))
    image = work / "initramfs.cpio"
    files = subprocess.run(["find", "."], cwd=tree, capture_output=True, text=True, check=True).stdout
    with open(image, "wb") as out:
        subprocess.run([busybox, "cpio", "-o", "-H", "newc"], cwd=tree, input=files.encode(), stdout=out,
                       stderr=subprocess.DEVNULL, check=True)
    return image


def write_guest_script(results: Path, build_dir: Path) -> None:
    """What the guest runs chrooted in this machine's tree: guest_check.py, its output and exit
    code into the results share (/tmp/results in the guest); and the folders it reads (the
    checkout, the build tree), which the guest's init binds back in when they are under /tmp."""
    (results / "keep").write_text(f"{HERE.parent.parent}\n{build_dir}\n")
    (results / "guest.sh").write_text(
        "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8\n"
        "export PYTHONDONTWRITEBYTECODE=1\n"
        f"cd '{HERE}'\n"
        f"/usr/bin/python3 guest_check.py '{build_dir}' >/tmp/results/guest.log 2>&1\n"
        "echo $? >/tmp/results/rc\n")


def qemu_argv(qemu: str, accel: str, kernel: Path, initramfs: Path, results: Path) -> list[str]:
    cpu = ["-cpu", "host"] if accel == "kvm" else ["-cpu", "max"]
    return [qemu, "-accel", accel, *cpu, "-smp", "2", "-m", "1024", "-nodefaults", "-no-reboot",
            "-display", "none", "-monitor", "none", "-serial", f"file:{results / 'console.log'}",
            "-kernel", str(kernel / "vmlinuz"), "-initrd", str(initramfs),
            "-append", "console=ttyS0 panic=-1 quiet",
            "-virtfs", "local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap",
            "-virtfs", f"local,path={results},mount_tag=results,security_model=none"]


def console_text(results: Path) -> str:
    try:
        return (results / "console.log").read_text(errors="replace")
    except OSError:
        return ""


def qemu_child_setup() -> None:
    """In qemu's process: SIGKILL when this script ends, however it ends (ctest's timeout kills
    it); no core file when it aborts (qemu asserts on a KVM that refuses a CPU model)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()


def boot(argv: list[str], results: Path, deadline: float, first_init_s: float | None) -> bool:
    """Runs the VM until it powers off or the deadline passes (then it is killed). With
    first_init_s, gives up (False) when the guest has not reached its init in that time."""
    (results / "console.log").unlink(missing_ok=True)
    with open(results / "qemu.log", "wb") as log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   cwd=results, preexec_fn=qemu_child_setup)
    try:
        started = time.monotonic()
        while process.poll() is None and time.monotonic() < deadline:
            if first_init_s is not None and MARKER not in console_text(results) \
                    and time.monotonic() - started > first_init_s:
                return False
            time.sleep(0.2)
        if process.poll() is None:
            print(f"netem-vm: the guest did not finish within {DEADLINE_S} s: qemu killed")
        return MARKER in console_text(results)
    finally:
        stop(process)


def kvm_usable() -> bool:
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


def run_vm(qemu: str, kernel: Path, initramfs: Path, results: Path) -> str:
    """Boots the guest with KVM if that works, else with TCG; returns the accelerator used."""
    deadline = time.monotonic() + DEADLINE_S
    if kvm_usable():
        if boot(qemu_argv(qemu, "kvm", kernel, initramfs, results), results, deadline, KVM_BOOT_S):
            return "kvm"
        qemu_said = (results / "qemu.log").read_text(errors="replace").strip().splitlines()
        print(f"netem-vm: KVM did not boot the guest ({qemu_said[0] if qemu_said else 'no init within 20 s'}): TCG")
    boot(qemu_argv(qemu, "tcg", kernel, initramfs, results), results, deadline, None)
    return "tcg"


def report(results: Path, accel: str, seconds: float) -> int:
    """Prints the guest's output; returns its exit code (1 when it wrote none)."""
    log = results / "guest.log"
    print(log.read_text(errors="replace") if log.exists() else "netem-vm: the guest wrote no output")
    rc_file = results / "rc"
    rc = int(rc_file.read_text()) if rc_file.exists() and rc_file.read_text().strip().isdigit() else None
    print(f"netem-vm: accelerator {accel}, {seconds:.1f} s, guest exit code {rc}")
    if rc is None:
        print("netem-vm: guest console (last lines):")
        print("\n".join(console_text(results).splitlines()[-30:]))
        return 1
    return rc


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: run_in_vm.py BUILD_DIR", file=sys.stderr)
        return 2
    build_dir = Path(sys.argv[1]).resolve()
    qemu, busybox = check_prerequisites()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so the VM and temp folder go with us
    started = time.monotonic()
    kernel = ensure_kernel(kernel_package())
    with tempfile.TemporaryDirectory(prefix="serverbench-netem-vm.") as temp:
        work = Path(temp)
        results = work / "results"
        results.mkdir()
        initramfs = build_initramfs(kernel, busybox, work)
        write_guest_script(results, build_dir)
        accel = run_vm(qemu, kernel, initramfs, results)
        return report(results, accel, time.monotonic() - started)


if __name__ == "__main__":
    sys.exit(main())
