//go:build tools

// Package tools pins containerd (the daemon, ctr and the runc shim) that
// hack/build-node.sh builds. Nothing imports it; it only makes `go mod tidy`
// keep these packages (and their dependencies) in go.mod/go.sum.
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
