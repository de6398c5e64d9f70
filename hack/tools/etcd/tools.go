//go:build tools

// Package tools pins etcd for hack/build-control-plane.sh (the etcd server's
// main package is the module root of go.etcd.io/etcd/server/v3).
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
