# Images of the operator and the workloads: one build, three targets, each running the command it is named after
# (the local edge site relies on that: an image shopfloor-X runs `shopfloor-X`).
#   docker build --target operator -t ghcr.io/shopfloor/shopfloor-operator:0.1.0 .
#   docker build --target vplc     -t ghcr.io/shopfloor/shopfloor-vplc:0.1.0 .
#   docker build --target bridge   -t ghcr.io/shopfloor/shopfloor-bridge:0.1.0 .
FROM python:3.11-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY operator ./operator
COPY workloads ./workloads
COPY localsite ./localsite
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm AS base
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# The distroless "nonroot" user id the pod builders run as; the root filesystem is mounted read-only.
USER 65532:65532
ENV PYTHONUNBUFFERED=1

FROM base AS operator
ENTRYPOINT ["shopfloor-operator"]

FROM base AS vplc
ENTRYPOINT ["shopfloor-vplc"]

FROM base AS bridge
ENTRYPOINT ["shopfloor-bridge"]
