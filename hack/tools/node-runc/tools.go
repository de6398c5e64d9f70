//go:build tools

// Package tools pins runc, the OCI runtime containerd's shim calls, built by
// hack/build-node.sh (with cgo and libseccomp). Nothing imports it; it only makes
// `go mod tidy` keep it (and its dependencies) in go.mod/go.sum.
package tools

import (
	_ "github.com/opencontainers/runc"
)
