"""Build the control plane binaries from the Go module proxy, cached per version.

No container registry or binary download is needed: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kubectl and kwok are compiled from their Go modules. Each component is built once per
version into the user cache directory; a second run finds the binaries and builds nothing.

kube-* cannot be `go install`ed: k8s.io/kubernetes requires its staging modules at v0.0.0 and points
them at ./staging with replace directives that only apply inside that repository. A wrapper module
requires k8s.io/kubernetes and replaces every staging module with its published v0.X.Y release; the
list is read from the version's own go.mod so it stays right when the version moves. etcd's server
module has the same problem (replace => ../api), so it is built through a wrapper module as well.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from shopfloor_localsite.versions import (
    ETCD_VERSION,
    HELM_VERSION,
    KUBERNETES_VERSION,
    KWOK_VERSION,
    PROMETHEUS_OPERATOR_VERSION,
)

KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kubelet")
# Seen on 2 cores, in this order (later commands reuse the packages compiled before them); printed as estimates.
KUBE_TYPICAL = {
    "kube-apiserver": "4-6 min",
    "kube-controller-manager": "1-2 min",
    "kube-scheduler": "about 1 min",
    "kubectl": "about 1 min",
    "kubelet": "under 1 min",
}
ALL_BINARIES = (*KUBE_COMMANDS, "etcd", "kwok", "helm")
WRAPPER_GO_VERSION = "1.24.0"


class BuildError(RuntimeError):
    """A component failed to build; the message says what failed and how to retry."""


def cache_root() -> Path:
    explicit = os.environ.get("SHOPFLOOR_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "shopfloor"


@dataclass(frozen=True)
class Binaries:
    """Where each control plane binary lives, plus the kwok stage definitions."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    kubelet: Path
    kwok: Path
    kwok_stages: Path
    helm: Path

    def all(self) -> list[Path]:
        return [
            self.etcd,
            self.kube_apiserver,
            self.kube_controller_manager,
            self.kube_scheduler,
            self.kubectl,
            self.kubelet,
            self.kwok,
            self.helm,
        ]


def kube_dir() -> Path:
    return cache_root() / "bin" / f"kubernetes-{KUBERNETES_VERSION}"


def etcd_dir() -> Path:
    return cache_root() / "bin" / f"etcd-{ETCD_VERSION}"


def kwok_dir() -> Path:
    return cache_root() / "bin" / f"kwok-{KWOK_VERSION}"


def helm_dir() -> Path:
    return cache_root() / "bin" / f"helm-{HELM_VERSION}"


def _user_asset(name: str) -> Path | None:
    """A binary from KUBEBUILDER_ASSETS, when the user already has one."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if not assets:
        return None
    candidate = Path(assets) / name
    return candidate if candidate.is_file() and os.access(candidate, os.X_OK) else None


def locate() -> Binaries:
    """Paths of the binaries (user-supplied ones win), whether or not they are built yet."""

    def pick(name: str, default_dir: Path) -> Path:
        return _user_asset(name) or default_dir / name

    return Binaries(
        etcd=pick("etcd", etcd_dir()),
        kube_apiserver=pick("kube-apiserver", kube_dir()),
        kube_controller_manager=pick("kube-controller-manager", kube_dir()),
        kube_scheduler=pick("kube-scheduler", kube_dir()),
        kubectl=pick("kubectl", kube_dir()),
        kubelet=pick("kubelet", kube_dir()),
        kwok=pick("kwok", kwok_dir()),
        kwok_stages=kwok_dir() / "stages",
        helm=pick("helm", helm_dir()),
    )


def missing() -> list[Path]:
    binaries = locate()
    paths = [*binaries.all(), binaries.kwok_stages]
    return [p for p in paths if not p.exists()]


def _log(message: str) -> None:
    print(f"[build] {message}", file=sys.stderr, flush=True)


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CGO_ENABLED", "0")
    env["GOFLAGS"] = "-mod=mod -buildvcs=false"
    env["GOTOOLCHAIN"] = "local"
    return env


def _run(args: list[str], cwd: Path, what: str, log_file: Path) -> str:
    started = time.monotonic()
    with log_file.open("a") as log:
        log.write(f"$ {' '.join(args)}\n")
        log.flush()
        proc = subprocess.run(args, cwd=cwd, env=_go_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        log.write(proc.stdout)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-25:])
        raise BuildError(
            f"{what} failed (exit {proc.returncode}) after {time.monotonic() - started:.0f}s:\n{tail}\n"
            f"Full log: {log_file}\n"
            f"Retry with `make binaries` (finished components are kept); "
            f"or point KUBEBUILDER_ASSETS at a folder holding the binaries."
        )
    return proc.stdout


def _module_file(module: str, version: str, work: Path, log_file: Path) -> str:
    out = _run(["go", "mod", "download", "-json", f"{module}@{version}"], work, f"download {module}", log_file)
    info = json.loads(out[out.index("{") :])
    return Path(info["GoMod"]).read_text()


def staging_modules(kubernetes_go_mod: str) -> list[str]:
    """The staging modules a k8s.io/kubernetes go.mod points at ./staging (these need real versions)."""
    return sorted(set(re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", kubernetes_go_mod, re.M)))


def kube_wrapper_go_mod(kubernetes_version: str, staging: list[str]) -> str:
    staging_version = "v0." + kubernetes_version.removeprefix("v").split(".", 1)[1]
    lines = [
        "module shopfloor.local/kube-build",
        "",
        f"go {WRAPPER_GO_VERSION}",
        "",
        "godebug default=go1.24",
        "",
        f"require k8s.io/kubernetes {kubernetes_version}",
        "",
        "replace (",
        *[f"\t{module} => {module} {staging_version}" for module in staging],
        ")",
        "",
    ]
    return "\n".join(lines)


def _tools_go(imports: list[str]) -> str:
    body = "\n".join(f'\t_ "{path}"' for path in imports)
    return f"//go:build tools\n\npackage tools\n\nimport (\n{body}\n)\n"


def kube_version_ldflags(version: str) -> str:
    major, minor = version.removeprefix("v").split(".")[:2]
    build_date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    values = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "gitCommit": "shopfloor-module-build",
        "buildDate": build_date,
    }
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {package}.{key}={value}" for key, value in values.items()]
    return " ".join(flags)


def _install_outputs(built: dict[str, Path], target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name, path in built.items():
        tmp = target / f".{name}.tmp"
        shutil.copy2(path, tmp)
        tmp.rename(target / name)


def build_kubernetes(work: Path, log_file: Path) -> None:
    target = kube_dir()
    if all((target / name).exists() for name in KUBE_COMMANDS):
        return
    _log(f"kubernetes {KUBERNETES_VERSION}: resolving the staging modules from its go.mod")
    module = work / "kube"
    module.mkdir(parents=True, exist_ok=True)
    staging = staging_modules(_module_file("k8s.io/kubernetes", KUBERNETES_VERSION, module, log_file))
    if not staging:
        raise BuildError(f"no staging modules found in k8s.io/kubernetes@{KUBERNETES_VERSION}'s go.mod")
    (module / "go.mod").write_text(kube_wrapper_go_mod(KUBERNETES_VERSION, staging))
    packages = [f"k8s.io/kubernetes/cmd/{name}" for name in KUBE_COMMANDS]
    (module / "tools.go").write_text(_tools_go(packages))
    _log(f"kubernetes: {len(staging)} staging modules replaced; downloading modules")
    _run(["go", "mod", "tidy"], module, "go mod tidy (kubernetes wrapper)", log_file)
    out = module / "out"
    out.mkdir(exist_ok=True)
    for name in KUBE_COMMANDS:
        if (target / name).exists():
            continue  # a cache from before this command was added
        started = time.monotonic()
        _log(f"kubernetes: compiling {name} (typically {KUBE_TYPICAL.get(name, 'a few minutes')} on 2 cores)")
        _run(
            [
                "go",
                "build",
                "-trimpath",
                "-tags=selinux,notest,grpcnotrace",
                f"-ldflags={kube_version_ldflags(KUBERNETES_VERSION)}",
                "-o",
                str(out / name),
                f"k8s.io/kubernetes/cmd/{name}",
            ],
            module,
            f"go build {name}",
            log_file,
        )
        _log(f"kubernetes: {name} built in {time.monotonic() - started:.0f}s")
        _install_outputs({name: out / name}, target)


ETCD_MAIN = """package main

import (
\t"os"

\t"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
\tetcdmain.Main(os.Args)
}
"""


def build_etcd(work: Path, log_file: Path) -> None:
    target = etcd_dir()
    if (target / "etcd").exists():
        return
    _log(f"etcd {ETCD_VERSION}: compiling through a wrapper module")
    module = work / "etcd"
    module.mkdir(parents=True, exist_ok=True)
    go_mod = f"module shopfloor.local/etcd-build\n\ngo {WRAPPER_GO_VERSION}\n\n"
    (module / "go.mod").write_text(go_mod + f"require go.etcd.io/etcd/server/v3 {ETCD_VERSION}\n")
    (module / "main.go").write_text(ETCD_MAIN)
    _run(["go", "mod", "tidy"], module, "go mod tidy (etcd wrapper)", log_file)
    started = time.monotonic()
    _run(["go", "build", "-trimpath", "-ldflags=-s -w", "-o", "etcd", "."], module, "go build etcd", log_file)
    _log(f"etcd built in {time.monotonic() - started:.0f}s")
    _install_outputs({"etcd": module / "etcd"}, target)


# The stage files kwokctl applies by default: nodes become Ready and keep leases, pods go to Running
# (and complete or get deleted). Without stages kwok stops with "no stages found".
KWOK_STAGE_FILES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)


def _go_install(name: str, package: str, version: str, work: Path, log_file: Path) -> Path:
    """`go install package@version` into a private GOBIN; returns the binary."""
    _log(f"{name} {version}: go install")
    module = work / name
    module.mkdir(parents=True, exist_ok=True)
    gobin = module / "bin"
    started = time.monotonic()
    _run(
        ["env", f"GOBIN={gobin}", "go", "install", "-trimpath", "-ldflags=-s -w", f"{package}@{version}"],
        module,
        f"go install {name}",
        log_file,
    )
    _log(f"{name} built in {time.monotonic() - started:.0f}s")
    return gobin / name


def build_helm(work: Path, log_file: Path) -> None:
    """Helm renders and lints the chart in the tests."""
    if (helm_dir() / "helm").exists():
        return
    binary = _go_install("helm", "helm.sh/helm/v3/cmd/helm", HELM_VERSION, work, log_file)
    _install_outputs({"helm": binary}, helm_dir())


# A Go program of the test suite (tests/gitops/healthcheck): what Argo CD's Lua health checks and kstatus say about
# our objects, computed with their own modules. Test-only: the product neither ships nor runs it.
HEALTHCHECK_SOURCE = Path(__file__).resolve().parents[2] / "tests" / "gitops" / "healthcheck"
HEALTHCHECK_FILES = ("go.mod", "go.sum", "main.go")
# -mod=readonly: the committed go.sum is the pin; the build never edits the source tree.
GO_READONLY_BUILD = ("env", "GOFLAGS=-mod=readonly -buildvcs=false", "go", "build", "-trimpath", "-ldflags=-s -w")


def healthcheck_binary() -> Path:
    """Cached per content of its module: an edit to main.go or a new pin builds it again."""
    digest = hashlib.sha256()
    for name in HEALTHCHECK_FILES:
        digest.update(name.encode() + b"\0" + (HEALTHCHECK_SOURCE / name).read_bytes() + b"\0")
    return cache_root() / "bin" / f"shopfloor-healthcheck-{digest.hexdigest()[:12]}" / "shopfloor-healthcheck"


def ensure_healthcheck() -> Path:
    """Build tests/gitops/healthcheck when its cached binary is missing (cold: minutes, Argo CD's util/lua pulls
    about 1,400 packages); returns the binary."""
    binary = healthcheck_binary()
    if binary.exists():
        return binary
    if shutil.which("go") is None:
        raise BuildError("the Go toolchain (go) is not on PATH; it is needed once to build shopfloor-healthcheck")
    log_file = cache_root() / "build.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix="healthcheck-", dir=cache_root()))  # its own: builds may run side by side
    started = time.monotonic()
    _log("shopfloor-healthcheck (Argo CD util/lua, cli-utils kstatus): compiling")
    _run(
        [*GO_READONLY_BUILD, "-o", str(out / "shopfloor-healthcheck"), "."],
        HEALTHCHECK_SOURCE,
        "go build shopfloor-healthcheck",
        log_file,
    )
    _log(f"shopfloor-healthcheck built in {time.monotonic() - started:.0f}s")
    _install_outputs({"shopfloor-healthcheck": out / "shopfloor-healthcheck"}, binary.parent)
    shutil.rmtree(out, ignore_errors=True)
    return binary


PROMETHEUS_OPERATOR_CRDS = (
    "monitoring.coreos.com_servicemonitors.yaml",
    "monitoring.coreos.com_podmonitors.yaml",
    "monitoring.coreos.com_prometheusrules.yaml",
)


def prometheus_operator_crds_dir() -> Path:
    return cache_root() / "bin" / f"prometheus-operator-crds-{PROMETHEUS_OPERATOR_VERSION}"


def ensure_prometheus_operator_crds() -> Path:
    """The released CRDs of the Prometheus Operator (example/prometheus-operator-crd/ of its Go module), for the
    tests that apply the chart's PodMonitors and PrometheusRule; returns their folder."""
    target = prometheus_operator_crds_dir()
    if all((target / name).exists() for name in PROMETHEUS_OPERATOR_CRDS):
        return target
    log_file = cache_root() / "build.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="prometheus-operator-", dir=cache_root()))
    module = f"github.com/prometheus-operator/prometheus-operator@{PROMETHEUS_OPERATOR_VERSION}"
    out = _run(["go", "mod", "download", "-json", module], work, f"download {module}", log_file)
    source = Path(json.loads(out[out.index("{") :])["Dir"]) / "example" / "prometheus-operator-crd"
    for name in PROMETHEUS_OPERATOR_CRDS:
        if not (source / name).exists():
            raise BuildError(f"{module} has no {name} under example/prometheus-operator-crd")
        (work / name).write_text((source / name).read_text())
    _install_outputs({name: work / name for name in PROMETHEUS_OPERATOR_CRDS}, target)
    shutil.rmtree(work, ignore_errors=True)
    return target


def build_kwok(work: Path, log_file: Path) -> None:
    target = kwok_dir()
    if (target / "kwok").exists() and (target / "stages").exists():
        return
    binary = _go_install("kwok", "sigs.k8s.io/kwok/cmd/kwok", KWOK_VERSION, work, log_file)
    module = work / "kwok"
    out = _run(["go", "mod", "download", "-json", f"sigs.k8s.io/kwok@{KWOK_VERSION}"], module, "locate kwok", log_file)
    source = Path(json.loads(out[out.index("{") :])["Dir"])
    stages = module / "stages"
    stages.mkdir(exist_ok=True)
    for relative in KWOK_STAGE_FILES:
        file = source / relative
        if not file.exists():
            raise BuildError(f"kwok {KWOK_VERSION} has no stage file {relative}")
        (stages / file.name).write_text(file.read_text())
    _install_outputs({"kwok": binary}, target)
    if (target / "stages").exists():
        shutil.rmtree(target / "stages")
    shutil.copytree(stages, target / "stages")


def ensure_binaries() -> Binaries:
    """Build whatever is missing and return the paths. Raises BuildError with retry advice on failure."""
    if not missing():
        return locate()
    if shutil.which("go") is None:
        raise BuildError("the Go toolchain (go) is not on PATH; it is needed once to build the control plane")
    work = cache_root() / "work"
    work.mkdir(parents=True, exist_ok=True)
    log_file = cache_root() / "build.log"
    started = time.monotonic()
    _log(
        "building the control plane from Go modules, first run only: about 8 minutes on 2 idle cores, 15 beside other "
        f"work, most of it kube-apiserver (log: {log_file})"
    )
    build_etcd(work, log_file)
    build_kwok(work, log_file)
    build_kubernetes(work, log_file)
    build_helm(work, log_file)
    # The wrapper modules and intermediate outputs are cheap to recreate; the binaries are what is cached.
    shutil.rmtree(work, ignore_errors=True)
    _log(f"control plane binaries ready in {time.monotonic() - started:.0f}s under {cache_root() / 'bin'}")
    return locate()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the local control plane binaries (cached per version).")
    parser.add_argument("--print-paths", action="store_true", help="print where each binary is and exit")
    parser.add_argument(
        "--test-tools",
        action="store_true",
        help="also what the test suite takes from Go modules (shopfloor-healthcheck, the Prometheus Operator's CRDs)",
    )
    args = parser.parse_args(argv)
    if args.print_paths:
        for path in [*locate().all(), locate().kwok_stages]:
            print(f"{path} {'(ready)' if path.exists() else '(missing)'}")
        return 0
    try:
        ensure_binaries()
        if args.test_tools:
            ensure_healthcheck()
            ensure_prometheus_operator_crds()
    except BuildError as error:
        print(f"[build] ERROR: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
