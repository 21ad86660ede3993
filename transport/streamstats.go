package transport

import (
	"context"
	"sync/atomic"

	"google.golang.org/grpc/stats"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// StreamStats is a gRPC server stats.Handler that counts agents' ingest
// streams (Ingest/Stream): those open now and all begun. It sees a stream
// from before the interceptors (authentication) to after the handler
// returned, so a stream refused by authentication counts in Total and is
// open for that short while. Install it with grpc.StatsHandler.
type StreamStats struct {
	open  atomic.Int64
	total atomic.Uint64
}

// Open returns the ingest streams open now.
func (s *StreamStats) Open() int64 { return s.open.Load() }

// Total returns the ingest streams begun since the start.
func (s *StreamStats) Total() uint64 { return s.total.Load() }

// ingestKey marks the context of an ingest stream's RPC.
type ingestKey struct{}

// TagRPC marks ingest streams so that HandleRPC counts only those.
func (s *StreamStats) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	if info.FullMethodName == ferryv1.Ingest_Stream_FullMethodName {
		return context.WithValue(ctx, ingestKey{}, true)
	}
	return ctx
}

// HandleRPC counts an ingest stream at its Begin and End (gRPC calls
// both exactly once per RPC).
func (s *StreamStats) HandleRPC(ctx context.Context, st stats.RPCStats) {
	if ctx.Value(ingestKey{}) == nil {
		return
	}
	switch st.(type) {
	case *stats.Begin:
		s.total.Add(1)
		s.open.Add(1)
	case *stats.End:
		s.open.Add(-1)
	}
}

// TagConn returns ctx: connections are counted by LimitListener.
func (s *StreamStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

// HandleConn does nothing.
func (s *StreamStats) HandleConn(context.Context, stats.ConnStats) {}
