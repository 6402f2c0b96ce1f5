# Images of the operator and the workloads: one build, three targets, each running the command it is named after
# (the local edge site relies on that: an image shopfloor-X runs `shopfloor-X`).
#   docker build --target operator -t ghcr.io/shopfloor/shopfloor-operator:0.1.0 .
#   docker build --target vplc     -t ghcr.io/shopfloor/shopfloor-vplc:0.1.0 .
#   docker build --target bridge   -t ghcr.io/shopfloor/shopfloor-bridge:0.1.0 .
#
# `make images` (localsite/shopfloor_localsite/images.py) builds the same images without Docker or a registry:
# Debian bookworm with Debian's python3, the project installed into /usr/local by pip run with that python3,
# hash-based .pyc files, the nonroot user, one layer, the same environment and entrypoints. Keep the two in step.

FROM python:3.11-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY operator ./operator
COPY workloads ./workloads
COPY localsite ./localsite
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM debian:bookworm-slim AS install
# The packages of images.ROOTFS_PACKAGES.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates netbase tzdata \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt/* /var/log/dpkg.log /var/log/alternatives.log
# The distroless "nonroot" user the pod builders run as; kopf names itself after it (getpass.getuser()).
RUN groupadd --gid 65532 nonroot \
 && useradd --no-log-init --uid 65532 --gid 65532 --home-dir /nonexistent --shell /usr/sbin/nologin nonroot
COPY --from=build /wheels /tmp/wheels
# The build stage's pip, run by Debian's python3: packages in /usr/local/lib/python3.11/dist-packages, console
# scripts in /usr/local/bin; the image needs no pip of its own.
COPY --from=build /usr/local/lib/python3.11/site-packages/pip /tmp/pip/pip
RUN PYTHONPATH=/tmp/pip python3 -m pip install --no-index --find-links=/tmp/wheels --no-compile --no-cache-dir \
      --break-system-packages --root-user-action=ignore --disable-pip-version-check shopfloor \
 && rm -rf /usr/local/lib/python3.11/dist-packages/shopfloor_localsite /usr/local/bin/shopfloor-localsite \
 && PYTHONHASHSEED=0 python3 -m compileall -q -f -j0 --invalidation-mode=unchecked-hash \
      /usr/lib/python3.11 /usr/lib/python3/dist-packages /usr/local/lib/python3.11/dist-packages \
 && rm -rf /tmp/pip /tmp/wheels

# One layer holding the whole filesystem, without the wheels the install stage copied in.
FROM scratch AS base
COPY --from=install / /
# The root filesystem is mounted read-only in the pods; /tmp is an emptyDir.
USER 65532:65532
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 PYTHONUNBUFFERED=1

FROM base AS operator
ENTRYPOINT ["shopfloor-operator"]

FROM base AS vplc
ENTRYPOINT ["shopfloor-vplc"]

FROM base AS bridge
ENTRYPOINT ["shopfloor-bridge"]
