"""Pure parts of `make images`: the deterministic layer writer, the OCI documents and archive, the cache keys."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest
import yaml

from shopfloor_localsite import images, oci
from shopfloor_operator.settings import OperatorSettings

REPO = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.timeout(30)


def _tree(root: Path) -> Path:
    """A small root filesystem: nested directories, an executable, a symlink, a hard link, a mount point."""
    (root / "usr/bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "dev").mkdir()
    (root / "dev/null-ish").write_text("not in the layer")
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    tool = root / "usr/bin/tool"
    tool.write_bytes(b"#!/bin/sh\necho tool\n")
    tool.chmod(0o755)
    os.link(tool, root / "usr/bin/tool-again")
    (root / "usr/bin/alias").symlink_to("tool")
    return root


def _entries(layer: Path, compressed: bool) -> list[tarfile.TarInfo]:
    raw = gzip.decompress(layer.read_bytes()) if compressed else layer.read_bytes()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return tar.getmembers()


@pytest.mark.parametrize("compress", [False, True])
def test_the_same_tree_gives_the_same_layer_digest_whatever_its_mtimes(tmp_path: Path, compress: bool) -> None:
    root = _tree(tmp_path / "root")
    first = oci.write_layer(root, tmp_path / "first", compress=compress)
    for path in root.rglob("*"):
        os.utime(path, (1_234_567_890, 1_234_567_890), follow_symlinks=False)
    second = oci.write_layer(root, tmp_path / "second", compress=compress)
    assert first.descriptor.digest == second.descriptor.digest
    assert first.diff_id == second.diff_id
    assert (tmp_path / "first").read_bytes() == (tmp_path / "second").read_bytes()


def test_layer_entries_are_sorted_dated_at_the_epoch_and_owned_by_number(tmp_path: Path) -> None:
    root = _tree(tmp_path / "root")
    layer = oci.write_layer(root, tmp_path / "layer", compress=False, skip_contents_of=("dev",))
    entries = _entries(layer.path, compressed=False)
    names = [entry.name for entry in entries]
    assert names == [
        "dev",
        "etc",
        "etc/passwd",
        "usr",
        "usr/bin",
        "usr/bin/alias",
        "usr/bin/tool",
        "usr/bin/tool-again",
    ]
    assert all(entry.mtime == oci.LAYER_MTIME for entry in entries)
    assert all(entry.uname == "" and entry.gname == "" for entry in entries)
    assert {(entry.uid, entry.gid) for entry in entries} == {(os.getuid(), os.getgid())}
    by_name = {entry.name: entry for entry in entries}
    assert by_name["usr/bin/tool"].mode == 0o755 and by_name["usr/bin/tool"].isreg()
    assert by_name["usr/bin/alias"].issym() and by_name["usr/bin/alias"].linkname == "tool"
    # The second name of an inode is a hard link to the first, not a second copy.
    assert by_name["usr/bin/tool-again"].islnk() and by_name["usr/bin/tool-again"].linkname == "usr/bin/tool"
    assert layer.uncompressed_size == layer.descriptor.size == layer.path.stat().st_size


def test_gzip_layer_digests_name_the_stored_bytes_and_the_tar_and_the_header_carries_no_time(tmp_path: Path) -> None:
    root = _tree(tmp_path / "root")
    layer = oci.write_layer(root, tmp_path / "layer.tar.gz", compress=True)
    stored = layer.path.read_bytes()
    assert layer.descriptor.media_type == oci.MEDIA_TYPE_LAYER_GZIP
    assert layer.descriptor.digest == "sha256:" + hashlib.sha256(stored).hexdigest()
    assert layer.diff_id == "sha256:" + hashlib.sha256(gzip.decompress(stored)).hexdigest()
    assert layer.uncompressed_size == len(gzip.decompress(stored))
    flags, mtime = stored[3], stored[4:8]
    assert flags & 0x08 == 0, "no file name in the gzip header"
    assert mtime == b"\0\0\0\0"


def _image(tmp_path: Path, ref: str = "ghcr.io/shopfloor/shopfloor-vplc:0.1.0") -> oci.Image:
    layer = oci.write_layer(_tree(tmp_path / "root"), tmp_path / "layer.tar.gz", compress=True)
    config = oci.image_config(
        diff_ids=[layer.diff_id],
        architecture="amd64",
        entrypoint=["shopfloor-vplc"],
        user="65532:65532",
        env=["PATH=/usr/bin", "PYTHONUNBUFFERED=1"],
    )
    return oci.build_image(ref, [layer], config)


def test_config_and_manifest_reference_each_other_by_digest(tmp_path: Path) -> None:
    image = _image(tmp_path)
    config = json.loads(image.config)
    manifest = json.loads(image.manifest)
    assert config["config"] == {
        "Entrypoint": ["shopfloor-vplc"],
        "Env": ["PATH=/usr/bin", "PYTHONUNBUFFERED=1"],
        "User": "65532:65532",
    }
    assert (config["os"], config["architecture"], config["created"]) == ("linux", "amd64", oci.CREATED)
    assert config["rootfs"] == {"type": "layers", "diff_ids": [image.layers[0].diff_id]}
    assert manifest["mediaType"] == oci.MEDIA_TYPE_MANIFEST and manifest["schemaVersion"] == 2
    assert manifest["config"] == {
        "mediaType": oci.MEDIA_TYPE_CONFIG,
        "digest": oci.digest_of(image.config),
        "size": len(image.config),
    }
    assert manifest["layers"] == [image.layers[0].descriptor.to_json()]
    # Canonical: sorted keys, no whitespace, so the same inputs always hash the same.
    assert image.config == oci.canonical_json(config) and b" " not in image.manifest


@pytest.mark.parametrize(
    ("ref", "tag"),
    [
        ("ghcr.io/shopfloor/shopfloor-vplc:0.1.0", "0.1.0"),
        ("localhost/shopfloor/pause:3.10", "3.10"),
        ("localhost:5000/shopfloor/pause", "latest"),
    ],
)
def test_tag_of_a_reference(ref: str, tag: str) -> None:
    assert oci.tag_of(ref) == tag


def test_index_names_each_manifest_for_containerd_and_for_oci_tools(tmp_path: Path) -> None:
    image = _image(tmp_path)
    index = oci.image_index([image])
    assert index["mediaType"] == oci.MEDIA_TYPE_INDEX
    [entry] = index["manifests"]
    assert entry["digest"] == image.manifest_descriptor.digest
    assert entry["platform"] == {"architecture": "amd64", "os": "linux"}
    assert entry["annotations"] == {
        "io.containerd.image.name": "ghcr.io/shopfloor/shopfloor-vplc:0.1.0",
        "org.opencontainers.image.ref.name": "0.1.0",
    }


def test_layout_archive_holds_every_blob_under_its_digest_and_is_reproducible(tmp_path: Path) -> None:
    image = _image(tmp_path)
    oci.write_layout_archive(tmp_path / "a.tar", [image])
    oci.write_layout_archive(tmp_path / "b.tar", [image])
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    with tarfile.open(tmp_path / "a.tar") as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
        assert all(m.mtime == 0 and m.uid == 0 for m in tar.getmembers())
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    assert json.loads(files["index.json"]) == oci.image_index([image])
    blobs = {name.removeprefix("blobs/sha256/"): data for name, data in files.items() if name.startswith("blobs/")}
    assert all(hashlib.sha256(data).hexdigest() == digest for digest, data in blobs.items())
    expected = {image.manifest_descriptor.digest, oci.digest_of(image.config), image.layers[0].descriptor.digest}
    assert {f"sha256:{digest}" for digest in blobs} == expected


def test_image_references_are_the_operator_s_defaults_and_the_chart_s() -> None:
    settings = OperatorSettings()
    assert settings.vplc_image == images.VPLC_IMAGE
    assert settings.bridge_image == images.BRIDGE_IMAGE
    values = yaml.safe_load((REPO / "charts/shopfloor/values.yaml").read_text())
    chart = yaml.safe_load((REPO / "charts/shopfloor/Chart.yaml").read_text())
    assert f"{values['image']['repository']}:{values['image']['tag'] or chart['appVersion']}" == images.OPERATOR_IMAGE
    assert (values["settings"]["vplcImage"], values["settings"]["bridgeImage"]) == (
        images.VPLC_IMAGE,
        images.BRIDGE_IMAGE,
    )
    # Each image runs the console script it is named after.
    for ref, command in images.PYTHON_IMAGES.values():
        assert ref.split("/")[-1].split(":")[0] == command


def test_rootfs_key_follows_packages_suite_and_architecture_but_not_package_order() -> None:
    key = images.rootfs_key(("python3", "tzdata"), "bookworm", "amd64")
    assert images.rootfs_key(("tzdata", "python3"), "bookworm", "amd64") == key
    assert images.rootfs_key(("python3",), "bookworm", "amd64") != key
    assert images.rootfs_key(("python3", "tzdata"), "trixie", "amd64") != key
    assert images.rootfs_key(("python3", "tzdata"), "bookworm", "arm64") != key


def test_source_files_are_what_setuptools_puts_in_the_wheel(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    package = tmp_path / "workloads/shopfloor_x"
    (package / "__pycache__").mkdir(parents=True)
    for name in ("__init__.py", "schema.yaml", "wire.proto", "py.typed", "wire_pb2.pyi", "notes.md"):
        (package / name).write_text(name)
    (package / "__pycache__/__init__.cpython-311.pyc").write_text("")
    assert images.source_files(tmp_path) == [
        "pyproject.toml",
        "workloads/shopfloor_x/__init__.py",
        "workloads/shopfloor_x/py.typed",
        "workloads/shopfloor_x/schema.yaml",
        "workloads/shopfloor_x/wire.proto",
    ]


def test_source_digest_changes_with_a_file_s_content_or_name(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    before = images.source_digest(tmp_path, ["a.py"])
    assert images.source_digest(tmp_path, ["a.py"]) == before
    (tmp_path / "a.py").write_text("x = 2\n")
    assert images.source_digest(tmp_path, ["a.py"]) != before
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("x = 1\n")
    assert images.source_digest(tmp_path, ["b.py"]) != before


def test_images_key_follows_every_input() -> None:
    base = {"rootfs": "r", "sources": "s", "requirements": ["kopf==1"], "constraints": ["attrs==2"]}
    key = images.images_key(**base)  # type: ignore[arg-type]
    for field, changed in [
        ("rootfs", "r2"),
        ("sources", "s2"),
        ("requirements", ["kopf==2"]),
        ("constraints", ["attrs==3"]),
    ]:
        assert images.images_key(**{**base, field: changed}) != key  # type: ignore[arg-type]


def test_pause_key_follows_its_source() -> None:
    assert images.pause_key(images.PAUSE_MAIN) == images.pause_key(images.PAUSE_MAIN)
    assert images.pause_key(images.PAUSE_MAIN + "\n") != images.pause_key(images.PAUSE_MAIN)


@pytest.mark.parametrize(
    ("requirement", "name"),
    [
        ("kopf==1.45.2", "kopf"),
        ("PyYAML>=5.4", "pyyaml"),
        ("typing_extensions; python_version < '3.12'", "typing-extensions"),
        ("Brotli; platform_python_implementation == 'CPython' and extra == 'speedups'", None),
        ('aiodns>=3.3.0; extra == "speedups"', None),
    ],
)
def test_requirement_name(requirement: str, name: str | None) -> None:
    assert images.requirement_name(requirement) == name


def test_constraints_pin_the_transitive_runtime_dependencies_at_the_installed_versions() -> None:
    installed = {
        "kopf": ("1.45.2", ["aiohttp>=3", "click", "pytest; extra == 'dev'"]),
        "aiohttp": ("3.14.5", ["yarl>=1.17", "Brotli; extra == 'speedups'"]),
        "click": ("8.5.1", []),
        "yarl": ("1.25.1", ["idna>=2.0", "multidict>=4.0"]),
        "idna": ("3.20", []),
        "pyyaml": ("6.0.4", []),
    }
    constraints = images.dependency_constraints(["kopf==1.45.2", "aiohttp==3.14.5", "PyYAML==6.0.4"], installed.get)
    # Direct dependencies are pyproject's pins; extras stay out; multidict is not installed here, so pip picks it.
    assert constraints == ["click==8.5.1", "idna==3.20", "yarl==1.25.1"]


def test_the_mirror_is_read_from_deb822_and_one_line_sources() -> None:
    deb822 = """Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
"""
    one_line = "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n"
    assert images.mirror_from_sources([one_line, deb822], "bookworm") == "http://deb.debian.org/debian"
    mirror = "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ bookworm main contrib\n"
    assert images.mirror_from_sources([mirror], "bookworm") == "http://mirror.example/debian"
    assert images.mirror_from_sources([one_line], "bookworm") is None


def test_oci_architecture_of_debian_s() -> None:
    assert images.oci_architecture("amd64") == "amd64"
    assert images.oci_architecture("arm64") == "arm64"
    assert images.oci_architecture("armhf") == "arm"
    with pytest.raises(images.ImageBuildError):
        images.oci_architecture("m68k")
