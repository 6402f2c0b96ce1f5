"""The images `make images` builds, imported into a real containerd and run.

Each entrypoint answers --help as the nonroot user on a read-only root, the CRI plugin takes every imported image
in, and the pause process stops on SIGTERM or SIGINT with status 0 and reaps the zombies of its PID namespace.

Root only. The module starts a throwaway containerd (its own root, state, socket and runc root under a temporary
directory, overlayfs, CRI plugin with restrict_oom_score_adj) and at the end stops it, its shims and its mounts.
Containers get a network namespace of their own with nothing in it: nothing here sends a packet. The first build
of the images takes a few minutes (debootstrap, PyPI); later runs find them cached.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shopfloor_localsite.images import (
    PAUSE_IMAGE,
    PAUSE_USER,
    PYTHON_IMAGES,
    BuiltImages,
    ImageArchive,
    ensure_images,
    import_images,
)
from shopfloor_localsite.processes import ManagedProcess, wait_until
from tests.support.waiting import wait_for

CGROUP_PARENT = "/shopfloor-images-test"
NEEDED_TOOLS = ("containerd", "ctr", "runc", "debootstrap", "go", "unshare", "nsenter")

if os.geteuid() != 0:
    pytest.skip("needs root: builds images with debootstrap and chroot and runs containerd", allow_module_level=True)
if missing := [tool for tool in NEEDED_TOOLS if shutil.which(tool) is None]:
    pytest.skip(f"needs {', '.join(missing)} on PATH", allow_module_level=True)

# The first build: debootstrap (~40 s), wheels from PyPI, install, compile and three archives.
BUILD_TIMEOUT = 1200


class ThrowawayContainerd:
    """A containerd that shares nothing with any other on the machine and leaves nothing behind."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.address = str(directory / "containerd.sock")
        self.runc_root = directory / "runc"
        self.fifo_dir = directory / "fifo"
        self.process = ManagedProcess("containerd", ["containerd", "--config", str(self.config())], self.log)

    @property
    def log(self) -> Path:
        return self.directory / "containerd.log"

    def config(self) -> Path:
        root = self.directory
        path = root / "config.toml"
        path.write_text(
            f"""version = 2
root = "{root}/root"
state = "{root}/state"

[grpc]
  address = "{self.address}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  sandbox_image = "{PAUSE_IMAGE}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "{self.runc_root}"
"""
        )
        return path

    def start(self) -> None:
        self.process.start()
        wait_until(lambda: self.ctr("version").returncode == 0, 30, "containerd to serve", [self.process])

    def ctr(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = ["ctr", "--address", self.address, "-n", "k8s.io", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)

    def run_args(self, ref: str, container_id: str, *command: str) -> list[str]:
        """`ctr run` of a container with its own (empty) network namespace and a read-only root."""
        return [
            "ctr",
            "--address",
            self.address,
            "-n",
            "k8s.io",
            "run",
            "--rm",
            "--read-only",
            "--runc-root",
            str(self.runc_root),
            "--fifo-dir",
            str(self.fifo_dir),
            # Under a parent of the test's own (ctr's default is /k8s.io/<id>), removed with the containerd.
            "--cgroup",
            f"{CGROUP_PARENT}/{container_id}",
            ref,
            container_id,
            *command,
        ]

    def run(self, ref: str, *command: str) -> subprocess.CompletedProcess[str]:
        container_id = f"shopfloor-images-{uuid.uuid4().hex[:8]}"
        return subprocess.run(self.run_args(ref, container_id, *command), capture_output=True, text=True, timeout=120)

    def _delete_task(self, task: str) -> None:
        wait_until(lambda: self.ctr("tasks", "delete", task).returncode == 0, 20, f"task {task} to be deleted")

    def stop(self) -> None:
        """Stop every task, containerd, its shims; unmount what it mounted; remove the directory."""
        if self.process.running():
            tasks = self.ctr("tasks", "ls", "-q").stdout.split()
            for task in tasks:
                self.ctr("tasks", "kill", "--signal", "SIGKILL", task)
            for task in tasks:
                self._delete_task(task)
        self.process.stop()
        for pid in _pids_with_argument(self.address):  # shims of our containerd, by the address they serve
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            parent = hierarchy / CGROUP_PARENT.lstrip("/")
            for group in [*(p for p in parent.glob("*") if p.is_dir()), parent] if parent.is_dir() else []:
                with contextlib.suppress(OSError):
                    group.rmdir()
        for mount_point in reversed(_mounts_under(self.directory)):
            subprocess.run(["umount", "--lazy", mount_point], check=False)
        leftovers = _mounts_under(self.directory)
        shutil.rmtree(self.directory, ignore_errors=True)
        assert leftovers == [], f"mounts left behind: {leftovers}"


def _mounts_under(directory: Path) -> list[str]:
    prefix = str(directory) + "/"
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1].encode().decode("unicode_escape") for line in mounts]
    return [point for point in points if point.startswith(prefix)]


def _pids_with_argument(argument: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if argument.encode() in (entry / "cmdline").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
    return pids


def _children_of(pid: int) -> list[tuple[int, str]]:
    """(pid, state) of every process whose parent is `pid`, zombies included."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    children.append((int(entry.name), fields[0]))
    return children


@dataclass
class ArchiveContents:
    index_entry: dict[str, Any]
    config_digest: str
    config: dict[str, Any]
    layer: tarfile.TarFile | None


def _read_archive(image: ImageArchive, with_layer: bool = False) -> ArchiveContents:
    """What an archive holds: its index entry, its image's config, and (decompressed) its only layer."""
    with tarfile.open(image.archive) as archive:

        def read(name: str) -> bytes:
            member = archive.extractfile(name)
            assert member is not None, f"{name} missing from {image.archive}"
            return member.read()

        def blob(digest: str) -> bytes:
            return read("blobs/sha256/" + digest.removeprefix("sha256:"))

        [entry] = json.loads(read("index.json"))["manifests"]
        manifest = json.loads(blob(entry["digest"]))
        [layer] = manifest["layers"]
        return ArchiveContents(
            index_entry=entry,
            config_digest=manifest["config"]["digest"],
            config=json.loads(blob(manifest["config"]["digest"])),
            layer=tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob(layer["digest"])))) if with_layer else None,
        )


def _task_status(containerd: ThrowawayContainerd, container_id: str) -> str | None:
    for line in containerd.ctr("tasks", "ls").stdout.splitlines()[1:]:
        columns = line.split()
        if columns and columns[0] == container_id:
            return columns[-1]
    return None


@pytest.fixture(scope="session")
def built() -> BuiltImages:
    return ensure_images()


@pytest.fixture(scope="module")
def containerd() -> Iterator[ThrowawayContainerd]:
    # A short path under /tmp: the socket's path must fit in 108 bytes.
    daemon = ThrowawayContainerd(Path(tempfile.mkdtemp(prefix="shopfloor-ctr-")))
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(scope="module")
def imported(built: BuiltImages, containerd: ThrowawayContainerd) -> BuiltImages:
    import_images(built.all(), "ctr", containerd.address)
    return built


@pytest.mark.timeout(BUILD_TIMEOUT)
def test_each_archive_names_its_image_and_runs_the_command_it_is_named_after(built: BuiltImages) -> None:
    layers = set()
    for name, (ref, command) in PYTHON_IMAGES.items():
        image = getattr(built, name)
        contents = _read_archive(image)
        assert image.ref == ref
        assert contents.index_entry["digest"] == image.digest
        assert contents.index_entry["annotations"] == {
            "io.containerd.image.name": ref,
            "org.opencontainers.image.ref.name": "0.1.0",
        }
        config = contents.config["config"]
        assert config["Entrypoint"] == [command]
        assert config["User"] == "65532:65532"
        assert "PYTHONUNBUFFERED=1" in config["Env"]
        layers.add(tuple(contents.config["rootfs"]["diff_ids"]))
    assert len(layers) == 1, "the three images share one layer"
    shared = _read_archive(built.operator, with_layer=True).layer
    assert shared is not None
    names = set(shared.getnames())
    assert all(f"usr/local/bin/{command}" in names for _, command in PYTHON_IMAGES.values())
    pause = _read_archive(built.pause, with_layer=True)
    assert pause.config["config"]["Entrypoint"] == ["/pause"]
    assert pause.config["config"]["User"] == PAUSE_USER
    assert pause.layer is not None and pause.layer.getnames() == ["pause"]


@pytest.mark.timeout(BUILD_TIMEOUT)
def test_import_unpacks_every_image_and_the_cri_plugin_takes_it_in(
    imported: BuiltImages, containerd: ThrowawayContainerd, capsys: pytest.CaptureFixture[str]
) -> None:
    listing = containerd.ctr("images", "ls").stdout.splitlines()
    rows = {line.split()[0]: line for line in listing[1:]}
    for image in imported.all():
        assert image.ref in rows and image.digest in rows[image.ref]
        # The CRI plugin labels an image it has taken in as its own and names it after its config digest too
        # (the image id kubelet sees). ctr import by itself does neither.
        assert "io.cri-containerd.image=managed" in rows[image.ref]
        image_id = _read_archive(image).config_digest
        assert image_id in rows and image.digest in rows[image_id]
    # Unpacked at import: operator, vPLC and bridge share one snapshot, pause has its own. Without them the CRI
    # plugin would unpack inside CreateContainer (5 s for these images, past crictl's 2 s deadline).
    snapshots = containerd.ctr("snapshots", "--snapshotter", "overlayfs", "ls").stdout
    assert snapshots.count("Committed") == 2, snapshots
    capsys.readouterr()
    import_images(imported.all(), "ctr", containerd.address)
    assert "imported" not in capsys.readouterr().err, "a second import of the same images does nothing"


@pytest.mark.timeout(BUILD_TIMEOUT)
@pytest.mark.parametrize("name", list(PYTHON_IMAGES))
def test_each_entrypoint_answers_help_as_nonroot_on_a_read_only_root(
    imported: BuiltImages, containerd: ThrowawayContainerd, name: str
) -> None:
    ref, command = PYTHON_IMAGES[name]
    result = containerd.run(ref, command, "--help")
    assert result.returncode == 0, result.stderr
    assert f"usage: {command}" in result.stdout
    probe = (
        "import getpass, os\n"
        "print(os.getuid(), os.getgid(), getpass.getuser())\n"
        "try:\n"
        "    open('/probe', 'w')\n"
        "except OSError as error:\n"
        "    print(error.strerror)\n"
    )
    result = containerd.run(ref, "python3", "-c", probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["65532 65532 nonroot", "Read-only file system"]


@pytest.mark.timeout(BUILD_TIMEOUT)
@pytest.mark.parametrize("stop_signal", ["SIGTERM", "SIGINT"])
def test_pause_runs_until_stopped_and_exits_0(
    imported: BuiltImages, containerd: ThrowawayContainerd, stop_signal: str
) -> None:
    container_id = f"shopfloor-pause-{uuid.uuid4().hex[:8]}"
    runner = subprocess.Popen(
        containerd.run_args(PAUSE_IMAGE, container_id), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for(lambda: _task_status(containerd, container_id) == "RUNNING", timeout=30, what="pause to run")
        assert containerd.ctr("tasks", "kill", "--signal", stop_signal, container_id).returncode == 0
        assert runner.wait(timeout=30) == 0
    finally:
        if runner.poll() is None:
            containerd.ctr("tasks", "kill", "--signal", "SIGKILL", container_id)
            runner.wait(timeout=30)


@pytest.mark.timeout(BUILD_TIMEOUT)
def test_pause_reaps_the_zombies_of_its_pid_namespace(built: BuiltImages, tmp_path: Path) -> None:
    layer = _read_archive(built.pause, with_layer=True).layer
    assert layer is not None
    layer.extractall(tmp_path, filter="tar")
    # The binary straight from the image on the host: static, it needs nothing else (the image has nothing else).
    pause = tmp_path / "pause"
    sandbox = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", str(pause)])
    try:
        [(pause_pid, _)] = wait_for(lambda: _children_of(sandbox.pid), timeout=10, what="pause to start")
        # A process in pause's namespace starts a child and exits: the child is pause's now, as when a container
        # of a pod leaves one behind; when it exits, only pause can reap it.
        orphan = "import os, time\nif os.fork() == 0:\n    time.sleep(2)\n    os._exit(0)\nos._exit(0)\n"
        subprocess.run(["nsenter", "--target", str(pause_pid), "--pid", "--", sys.executable, "-c", orphan], check=True)
        wait_for(lambda: _children_of(pause_pid), timeout=5, what="the orphan to become pause's child")
        wait_for(lambda: not _children_of(pause_pid), timeout=10, what="pause to reap its exited child")
        os.kill(pause_pid, signal.SIGTERM)
        assert sandbox.wait(timeout=10) == 0
    finally:
        if sandbox.poll() is None:
            sandbox.kill()
            sandbox.wait(timeout=10)


def _crictl() -> str | None:
    return os.environ.get("SHOPFLOOR_CRICTL") or shutil.which("crictl")


@pytest.mark.timeout(BUILD_TIMEOUT)
def test_a_cri_pod_with_the_pause_sandbox_runs_the_vplc_image(
    imported: BuiltImages, containerd: ThrowawayContainerd, tmp_path: Path
) -> None:
    crictl = _crictl()
    if crictl is None:
        pytest.skip("crictl is not on PATH (or in SHOPFLOOR_CRICTL); the CRI path is checked through ctr above")
    endpoint = f"unix://{containerd.address}"
    base = [crictl, "--runtime-endpoint", endpoint, "--image-endpoint", endpoint, "--timeout", "60s"]
    # Host network: the CRI plugin has no CNI here. The container only prints its help: no packet is sent.
    pod = {
        "metadata": {"name": "images-test", "namespace": "default", "uid": uuid.uuid4().hex, "attempt": 0},
        "log_directory": str(tmp_path / "logs"),
        "linux": {"security_context": {"namespace_options": {"network": 2}}},
    }
    container = {
        "metadata": {"name": "vplc"},
        "image": {"image": PYTHON_IMAGES["vplc"][0]},
        "args": ["--help"],
        "log_path": "vplc.log",
        "linux": {
            "security_context": {
                "readonly_rootfs": True,
                "run_as_user": {"value": 65532},
                "run_as_group": {"value": 65532},
            }
        },
    }
    (tmp_path / "pod.json").write_text(json.dumps(pod))
    (tmp_path / "container.json").write_text(json.dumps(container))

    def crictl_run(*args: str) -> str:
        result = subprocess.run([*base, *args], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    sandbox = crictl_run("runp", str(tmp_path / "pod.json"))
    try:
        created = crictl_run("create", sandbox, str(tmp_path / "container.json"), str(tmp_path / "pod.json"))
        crictl_run("start", created)
        wait_for(lambda: "Completed" in crictl_run("inspect", created), timeout=30, what="the container to end")
        assert json.loads(crictl_run("inspect", created))["status"]["exitCode"] == 0
        assert (
            "usage: shopfloor-vplc"
            in subprocess.run([*base, "logs", created], capture_output=True, text=True, timeout=60).stdout
        )
    finally:
        subprocess.run([*base, "stopp", sandbox], capture_output=True, timeout=120)
        subprocess.run([*base, "rmp", sandbox], capture_output=True, timeout=120)
