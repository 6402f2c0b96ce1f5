"""Build the operator, vPLC and bridge images, and containerd's pause image, without Docker or a registry.

`make images` (`python -m shopfloor_localsite.images`) writes OCI image layout archives that
`ctr -n k8s.io images import` accepts, cached by content under `cache_root() / "images"`:

- a Debian root filesystem from `debootstrap --variant=minbase` with Debian's python3, slimmed like the
  debian:*-slim images and given the "nonroot" user 65532 the pod builders run as; cached by its recipe;
- the project's wheel and its runtime dependencies (`pip wheel` on the host, at the versions the host
  environment has, so the images hold what the tests ran against), installed into a copy of that root filesystem
  by the host's pip run with the image's own python3, byte-compiled with hash-based .pyc files;
- one shared layer of that tree, and three images that differ only in their entrypoint;
- a pause image (`PAUSE_IMAGE`): a static Go binary that sleeps, reaps zombies and exits 0 on SIGINT or SIGTERM,
  for containerd's `sandbox_image` (the upstream one is behind a registry).

The Dockerfile builds the same filesystem layout and entrypoints; see the comments there. Building needs root
(debootstrap, chroot) and, the first time, Debian's mirror and PyPI; a build with nothing changed reads a few
hundred source files, finds the archives and builds nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shopfloor_localsite import oci
from shopfloor_localsite.build import cache_root

# Bump when the recipe of the Python images (install, compile, verify, layout) changes, so caches are rebuilt.
IMAGES_RECIPE_VERSION = "2"
# Bump when the recipe of the root filesystem (debootstrap, user, slimming) changes.
ROOTFS_RECIPE_VERSION = "1"
PAUSE_RECIPE_VERSION = "1"

OPERATOR_IMAGE = "ghcr.io/shopfloor/shopfloor-operator:0.1.0"
VPLC_IMAGE = "ghcr.io/shopfloor/shopfloor-vplc:0.1.0"
BRIDGE_IMAGE = "ghcr.io/shopfloor/shopfloor-bridge:0.1.0"
PAUSE_IMAGE = "localhost/shopfloor/pause:3.10"

# Image name -> (reference, the console script it runs). An image shopfloor-X runs `shopfloor-X`.
PYTHON_IMAGES = {
    "operator": (OPERATOR_IMAGE, "shopfloor-operator"),
    "vplc": (VPLC_IMAGE, "shopfloor-vplc"),
    "bridge": (BRIDGE_IMAGE, "shopfloor-bridge"),
}

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# python3 for the runtimes; CA certificates for TLS to brokers and OPC UA servers; netbase for /etc/services and
# /etc/protocols (socket.getservbyname); tzdata for local time in logs. The same list as the Dockerfile's.
ROOTFS_PACKAGES = ("python3", "ca-certificates", "netbase", "tzdata")

# The distroless "nonroot" ids the pod builders run as. A passwd entry matters: kopf names itself after
# getpass.getuser(), which fails for a uid without one.
NONROOT_UID = 65532
NONROOT_USER = f"{NONROOT_UID}:{NONROOT_UID}"
# What upstream's pause image runs as.
PAUSE_USER = "65535:65535"
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PYTHON_IMAGE_ENV = [f"PATH={IMAGE_PATH}", "LANG=C.UTF-8", "PYTHONUNBUFFERED=1"]
PYTHON_SITE = "/usr/local/lib/python3.11/dist-packages"
# Debian's standard library ships .py files and makes timestamp .pyc files at install; they are recompiled with
# everything else as hash-based .pyc files, valid whatever mtime a layer gives the sources (see oci.LAYER_MTIME).
COMPILED_DIRECTORIES = ("/usr/lib/python3.11", "/usr/lib/python3/dist-packages", PYTHON_SITE)
# Mount points the runtime fills (and /tmp, an emptyDir in a pod): kept in the layer, empty.
MOUNT_POINTS = ("dev", "proc", "sys", "tmp")
# The image unpacks into this snapshotter; it must be the CRI plugin's `snapshotter`.
SNAPSHOTTER = "overlayfs"

# The files of the project that end up in its wheel: setuptools takes the .py modules and the package data
# (pyproject's [tool.setuptools.package-data]) of the packages under these roots.
# The product's packages. The local site (localsite/) is in the same wheel but is a development tool: the images
# leave it out (LOCAL_SITE_FILES), so an edit to the site neither rebuilds nor changes them.
SOURCE_ROOTS = ("operator", "workloads")
LOCAL_SITE_FILES = (f"{PYTHON_SITE}/shopfloor_localsite", "/usr/local/bin/shopfloor-localsite")
SOURCE_TOP_FILES = ("pyproject.toml", "README.md", "LICENSE")
PACKAGE_DATA_SUFFIXES = (".py", ".yaml", ".proto")
PACKAGE_DATA_NAMES = ("py.typed",)

REPO = Path(__file__).resolve().parents[2]

PAUSE_MAIN = """// The pause process of a pod sandbox: it holds the pod's namespaces, reaps the zombies of processes
// that exit in them (it is PID 1 of a shared PID namespace), and exits 0 when the runtime stops it.
package main

import (
\t"fmt"
\t"os"
\t"os/signal"
\t"syscall"
)

func main() {
\tif len(os.Args) > 1 && os.Args[1] == "-v" {
\t\tfmt.Println("shopfloor pause 3.10")
\t\treturn
\t}
\tsignals := make(chan os.Signal, 16)
\tsignal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
\tfor sig := range signals {
\t\tif sig != syscall.SIGCHLD {
\t\t\tos.Exit(0)
\t\t}
\t\t// One SIGCHLD may stand for several exits: reap until none is left.
\t\tfor {
\t\t\tvar status syscall.WaitStatus
\t\t\tpid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
\t\t\tif pid <= 0 || err != nil {
\t\t\t\tbreak
\t\t\t}
\t\t}
\t}
}
"""

# Debian architecture -> OCI (Go) architecture.
OCI_ARCHITECTURES = {
    "amd64": "amd64",
    "arm64": "arm64",
    "armhf": "arm",
    "i386": "386",
    "ppc64el": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


class ImageBuildError(RuntimeError):
    """An image failed to build or import; the message says what failed and how to retry."""


@dataclass(frozen=True)
class ImageArchive:
    """An image as an OCI image layout tar; `digest` is its manifest's (what `ctr images ls` shows)."""

    ref: str
    archive: Path
    digest: str


@dataclass(frozen=True)
class BuiltImages:
    operator: ImageArchive
    vplc: ImageArchive
    bridge: ImageArchive
    pause: ImageArchive

    def all(self) -> list[ImageArchive]:
        return [self.operator, self.vplc, self.bridge, self.pause]


@dataclass(frozen=True)
class CachedBuild:
    """A finished build in the cache: its images by name, and what its record says about it."""

    directory: Path
    images: dict[str, ImageArchive]
    unpacked_bytes: int
    build_seconds: float
    built_now: bool


def images_dir() -> Path:
    return cache_root() / "images"


def _log(message: str) -> None:
    print(f"[images] {message}", file=sys.stderr, flush=True)


def _log_file() -> Path:
    return images_dir() / "build.log"


def _run(args: list[str], what: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run a build step with its output in the build log; a failure raises with the output's tail."""
    started = time.monotonic()
    with _log_file().open("a") as log:
        log.write(f"$ {' '.join(args)}\n")
        log.flush()
        proc = subprocess.run(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        log.write(proc.stdout)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-25:])
        raise ImageBuildError(
            f"{what} failed (exit {proc.returncode}) after {time.monotonic() - started:.0f}s:\n{tail}\n"
            f"Full log: {_log_file()}\nRetry with `make images` (finished parts are kept)."
        )
    return proc.stdout


def _key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(oci.canonical_json(parts)).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------------------
# Inputs and cache keys


def mirror_from_sources(texts: list[str], suite: str) -> str | None:
    """The first Debian archive serving `suite`'s main component, from sources.list and deb822 .sources texts."""
    for text in texts:
        for line in text.splitlines():
            # One-line format: deb [options] uri suite component...
            fields = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
            if len(fields) >= 4 and fields[0] == "deb" and fields[2] == suite and "main" in fields[3:]:
                return fields[1].rstrip("/")
        for stanza in re.split(r"\n\s*\n", text):
            # deb822 format: "Key: value..." lines, one stanza per source.
            values: dict[str, list[str]] = {}
            for line in stanza.splitlines():
                key, separator, value = line.split("#", 1)[0].partition(":")
                if separator and not key.startswith((" ", "\t")):
                    values[key.strip().lower()] = value.split()
            serves_suite = "deb" in values.get("types", []) and suite in values.get("suites", [])
            if serves_suite and "main" in values.get("components", []) and values.get("uris"):
                return values["uris"][0].rstrip("/")
    return None


def debian_mirror() -> str:
    """The mirror this machine's apt uses for the suite (SHOPFLOOR_DEBIAN_MIRROR overrides it)."""
    explicit = os.environ.get("SHOPFLOOR_DEBIAN_MIRROR")
    if explicit:
        return explicit
    apt = Path("/etc/apt")
    files = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]
    files += sorted((apt / "sources.list.d").glob("*.sources"))
    texts = [f.read_text(errors="replace") for f in files if f.is_file()]
    return mirror_from_sources(texts, SUITE) or DEFAULT_MIRROR


def debian_architecture() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()


def oci_architecture(debian_arch: str) -> str:
    try:
        return OCI_ARCHITECTURES[debian_arch]
    except KeyError:
        raise ImageBuildError(f"no OCI architecture known for Debian's {debian_arch!r}") from None


def rootfs_key(packages: tuple[str, ...], suite: str, architecture: str) -> str:
    # The mirror is not part of it: it says where the packages come from, not what they are.
    return _key(
        {"recipe": ROOTFS_RECIPE_VERSION, "packages": sorted(packages), "suite": suite, "architecture": architecture}
    )


def source_files(repo: Path) -> list[str]:
    """The project's files that go into its wheel, relative to the repository, sorted."""
    files = [name for name in SOURCE_TOP_FILES if (repo / name).is_file()]
    for root in SOURCE_ROOTS:
        for directory, subdirectories, names in os.walk(repo / root):
            subdirectories[:] = sorted(d for d in subdirectories if d != "__pycache__" and not d.endswith(".egg-info"))
            for name in names:
                if name.endswith(PACKAGE_DATA_SUFFIXES) or name in PACKAGE_DATA_NAMES:
                    files.append(str((Path(directory) / name).relative_to(repo)))
    return sorted(files)


def source_digest(repo: Path, files: list[str]) -> str:
    digest = hashlib.sha256()
    for name in files:
        digest.update(name.encode() + b"\0" + hashlib.sha256((repo / name).read_bytes()).digest())
    return digest.hexdigest()


def runtime_requirements(pyproject: Path) -> list[str]:
    """[project.dependencies]: what the images install (the dev extras stay out)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    return list(project.get("dependencies", []))


_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalized_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str | None:
    """The distribution a requirement names; None for one only an extra pulls in (extras are not installed)."""
    head, _, marker = requirement.partition(";")
    if re.search(r"\bextra\b", marker):
        return None
    match = _REQUIREMENT_NAME.match(head)
    return normalized_name(match.group(1)) if match else None


Lookup = Callable[[str], tuple[str, list[str]] | None]


def installed_distribution(name: str) -> tuple[str, list[str]] | None:
    """(version, requirements) of a distribution installed beside this interpreter, None if it is not."""
    try:
        distribution = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None
    return distribution.version, list(distribution.requires or [])


def dependency_constraints(requirements: list[str], lookup: Lookup = installed_distribution) -> list[str]:
    """`name==version` for every transitive runtime dependency, at the version installed here.

    pyproject pins the direct dependencies; their own dependencies would otherwise resolve to whatever PyPI has
    on the day of the build. Pinning them to this environment's versions makes the images hold what the tests ran
    against, and makes the cache key change when they move.
    """
    direct = {name for name in map(requirement_name, requirements) if name}
    pins: dict[str, str] = {}
    pending = sorted(direct)
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        found = lookup(name)
        if found is None:
            continue  # not installed here (a marker excluded it, or the environment is behind): pip resolves it
        version, requires = found
        if name not in direct:
            pins[name] = version
        pending.extend(n for n in map(requirement_name, requires) if n and n not in seen)
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def images_key(rootfs: str, sources: str, requirements: list[str], constraints: list[str]) -> str:
    return _key(
        {
            "recipe": IMAGES_RECIPE_VERSION,
            "rootfs": rootfs,
            "sources": sources,
            "requirements": sorted(requirements),
            "constraints": sorted(constraints),
            "python_env": PYTHON_IMAGE_ENV,
        }
    )


def pause_key(source: str) -> str:
    # The Go toolchain's version is not part of it: the binary's behaviour is its source's.
    return _key({"recipe": PAUSE_RECIPE_VERSION, "source": source, "user": PAUSE_USER, "ref": PAUSE_IMAGE})


# ---------------------------------------------------------------------------------------------------------------
# The cache


@contextlib.contextmanager
def _cache_lock() -> Iterator[None]:
    """One builder at a time per cache (make images in two terminals, or a test beside it)."""
    images_dir().mkdir(parents=True, exist_ok=True)
    with (images_dir() / ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _log("waiting for another image build to finish")
            fcntl.flock(lock, fcntl.LOCK_EX)
        # Scratch left by a build that was killed (a root filesystem copy is 350 MB); none is running now.
        for stale in images_dir().glob(".work-*"):
            shutil.rmtree(stale, ignore_errors=True)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


RECORD = "images.json"


def _read_record(directory: Path) -> CachedBuild | None:
    record_file = directory / RECORD
    if not record_file.is_file():
        return None
    record = json.loads(record_file.read_text())
    images = {
        name: ImageArchive(ref=entry["ref"], archive=directory / entry["archive"], digest=entry["digest"])
        for name, entry in record["images"].items()
    }
    if not all(image.archive.is_file() for image in images.values()):
        return None
    return CachedBuild(directory, images, int(record["unpacked_bytes"]), float(record["build_seconds"]), False)


def _write_record(directory: Path, images: dict[str, ImageArchive], unpacked_bytes: int, seconds: float) -> None:
    record = {
        "images": {
            name: {"ref": image.ref, "archive": image.archive.name, "digest": image.digest}
            for name, image in images.items()
        },
        "unpacked_bytes": unpacked_bytes,
        "build_seconds": round(seconds, 1),
    }
    (directory / RECORD).write_text(json.dumps(record, indent=2) + "\n")


def _finish(work: Path, final: Path) -> None:
    """Move a finished build into place and drop older builds of the same kind (they are never read again)."""
    prefix = final.name.rsplit("-", 1)[0] + "-"
    shutil.rmtree(final, ignore_errors=True)
    work.rename(final)
    for other in images_dir().glob(prefix + "*"):
        if other != final and other.is_dir() and not other.name.startswith("."):
            shutil.rmtree(other, ignore_errors=True)


@contextlib.contextmanager
def _work_dir(name: str) -> Iterator[Path]:
    """A scratch directory beside the cache (same filesystem, so a finished build is renamed into place)."""
    work = images_dir() / f".work-{name}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise ImageBuildError(f"{what} needs root (debootstrap and chroot); run `sudo make images`")


def _require_tool(name: str, install_hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ImageBuildError(f"{name} is not on PATH; {install_hint}")
    return path


# ---------------------------------------------------------------------------------------------------------------
# The root filesystem


def _chroot_env(**extra: str) -> dict[str, str]:
    """A clean environment for commands in the image's root: nothing from the host's shell leaks into it."""
    return {"PATH": IMAGE_PATH, "LANG": "C.UTF-8", "HOME": "/root", **extra}


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _slim(rootfs: Path) -> None:
    """Remove what a container never reads, as the debian:*-slim images do, and host details debootstrap copied."""
    for pattern in ("usr/share/man/*", "usr/share/info/*", "usr/share/locale/*", "usr/share/lintian/*"):
        for path in rootfs.glob(pattern):
            _remove(path)
    # Documentation goes, its copyright notices (the licences of what the image ships) stay.
    for path in sorted((rootfs / "usr/share/doc").rglob("*"), reverse=True):
        if path.is_symlink() or path.is_file():
            if path.name != "copyright":
                path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    for pattern in ("var/lib/apt/lists/*", "var/cache/apt/*", "var/cache/debconf/*-old", "var/lib/dpkg/*-old"):
        for path in rootfs.glob(pattern):
            _remove(path)
    for name in ("bootstrap.log", "dpkg.log", "alternatives.log"):
        (rootfs / "var/log" / name).unlink(missing_ok=True)
    for path in (rootfs / "var/log/apt").glob("*"):
        path.unlink()
    (rootfs / "var/cache/ldconfig/aux-cache").unlink(missing_ok=True)
    # The runtime mounts its own; empty files keep the mount points for a read-only root.
    for name in ("etc/hostname", "etc/resolv.conf"):
        (rootfs / name).write_text("")


def build_rootfs(target: Path, mirror: str, work: Path) -> None:
    debootstrap = _require_tool("debootstrap", "install it with `apt-get install debootstrap`")
    rootfs = work / "rootfs"
    started = time.monotonic()
    _log(f"debootstrap {SUITE} ({', '.join(ROOTFS_PACKAGES)}) from {mirror}")
    _run(
        [debootstrap, "--variant=minbase", f"--include={','.join(ROOTFS_PACKAGES)}", SUITE, str(rootfs), mirror],
        f"debootstrap {SUITE}",
    )
    chroot = ["chroot", str(rootfs)]
    _run([*chroot, "groupadd", "--gid", str(NONROOT_UID), "nonroot"], "groupadd nonroot", env=_chroot_env())
    # --no-log-init: no lastlog/faillog record, which for uid 65532 is a 19 MB sparse file.
    _run(
        [
            *chroot,
            "useradd",
            "--no-log-init",
            "--uid",
            str(NONROOT_UID),
            "--gid",
            str(NONROOT_UID),
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            "nonroot",
        ],
        "useradd nonroot",
        env=_chroot_env(),
    )
    _slim(rootfs)
    rootfs.rename(target)
    _log(f"root filesystem ready in {time.monotonic() - started:.0f}s")


def rootfs_location() -> tuple[Path, str, str]:
    """Where the root filesystem of this machine's architecture is cached, its key and its OCI architecture."""
    debian_arch = debian_architecture()
    key = rootfs_key(ROOTFS_PACKAGES, SUITE, debian_arch)
    return images_dir() / f"rootfs-{key}", key, oci_architecture(debian_arch)


def ensure_rootfs(target: Path) -> None:
    if target.is_dir():
        return
    _require_root("building the root filesystem")
    with _work_dir("rootfs") as work:
        staged = work / "done"
        build_rootfs(staged, debian_mirror(), work)
        _finish(staged, target)


# ---------------------------------------------------------------------------------------------------------------
# The Python images


def _copy_sources(repo: Path, files: list[str], destination: Path) -> None:
    """Exactly the files hashed into the cache key: the wheel is built from what the key says."""
    for name in files:
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / name, target)


def _build_wheels(sources: Path, constraints: list[str], work: Path) -> Path:
    wheels = work / "wheels"
    constraints_file = work / "constraints.txt"
    constraints_file.write_text("".join(f"{line}\n" for line in constraints))
    started = time.monotonic()
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--wheel-dir",
            str(wheels),
            "--constraint",
            str(constraints_file),
            str(sources),
        ],
        "pip wheel (the project and its runtime dependencies)",
        env=env,
    )
    _log(f"{len(list(wheels.glob('*.whl')))} wheels in {time.monotonic() - started:.0f}s")
    return wheels


def _host_pip() -> Path:
    spec = importlib.util.find_spec("pip")
    if spec is None or not spec.submodule_search_locations:
        raise ImageBuildError(f"pip is not installed beside {sys.executable}")
    return Path(next(iter(spec.submodule_search_locations)))


def _install_into(rootfs: Path, wheels: Path) -> None:
    """Install the project with the host's pip, run by the image's own python3 in a chroot.

    Run by the image's interpreter, pip uses Debian's install scheme (/usr/local/lib/python3.11/dist-packages,
    scripts in /usr/local/bin with a #!/usr/bin/python3 line) and checks the wheels against the image's glibc.
    The host's pip, copied in for the install, needs no python3-pip in the image.
    """
    staging = rootfs / "tmp" / "shopfloor-build"
    staging.mkdir(parents=True)
    shutil.copytree(_host_pip(), staging / "pip")
    shutil.copytree(wheels, staging / "wheels")
    chroot = ["chroot", str(rootfs)]
    _run(
        [
            *chroot,
            "python3",
            "-m",
            "pip",
            "install",
            "--no-index",
            "--find-links=/tmp/shopfloor-build/wheels",
            "--no-compile",
            "--no-cache-dir",
            "--break-system-packages",
            "--root-user-action=ignore",
            "--disable-pip-version-check",
            "--no-warn-script-location",
            "shopfloor",
        ],
        "pip install into the image",
        env=_chroot_env(PYTHONPATH="/tmp/shopfloor-build"),
    )
    shutil.rmtree(staging)
    for path in LOCAL_SITE_FILES:
        target = rootfs / path.lstrip("/")
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    # Unchecked hash-based .pyc: the image never changes, so Python reads them without looking at the sources;
    # PYTHONHASHSEED=0 because set constants are written in hash order.
    _run(
        [
            *chroot,
            "python3",
            "-m",
            "compileall",
            "-q",
            "-f",
            "-j0",
            "--invalidation-mode=unchecked-hash",
            *COMPILED_DIRECTORIES,
        ],
        "compileall in the image",
        env=_chroot_env(PYTHONHASHSEED="0"),
    )


IMAGE_SMOKE_TEST = (
    "import getpass, shopfloor_operator.main, shopfloor_vplc.cli, shopfloor_bridge.cli, kopf, asyncua, pymodbus, "
    "pydantic, cryptography.hazmat.bindings._rust, tree_sitter_iec61131_3_st, yaml; "
    "assert getpass.getuser() == 'nonroot', getpass.getuser()"
)


def _verify(rootfs: Path) -> None:
    """Import the runtimes and run each entrypoint's --help as the nonroot user, before anything is cached."""
    as_nonroot = ["chroot", f"--userspec={NONROOT_USER}", str(rootfs)]
    env = _chroot_env(HOME="/nonexistent", PYTHONDONTWRITEBYTECODE="1")
    _run([*as_nonroot, "python3", "-c", IMAGE_SMOKE_TEST], "importing the runtimes in the image", env=env)
    for _, command in PYTHON_IMAGES.values():
        _run([*as_nonroot, command, "--help"], f"{command} --help in the image", env=env)


def _python_image_config(command: str, diff_id: str, architecture: str) -> dict[str, Any]:
    return oci.image_config(
        diff_ids=[diff_id],
        architecture=architecture,
        entrypoint=[command],
        user=NONROOT_USER,
        env=PYTHON_IMAGE_ENV,
        labels={"org.opencontainers.image.title": command, "org.opencontainers.image.version": "0.1.0"},
        history=f"shopfloor_localsite.images recipe {IMAGES_RECIPE_VERSION}: debian {SUITE} minbase + {command}",
    )


@dataclass(frozen=True)
class PythonImageInputs:
    """Everything the Python images are made of, and the cache key it hashes to."""

    rootfs: Path
    rootfs_key: str
    architecture: str
    requirements: list[str]
    constraints: list[str]

    def key(self, sources: Path) -> str:
        return images_key(
            self.rootfs_key, source_digest(sources, source_files(sources)), self.requirements, self.constraints
        )


def build_python_images(inputs: PythonImageInputs, work: Path) -> CachedBuild:
    started = time.monotonic()
    sources = work / "src"
    _copy_sources(REPO, source_files(REPO), sources)
    # Keyed by the copy the wheel is built from, so a file saved during the build cannot end up under a key
    # that does not describe it.
    target = images_dir() / f"python-{inputs.key(sources)}"
    _log("building the wheels (the project's and its runtime dependencies')")
    wheels = _build_wheels(sources, inputs.constraints, work)
    step = time.monotonic()
    tree = work / "rootfs"
    _run(["cp", "-a", str(inputs.rootfs), str(tree)], "copying the root filesystem")
    _install_into(tree, wheels)
    _verify(tree)
    _log(f"installed, byte-compiled and checked as the nonroot user in {time.monotonic() - step:.0f}s")
    step = time.monotonic()
    layer = oci.write_layer(tree, work / "layer.tar.gz", compress=True, skip_contents_of=MOUNT_POINTS)
    out = work / "out"
    out.mkdir()
    images: dict[str, ImageArchive] = {}
    for name, (ref, command) in PYTHON_IMAGES.items():
        image = oci.build_image(ref, [layer], _python_image_config(command, layer.diff_id, inputs.architecture))
        archive = out / f"{name}.tar"
        oci.write_layout_archive(archive, [image])
        images[name] = ImageArchive(ref, target / archive.name, image.manifest_descriptor.digest)
    _log(
        f"one layer ({_megabytes(layer.descriptor.size)} gzip, {_megabytes(layer.uncompressed_size)} unpacked) "
        f"and {len(images)} archives in {time.monotonic() - step:.0f}s"
    )
    seconds = time.monotonic() - started
    _write_record(out, images, layer.uncompressed_size, seconds)
    _finish(out, target)
    return CachedBuild(target, images, layer.uncompressed_size, seconds, True)


def ensure_python_images() -> CachedBuild:
    rootfs, rootfs_key_, architecture = rootfs_location()
    requirements = runtime_requirements(REPO / "pyproject.toml")
    inputs = PythonImageInputs(rootfs, rootfs_key_, architecture, requirements, dependency_constraints(requirements))
    cached = _read_record(images_dir() / f"python-{inputs.key(REPO)}")
    if cached is not None:
        return cached
    _require_root("building the images")
    ensure_rootfs(rootfs)
    _log("building the operator, vPLC and bridge images (their sources or dependencies changed)")
    with _work_dir("python") as work:
        return build_python_images(inputs, work)


# ---------------------------------------------------------------------------------------------------------------
# The pause image


def build_pause_image(architecture: str, target: Path, work: Path) -> CachedBuild:
    go = _require_tool("go", "the Go toolchain is needed once to build the pause binary")
    started = time.monotonic()
    module = work / "module"
    module.mkdir()
    (module / "go.mod").write_text("module shopfloor.local/pause\n\ngo 1.24\n")
    (module / "main.go").write_text(PAUSE_MAIN)
    tree = work / "rootfs"
    tree.mkdir()
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false", "GOTOOLCHAIN": "local"}
    # -trimpath and an empty build id: the same source and toolchain give the same bytes.
    _run(
        [go, "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", str(tree / "pause"), "."],
        "go build pause",
        cwd=module,
        env=env,
    )
    (tree / "pause").chmod(0o755)
    layer = oci.write_layer(tree, work / "layer.tar.gz", compress=True)
    config = oci.image_config(
        diff_ids=[layer.diff_id],
        architecture=architecture,
        entrypoint=["/pause"],
        user=PAUSE_USER,
        env=[f"PATH={IMAGE_PATH}"],
        history=f"shopfloor_localsite.images pause recipe {PAUSE_RECIPE_VERSION}",
    )
    image = oci.build_image(PAUSE_IMAGE, [layer], config)
    out = work / "out"
    out.mkdir()
    oci.write_layout_archive(out / "pause.tar", [image])
    images = {"pause": ImageArchive(PAUSE_IMAGE, target / "pause.tar", image.manifest_descriptor.digest)}
    seconds = time.monotonic() - started
    _write_record(out, images, layer.uncompressed_size, seconds)
    _finish(out, target)
    return CachedBuild(target, images, layer.uncompressed_size, seconds, True)


def ensure_pause_image() -> CachedBuild:
    target = images_dir() / f"pause-{pause_key(PAUSE_MAIN)}"
    cached = _read_record(target)
    if cached is not None:
        return cached
    _log("building the pause image")
    with _work_dir("pause") as work:
        return build_pause_image(oci_architecture(debian_architecture()), target, work)


# ---------------------------------------------------------------------------------------------------------------
# Public API


def ensure_builds() -> list[CachedBuild]:
    """Build whatever is missing; the cached builds, Python images first."""
    with _cache_lock():
        return [ensure_python_images(), ensure_pause_image()]


def _built_images(builds: list[CachedBuild]) -> BuiltImages:
    by_name = {name: image for build in builds for name, image in build.images.items()}
    return BuiltImages(
        operator=by_name["operator"], vplc=by_name["vplc"], bridge=by_name["bridge"], pause=by_name["pause"]
    )


def ensure_images() -> BuiltImages:
    """Build whatever is missing and return the archives. Raises ImageBuildError with retry advice on failure."""
    return _built_images(ensure_builds())


def _ctr(ctr: str, address: str, namespace: str, *args: str) -> list[str]:
    return [ctr, "--address", address, "-n", namespace, *args]


def imported_digests(ctr: str, address: str, namespace: str = "k8s.io") -> dict[str, str]:
    """Image reference -> manifest digest of what the containerd at `address` holds in `namespace`."""
    proc = subprocess.run(_ctr(ctr, address, namespace, "images", "ls"), capture_output=True, text=True)
    if proc.returncode != 0:
        raise ImageBuildError(f"ctr images ls at {address} failed: {proc.stderr.strip()}")
    digests = {}
    for line in proc.stdout.splitlines()[1:]:
        columns = line.split()
        if len(columns) >= 3:
            digests[columns[0]] = columns[2]
    return digests


def import_images(
    images: list[ImageArchive],
    ctr: str,
    address: str,
    namespace: str = "k8s.io",
    *,
    snapshotter: str = SNAPSHOTTER,
) -> None:
    """Import and unpack the images into the containerd at `address`, for its CRI plugin (namespace k8s.io).

    Idempotent: an image already there with the same digest is left alone. Each archive names its image
    (io.containerd.image.name), so no --base-name is needed; unpacking into the CRI plugin's snapshotter is what
    lets a pod start without a pull.
    """
    present = imported_digests(ctr, address, namespace)
    for image in images:
        if present.get(image.ref) == image.digest:
            continue
        started = time.monotonic()
        args = _ctr(ctr, address, namespace, "images", "import", "--snapshotter", snapshotter, str(image.archive))
        proc = subprocess.run(args, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ImageBuildError(f"importing {image.ref} from {image.archive} failed: {proc.stderr.strip()}")
        imported = imported_digests(ctr, address, namespace).get(image.ref)
        if imported != image.digest:
            raise ImageBuildError(f"{image.archive} imported, but {image.ref} is {imported}, not {image.digest}")
        _log(f"imported {image.ref} in {time.monotonic() - started:.1f}s")


# ---------------------------------------------------------------------------------------------------------------
# Command line


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _seconds(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"


def report(builds: list[CachedBuild]) -> list[str]:
    lines = []
    for build in builds:
        for image in build.images.values():
            state = "built" if build.built_now else "cached, built"
            lines.append(
                f"{image.ref}  {image.archive}  {_megabytes(image.archive.stat().st_size)} "
                f"(unpacked {_megabytes(build.unpacked_bytes)})  {state} in {_seconds(build.build_seconds)}"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build the operator, vPLC, bridge and pause images as OCI archives (cached by content)."
    )
    parser.parse_args(argv)
    started = time.monotonic()
    try:
        builds = ensure_builds()
    except ImageBuildError as error:
        print(f"[images] ERROR: {error}", file=sys.stderr)
        return 1
    for line in report(builds):
        print(line)
    if not any(build.built_now for build in builds):
        _log(f"nothing to build: every image is cached under {images_dir()} ({time.monotonic() - started:.1f}s)")
    else:
        _log(f"done in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
