//go:build tools

// Package tools pins the Kubernetes node commands that hack/build-node.sh builds,
// from the same k8s.io/kubernetes release as the control plane (hack/tools/k8s).
// Nothing imports it; it only makes `go mod tidy` keep these packages (and their
// dependencies) in go.mod/go.sum.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
