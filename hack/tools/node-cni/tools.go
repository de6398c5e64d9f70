//go:build tools

// Package tools pins the CNI plugins the real node uses (bridge, host-local,
// loopback, portmap), built by hack/build-node.sh. Nothing imports it; it only
// makes `go mod tidy` keep them (and their dependencies) in go.mod/go.sum.
package tools

import (
	_ "github.com/containernetworking/plugins/plugins/ipam/host-local"
	_ "github.com/containernetworking/plugins/plugins/main/bridge"
	_ "github.com/containernetworking/plugins/plugins/main/loopback"
	_ "github.com/containernetworking/plugins/plugins/meta/portmap"
)
