package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	// Agents may compress their batches: the server must know the codec
	// whatever else the binary imports.
	_ "google.golang.org/grpc/encoding/gzip"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/sinks"
)

// ServerConfig configures the aggregator's receiver.
type ServerConfig struct {
	// MaxBatchesInFlight bounds the batches of one connection being
	// written at once; further batches wait in the connection's flow
	// control window, which pushes back on the agent.
	MaxBatchesInFlight int
	// WriteTimeout bounds one sink write; a batch that takes longer is
	// answered with a retry.
	WriteTimeout time.Duration
	// RetryAfter is the delay suggested to the agent with a retry.
	RetryAfter time.Duration
	// MaxMessageBytes bounds one event's message.
	MaxMessageBytes int
}

// Server receives batches and acks each one after its sink accepted it.
type Server struct {
	ferryv1.UnimplementedIngestServer
	sink   sinks.Sink
	cfg    ServerConfig
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	// mu orders the start of a write against Drain: a batch either starts
	// before draining is set (and Drain waits for it) or is answered with a
	// retry. inflight.Add is never called once Drain waits.
	mu       sync.Mutex
	draining bool
	inflight sync.WaitGroup

	BatchesAcked  atomic.Uint64
	EventsAcked   atomic.Uint64
	BatchesRetry  atomic.Uint64
	BatchesFailed atomic.Uint64
}

// NewServer returns a receiver writing to sink.
func NewServer(sink sinks.Sink, cfg ServerConfig, log *slog.Logger) *Server {
	if cfg.MaxBatchesInFlight <= 0 {
		cfg.MaxBatchesInFlight = 8
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 60 * time.Second
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = time.Second
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 64 << 20
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{sink: sink, cfg: cfg, log: log, ctx: ctx, cancel: cancel}
}

// Drain stops accepting batches (new ones are answered with a retry, so the
// agent sends them again to another replica or after the restart) and waits
// for the batches being written, until ctx ends; then it cancels them.
func (s *Server) Drain(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.cancel()
		<-done
		return fmt.Errorf("drain: batches still being written: %w", ctx.Err())
	}
}

// Ready reports whether the server accepts batches.
func (s *Server) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.draining
}

// startWrite registers a write about to start; it returns false once the
// server drains.
func (s *Server) startWrite() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.inflight.Add(1)
	return true
}

// Stream implements ferryv1.IngestServer.
func (s *Server) Stream(stream ferryv1.Ingest_StreamServer) error {
	var (
		sendMu sync.Mutex
		wg     sync.WaitGroup
		sem    = make(chan struct{}, s.cfg.MaxBatchesInFlight)
	)
	defer wg.Wait()
	send := func(a *ferryv1.Ack) {
		sendMu.Lock()
		defer sendMu.Unlock()
		if err := stream.Send(a); err != nil {
			s.log.Debug("cannot send ack; the agent will re-send", "seq", a.Seq, "err", err)
		}
	}
	ctx := stream.Context()
	for {
		b, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if !s.Ready() {
			s.retryDraining(b, send)
			continue
		}
		if err := s.validate(b); err != nil {
			s.BatchesFailed.Add(1)
			s.log.Warn("rejecting malformed batch", "node", b.Node, "seq", b.Seq, "err", err)
			send(&ferryv1.Ack{Seq: b.Seq, Code: ferryv1.Ack_CODE_PERMANENT, Message: err.Error()})
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		if !s.startWrite() {
			<-sem
			s.retryDraining(b, send)
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done(); s.inflight.Done() }()
			send(s.write(b))
		}()
	}
}

func (s *Server) retryDraining(b *ferryv1.Batch, send func(*ferryv1.Ack)) {
	s.BatchesRetry.Add(1)
	send(&ferryv1.Ack{Seq: b.Seq, Code: ferryv1.Ack_CODE_RETRY, Message: "aggregator is shutting down", RetryAfterMillis: s.cfg.RetryAfter.Milliseconds()})
}

// write hands one batch to the sink and turns the outcome into an ack.
func (s *Server) write(b *ferryv1.Batch) *ferryv1.Ack {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.WriteTimeout)
	defer cancel()
	res, err := s.sink.Write(ctx, &event.Batch{Node: b.Node, Seq: b.Seq, Events: b.Events})
	switch {
	case err != nil && sinks.IsPermanent(err):
		s.BatchesFailed.Add(1)
		s.log.Error("sink refused a batch for good", "node", b.Node, "seq", b.Seq, "err", err)
		return &ferryv1.Ack{Seq: b.Seq, Code: ferryv1.Ack_CODE_PERMANENT, Message: err.Error()}
	case err != nil:
		s.BatchesRetry.Add(1)
		s.log.Warn("sink write failed; agent will retry", "node", b.Node, "seq", b.Seq, "err", err)
		return &ferryv1.Ack{Seq: b.Seq, Code: ferryv1.Ack_CODE_RETRY, Message: err.Error(), RetryAfterMillis: s.cfg.RetryAfter.Milliseconds()}
	case !res.OK():
		s.BatchesRetry.Add(1)
		s.log.Warn("some events not written; agent will retry the batch", "node", b.Node, "seq", b.Seq, "failed", len(res.Failed), "first", res.Failed[0].Error())
		return &ferryv1.Ack{Seq: b.Seq, Code: ferryv1.Ack_CODE_RETRY, Message: fmt.Sprintf("%d events not written: %v", len(res.Failed), res.Failed[0]), RetryAfterMillis: s.cfg.RetryAfter.Milliseconds()}
	}
	s.BatchesAcked.Add(1)
	s.EventsAcked.Add(uint64(len(b.Events)))
	return &ferryv1.Ack{Seq: b.Seq, Code: ferryv1.Ack_CODE_OK}
}

// validate checks what the aggregator relies on. A batch failing it is
// malformed and will never be accepted.
func (s *Server) validate(b *ferryv1.Batch) error {
	if b.Seq == 0 {
		return errors.New("batch without sequence number")
	}
	if b.Node == "" {
		return errors.New("batch without node name")
	}
	for i, e := range b.Events {
		if e == nil {
			return fmt.Errorf("event %d: missing", i)
		}
		if len(e.Id) != event.IDLen {
			return fmt.Errorf("event %d: id of %d bytes, want %d", i, len(e.Id), event.IDLen)
		}
		if len(e.Message) > s.cfg.MaxMessageBytes {
			return fmt.Errorf("event %d: message of %d bytes exceeds %d", i, len(e.Message), s.cfg.MaxMessageBytes)
		}
	}
	return nil
}
