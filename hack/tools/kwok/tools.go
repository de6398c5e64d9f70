//go:build tools

// Package tools pins kwok (the fake kubelet that keeps fake Nodes Ready and
// pods Running) for hack/build-control-plane.sh.
package tools

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
