//go:build tools

// Package tools pins Prometheus, built by hack/build-go-tool.sh prometheus for the
// Prometheus checks' tests (hack/prometheus.sh). Nothing imports it; it only makes
// `go mod tidy` keep Prometheus (and its dependencies) in go.mod/go.sum. Built with only
// the Kubernetes service discovery (tags remove_all_sd enable_kubernetes_sd): the others
// and their cloud SDKs are most of the build, and nothing here uses them.
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
)
