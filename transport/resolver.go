package transport

import (
	"fmt"
	"net"

	"google.golang.org/grpc/resolver"
)

// staticScheme names the resolver of a fixed list of aggregator addresses.
const staticScheme = "ferry-static"

// staticBuilder resolves to a fixed list of host:port addresses, over which
// the client's round-robin policy spreads its streams: a stream broken by a
// replica going away is opened again on another one. Each address carries
// its host as the TLS server name, so certificates are checked per replica.
type staticBuilder struct{ addrs []resolver.Address }

func newStaticBuilder(addrs []string) (*staticBuilder, error) {
	b := &staticBuilder{}
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			return nil, fmt.Errorf("aggregator address %q: %w", a, err)
		}
		b.addrs = append(b.addrs, resolver.Address{Addr: a, ServerName: host})
	}
	return b, nil
}

func (b *staticBuilder) Scheme() string { return staticScheme }

func (b *staticBuilder) Build(_ resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	if err := cc.UpdateState(resolver.State{Addresses: b.addrs}); err != nil {
		return nil, fmt.Errorf("static resolver: %w", err)
	}
	return staticResolver{}, nil
}

type staticResolver struct{}

func (staticResolver) ResolveNow(resolver.ResolveNowOptions) {}
func (staticResolver) Close()                                {}
