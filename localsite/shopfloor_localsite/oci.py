"""OCI image layouts written with the standard library: deterministic layer tars, configs, manifests, indexes.

What `ctr images import` reads is small: an `oci-layout` file, an `index.json` naming each manifest, and content
addressed blobs (layers, configs, manifests). Writing that is a few dozen lines of tarfile, hashlib and json; a tool
(umoci, skopeo, buildah) would be one more thing to install on an offline machine for no gain.

Determinism: the same directory tree gives the same layer digest. Entries are sorted by name, every mtime is
LAYER_MTIME, owners are numeric (no user or group names), gzip headers carry no time or file name, and every JSON
document is serialised with sorted keys and no whitespace.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

MEDIA_TYPE_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_TYPE_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_TYPE_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

# The OCI annotation holds the tag (as BuildKit writes it); containerd names an imported image after its own
# annotation, the full reference, and falls back to the OCI one (prefixed with --base-name) only without it.
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD_IMAGE_NAME = "io.containerd.image.name"

# Every entry of every layer is dated here (the epoch), so rebuilding an unchanged tree changes no digest. Python
# byte code in the images is hash-based, so nothing in them depends on a file's mtime.
LAYER_MTIME = 0
CREATED = "1970-01-01T00:00:00Z"

_COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class Descriptor:
    """A content-addressed blob as the OCI specs reference it."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    platform: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            document["annotations"] = dict(self.annotations)
        if self.platform:
            document["platform"] = dict(self.platform)
        return document


@dataclass(frozen=True)
class Layer:
    """A layer blob on disk: its descriptor (of the bytes as stored) and its diff id (of the uncompressed tar)."""

    descriptor: Descriptor
    diff_id: str
    uncompressed_size: int
    path: Path


@dataclass(frozen=True)
class Image:
    """One image: the layer blobs it shares with others, plus its own config and manifest."""

    ref: str
    layers: tuple[Layer, ...]
    config: bytes
    manifest: bytes
    platform: dict[str, str]

    @property
    def manifest_descriptor(self) -> Descriptor:
        return Descriptor(MEDIA_TYPE_MANIFEST, digest_of(self.manifest), len(self.manifest), platform=self.platform)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(document: Any) -> bytes:
    """The bytes of a JSON document that hash the same every time it is written."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class _Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


class _HashingWriter(io.RawIOBase):
    """Counts and hashes what passes through on its way to `target` (a file, or the gzip stream in front of it)."""

    def __init__(self, target: _Writable) -> None:
        self.target = target
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.sha256.update(chunk)
        self.size += len(chunk)
        self.target.write(chunk)
        return len(chunk)

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha256.hexdigest()


def _walk(root: Path, skip_contents_of: Collection[str], relative: str = "") -> Iterator[tuple[str, os.stat_result]]:
    """(archive name, lstat) of every entry under root in name order, each directory just before its contents."""
    directory = root / relative if relative else root
    for child in sorted(os.listdir(directory)):
        name = f"{relative}/{child}" if relative else child
        info = os.lstat(directory / child)
        yield name, info
        if stat.S_ISDIR(info.st_mode) and name not in skip_contents_of:
            yield from _walk(root, skip_contents_of, name)


def _tar_entries(root: Path, skip_contents_of: Collection[str]) -> Iterator[tuple[tarfile.TarInfo, Path | None]]:
    first_name_of_inode: dict[tuple[int, int], str] = {}
    for name, info in _walk(root, skip_contents_of):
        entry = tarfile.TarInfo(name)
        entry.mode = stat.S_IMODE(info.st_mode)
        entry.uid, entry.gid = info.st_uid, info.st_gid
        entry.uname = entry.gname = ""
        entry.mtime = LAYER_MTIME
        mode = info.st_mode
        source: Path | None = None
        if stat.S_ISDIR(mode):
            entry.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(mode):
            entry.type = tarfile.SYMTYPE
            entry.linkname = os.readlink(root / name)
        elif stat.S_ISREG(mode):
            inode = (info.st_dev, info.st_ino)
            if info.st_nlink > 1 and inode in first_name_of_inode:
                # A hard link to the first name of this inode in walk order: deterministic and no second copy.
                entry.type = tarfile.LNKTYPE
                entry.linkname = first_name_of_inode[inode]
            else:
                if info.st_nlink > 1:
                    first_name_of_inode[inode] = name
                entry.type = tarfile.REGTYPE
                entry.size = info.st_size
                source = root / name
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            entry.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            entry.devmajor, entry.devminor = os.major(info.st_rdev), os.minor(info.st_rdev)
        elif stat.S_ISFIFO(mode):
            entry.type = tarfile.FIFOTYPE
        else:
            continue  # sockets belong to running processes, not to an image
        yield entry, source


def write_layer(
    root: Path,
    destination: Path,
    *,
    compress: bool,
    skip_contents_of: Collection[str] = (),
) -> Layer:
    """Write the tree under `root` as a layer blob at `destination`.

    `skip_contents_of` names directories (relative, e.g. "dev") kept as empty directories: mount points whose
    contents the runtime provides.
    """
    with destination.open("wb") as stored:
        stored_hasher = _HashingWriter(stored)
        compressor: gzip.GzipFile | None = None
        if compress:
            # filename="" and mtime=0: the gzip header would otherwise carry the file's name and today's time.
            compressor = gzip.GzipFile(filename="", mode="wb", fileobj=stored_hasher, mtime=0, compresslevel=6)
        tar_hasher = _HashingWriter(compressor if compressor is not None else stored_hasher)
        with tarfile.open(fileobj=tar_hasher, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for entry, source in _tar_entries(root, skip_contents_of):
                if source is None:
                    tar.addfile(entry)
                else:
                    with source.open("rb") as content:
                        tar.addfile(entry, content)
        if compressor is not None:
            compressor.close()
    media_type = MEDIA_TYPE_LAYER_GZIP if compress else MEDIA_TYPE_LAYER
    return Layer(
        descriptor=Descriptor(media_type, stored_hasher.digest, stored_hasher.size),
        diff_id=tar_hasher.digest,
        uncompressed_size=tar_hasher.size,
        path=destination,
    )


def image_config(
    *,
    diff_ids: list[str],
    architecture: str,
    entrypoint: list[str],
    user: str,
    env: list[str],
    labels: dict[str, str] | None = None,
    history: str = "",
) -> dict[str, Any]:
    """The image configuration: what the runtime runs, as whom, with which environment, on which layers."""
    config: dict[str, Any] = {"Entrypoint": list(entrypoint), "Env": list(env), "User": user}
    if labels:
        config["Labels"] = dict(labels)
    return {
        "architecture": architecture,
        "os": "linux",
        "created": CREATED,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": [{"created": CREATED, "created_by": history or "shopfloor"}],
    }


def image_manifest(config: bytes, layers: list[Layer]) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "config": Descriptor(MEDIA_TYPE_CONFIG, digest_of(config), len(config)).to_json(),
        "layers": [layer.descriptor.to_json() for layer in layers],
    }


def build_image(ref: str, layers: list[Layer], config: dict[str, Any]) -> Image:
    config_bytes = canonical_json(config)
    manifest_bytes = canonical_json(image_manifest(config_bytes, layers))
    platform = {"architecture": config["architecture"], "os": config["os"]}
    return Image(ref=ref, layers=tuple(layers), config=config_bytes, manifest=manifest_bytes, platform=platform)


def tag_of(ref: str) -> str:
    """The tag of `registry/name:tag` ("latest" when there is none)."""
    last_component = ref.rsplit("/", 1)[-1]
    return last_component.rsplit(":", 1)[1] if ":" in last_component else "latest"


def image_index(images: list[Image]) -> dict[str, Any]:
    manifests = []
    for image in images:
        annotated = Descriptor(
            MEDIA_TYPE_MANIFEST,
            image.manifest_descriptor.digest,
            image.manifest_descriptor.size,
            annotations={ANNOTATION_CONTAINERD_IMAGE_NAME: image.ref, ANNOTATION_REF_NAME: tag_of(image.ref)},
            platform=image.platform,
        )
        manifests.append(annotated.to_json())
    return {"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": manifests}


def _archive_entry(name: str, size: int, directory: bool = False) -> tarfile.TarInfo:
    entry = tarfile.TarInfo(name)
    entry.mtime = LAYER_MTIME
    entry.uid = entry.gid = 0
    entry.uname = entry.gname = ""
    if directory:
        entry.type, entry.mode = tarfile.DIRTYPE, 0o755
    else:
        entry.type, entry.mode, entry.size = tarfile.REGTYPE, 0o644, size
    return entry


def write_layout_archive(destination: Path, images: list[Image]) -> None:
    """An OCI image layout as one tar (what `ctr images import` and `docker load` read), blobs stored once."""
    documents: dict[str, bytes] = {}
    layer_files: dict[str, Layer] = {}
    for image in images:
        documents[digest_of(image.config)] = image.config
        documents[digest_of(image.manifest)] = image.manifest
        for layer in image.layers:
            layer_files[layer.descriptor.digest] = layer
    small_files = {
        "oci-layout": canonical_json({"imageLayoutVersion": "1.0.0"}),
        "index.json": canonical_json(image_index(images)),
    }
    with tarfile.open(destination, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in small_files.items():
            tar.addfile(_archive_entry(name, len(data)), io.BytesIO(data))
        tar.addfile(_archive_entry("blobs", 0, directory=True))
        tar.addfile(_archive_entry("blobs/sha256", 0, directory=True))
        blob_names = sorted({*documents, *layer_files})
        for digest in blob_names:
            name = "blobs/sha256/" + digest.removeprefix("sha256:")
            if digest in documents:
                tar.addfile(_archive_entry(name, len(documents[digest])), io.BytesIO(documents[digest]))
            else:
                layer = layer_files[digest]
                with layer.path.open("rb") as content:
                    tar.addfile(_archive_entry(name, layer.descriptor.size), content)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as content:
        while chunk := content.read(_COPY_CHUNK):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()
