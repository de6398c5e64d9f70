//go:build tools

// Package tools pins Helm, built by hack/build-go-tool.sh helm for the chart's tests
// (charts/bluegreen-operator). Nothing imports it; it only makes `go mod tidy` keep Helm
// (and its dependencies) in go.mod/go.sum.
package tools

import (
	_ "helm.sh/helm/v4/cmd/helm"
)
