// Command coredns is CoreDNS from its pinned module (github.com/coredns/coredns) with only
// the plugins the real node's cluster DNS uses, in CoreDNS's own order (plugin.cfg): the
// full plugin set would pull in every cloud provider's SDK, minutes of build for nothing
// the tests need. Built by hack/build-go-tool.sh coredns; run by hack/real-node.sh.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

// The directives in the order CoreDNS's plugin.cfg gives them (a plugin's place in the
// chain is its place here, not in the Corefile).
var directives = []string{"bind", "ready", "health", "errors", "log", "cache", "kubernetes"}

func init() {
	dnsserver.Directives = directives
}

func main() {
	coremain.Run()
}
