//go:build tools

// Package tools pins the Kubernetes control-plane commands that
// hack/build-control-plane.sh builds. Nothing imports it; it only makes
// `go mod tidy` keep these packages (and their dependencies) in go.mod/go.sum.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
