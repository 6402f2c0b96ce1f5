"""Pinned versions of the control plane components built from the Go module proxy."""

KUBERNETES_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.7.0"
HELM_VERSION = "v3.19.0"
# Test-only: the Prometheus Operator's CRDs (ServiceMonitor, PodMonitor, PrometheusRule) the chart's objects are
# validated against, taken from this release of its Go module.
PROMETHEUS_OPERATOR_VERSION = "v0.85.0"
