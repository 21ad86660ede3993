// Package transport carries batches from agent to aggregator over one gRPC
// stream and acknowledgements back: the agent's client (a bounded window of
// in-flight batches, re-sending after a reconnect, backoff with jitter) and
// the aggregator's server (limits, ack only after the sink said yes).
package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"

	"github.com/ferrylogs/ferry/pipeline/event"
	"github.com/ferrylogs/ferry/pipeline/tail"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// ClientConfig configures the agent's client.
type ClientConfig struct {
	Address         string
	Node            string
	Compression     string // "none" or "gzip"
	MaxInflight     int
	BatchMaxEvents  int
	BatchMaxBytes   int
	BatchTimeout    time.Duration
	BackoffInitial  time.Duration
	BackoffMax      time.Duration
	ShutdownTimeout time.Duration
	DialOptions     []grpc.DialOption
}

// Committer learns which parts of which files are acknowledged.
type Committer interface {
	Commit(f *tail.File, end int64, final bool)
}

// Client ships chunks of events to the aggregator.
type Client struct {
	cfg    ClientConfig
	commit Committer
	log    *slog.Logger
	conn   *grpc.ClientConn
	stats  Stats

	connected atomic.Bool
	mu        sync.Mutex
	snapshot  Stats
}

// Connected reports whether a stream to the aggregator is open.
func (c *Client) Connected() bool { return c.connected.Load() }

// Counters returns a snapshot of the counters by name.
func (c *Client) Counters() map[string]uint64 {
	c.mu.Lock()
	s := c.snapshot
	c.mu.Unlock()
	return map[string]uint64{
		"ferry_agent_batches_acked_total":    s.BatchesAcked,
		"ferry_agent_events_acked_total":     s.EventsAcked,
		"ferry_agent_batches_rejected_total": s.BatchesRejected,
		"ferry_agent_resends_total":          s.Resends,
		"ferry_agent_reconnects_total":       s.Reconnects,
	}
}

func (c *Client) publish() {
	c.mu.Lock()
	c.snapshot = c.stats
	c.mu.Unlock()
}

// Stats are the client's counters (read them after Run returns, or
// through Client.Stats while it runs, as a snapshot).
type Stats struct {
	BatchesAcked    uint64
	EventsAcked     uint64
	BatchesRejected uint64 // permanent errors: logged and not re-sent
	Resends         uint64
	Reconnects      uint64
}

// NewClient returns a client for cfg. It does not connect yet.
func NewClient(cfg ClientConfig, commit Committer, log *slog.Logger) (*Client, error) {
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = 4
	}
	if cfg.BatchMaxEvents <= 0 {
		cfg.BatchMaxEvents = 2048
	}
	if cfg.BatchMaxBytes <= 0 {
		cfg.BatchMaxBytes = 1 << 20
	}
	if cfg.BatchTimeout <= 0 {
		cfg.BatchTimeout = 200 * time.Millisecond
	}
	if cfg.BackoffInitial <= 0 {
		cfg.BackoffInitial = 100 * time.Millisecond
	}
	if cfg.BackoffMax < cfg.BackoffInitial {
		cfg.BackoffMax = max(10*time.Second, cfg.BackoffInitial)
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 20 * time.Second
	}
	opts := []grpc.DialOption{
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
		// Reconnect on the agent's own backoff, not gRPC's default that
		// grows to two minutes.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: cfg.BackoffInitial, Multiplier: 1.6, Jitter: 0.2, MaxDelay: cfg.BackoffMax},
			MinConnectTimeout: 5 * time.Second,
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(4 << 20)),
	}
	if len(cfg.DialOptions) == 0 {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	opts = append(opts, cfg.DialOptions...)
	conn, err := grpc.NewClient(cfg.Address, opts...)
	if err != nil {
		return nil, fmt.Errorf("aggregator address %q: %w", cfg.Address, err)
	}
	return &Client{cfg: cfg, commit: commit, log: log, conn: conn}, nil
}

// Close releases the connection.
func (c *Client) Close() error { return c.conn.Close() }

// pending is a sealed batch waiting for its ack.
type pending struct {
	msg     *ferryv1.Batch
	commits []commit
	events  int
	bytes   int
	acked   bool
	sent    bool // on the current stream
	retryAt time.Time
}

type commit struct {
	file  *tail.File
	end   int64
	final bool
}

// builder turns chunks into one wire batch. It copies every message into
// its own arena, so chunks are released at once.
type builder struct {
	node    string
	maxEv   int
	events  []ferryv1.Event
	sources []ferryv1.Source
	ptrs    []*ferryv1.Event
	arena   []byte
	ids     []byte
	commits []commit
	n       int
	opened  time.Time
}

func newBuilder(node string, maxEvents, maxBytes int) *builder {
	cap := maxEvents + 512 // a batch takes whole chunks
	return &builder{
		node:    node,
		maxEv:   maxEvents,
		events:  make([]ferryv1.Event, cap),
		sources: make([]ferryv1.Source, cap),
		ptrs:    make([]*ferryv1.Event, 0, cap),
		arena:   make([]byte, 0, maxBytes+(256<<10)+(128<<10)),
		ids:     make([]byte, 0, cap*event.IDLen),
	}
}

// fits reports whether c can join the batch without passing its limits
// (an empty batch takes any chunk).
func (b *builder) fits(c *tail.Chunk, maxBytes int) bool {
	if b.n == 0 && len(b.commits) == 0 {
		return true
	}
	return b.n+len(c.Recs) <= b.maxEv && len(b.arena)+len(c.Arena) <= maxBytes
}

func (b *builder) add(c *tail.Chunk) {
	if b.n == 0 && len(b.commits) == 0 {
		b.opened = time.Now()
	}
	f := c.File
	for i := range c.Recs {
		r := &c.Recs[i]
		ev := &b.events[b.n]
		src := &b.sources[b.n]
		b.n++
		idStart := len(b.ids)
		b.ids = event.ID(b.ids, b.node, f.ID, r.Off)
		msgStart := len(b.arena)
		b.arena = append(b.arena, c.Message(r)...)
		src.Path, src.Offset, src.Input, src.FileId = f.Path, r.Off, f.Input, f.ID
		ev.Id = b.ids[idStart:len(b.ids):len(b.ids)]
		ev.TimeUnixNano = r.Time
		ev.Message = b.arena[msgStart:len(b.arena):len(b.arena)]
		ev.Stream = r.Stream
		ev.Source = src
		ev.Kubernetes = f.Kube
		ev.Fields = f.Fields
		ev.Flags = r.Flags
		ev.Kind = ferryv1.Kind_KIND_LOG
		b.ptrs = append(b.ptrs, ev)
	}
	b.commits = append(b.commits, commit{file: f, end: c.End, final: c.Final})
	c.Release()
}

func (b *builder) empty() bool { return b.n == 0 && len(b.commits) == 0 }

func (b *builder) seal(seq uint64) *pending {
	p := &pending{
		msg:     &ferryv1.Batch{Seq: seq, Node: b.node, Events: b.ptrs},
		commits: b.commits,
		events:  b.n,
		bytes:   len(b.arena),
	}
	return p
}

// Run ships chunks from in until ctx ends. Then it stops reading, sends
// what it holds, and waits up to the shutdown timeout for outstanding acks;
// it returns an error if some batches stayed unacknowledged (their lines are
// read again at the next start).
func (c *Client) Run(ctx context.Context, in <-chan *tail.Chunk) error {
	s := &session{c: c, in: in, acks: make(chan ackOrErr, 2*c.cfg.MaxInflight+8), done: make(chan struct{})}
	defer close(s.done)
	return s.run(ctx)
}

type ackOrErr struct {
	ack    *ferryv1.Ack
	err    error
	stream int
}

type session struct {
	c       *Client
	in      <-chan *tail.Chunk
	acks    chan ackOrErr
	done    chan struct{}
	queue   []*pending
	cur     *builder
	nextSeq uint64

	stream    grpc.BidiStreamingClient[ferryv1.Batch, ferryv1.Ack]
	streamID  int
	cancel    context.CancelFunc
	backoff   time.Duration
	reconnect time.Time
}

func (s *session) run(ctx context.Context) error {
	cfg := s.c.cfg
	s.cur = newBuilder(cfg.Node, cfg.BatchMaxEvents, cfg.BatchMaxBytes)
	s.nextSeq = 1
	s.backoff = cfg.BackoffInitial
	connCtx, stopConn := context.WithCancel(context.Background())
	defer stopConn()
	defer s.closeStream()

	draining := false
	var deadline <-chan time.Time
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if draining && len(s.queue) == 0 && s.cur.empty() {
			return nil
		}
		if s.stream == nil && !time.Now().Before(s.reconnect) && (!draining || len(s.queue) > 0) {
			s.connect(connCtx)
		}
		if s.stream != nil {
			s.sendDue()
		}
		// When to wake up next: batch timeout, retry, reconnect.
		wake := time.Hour
		if !s.cur.empty() && len(s.queue) < cfg.MaxInflight {
			wake = min(wake, time.Until(s.cur.opened.Add(cfg.BatchTimeout)))
		}
		if s.stream == nil {
			wake = min(wake, time.Until(s.reconnect))
		} else {
			for _, p := range s.queue {
				if !p.acked && !p.sent {
					wake = min(wake, time.Until(p.retryAt))
				}
			}
		}
		timer.Reset(max(wake, time.Millisecond))

		var in <-chan *tail.Chunk
		if !draining && len(s.queue) < cfg.MaxInflight {
			in = s.in
		}
		select {
		case ch := <-in:
			if !s.cur.fits(ch, cfg.BatchMaxBytes) {
				s.sealCurrent()
			}
			s.cur.add(ch)
			if s.cur.n >= cfg.BatchMaxEvents || len(s.cur.arena) >= cfg.BatchMaxBytes {
				s.sealCurrent()
			}
		case <-timer.C:
			if !s.cur.empty() && !time.Now().Before(s.cur.opened.Add(cfg.BatchTimeout)) && len(s.queue) < cfg.MaxInflight {
				s.sealCurrent()
			}
		case a := <-s.acks:
			s.handle(a)
			s.c.publish()
		case <-ctx.Done():
			if !draining {
				draining = true
				ctx = context.Background()
				if !s.cur.empty() {
					s.sealCurrent()
				}
				deadline = time.After(cfg.ShutdownTimeout)
				s.c.log.Info("draining: waiting for outstanding acks", "batches", len(s.queue), "timeout", cfg.ShutdownTimeout)
			}
		case <-deadline:
			n := 0
			for _, p := range s.queue {
				if !p.acked {
					n += p.events
				}
			}
			return fmt.Errorf("shutdown timeout: %d events in %d batches not acknowledged (they are read again at the next start)", n, len(s.queue))
		}
	}
}

// sealCurrent moves the batch being built into the window.
func (s *session) sealCurrent() {
	if s.cur.empty() {
		return
	}
	p := s.cur.seal(s.nextSeq)
	s.nextSeq++
	cfg := s.c.cfg
	s.cur = newBuilder(cfg.Node, cfg.BatchMaxEvents, cfg.BatchMaxBytes)
	if p.events == 0 {
		// Only offsets to commit (e.g. the end of a drained file): no
		// need to send, but commit in order with the batches before it.
		p.acked = true
	}
	s.queue = append(s.queue, p)
	s.advance()
}

// sendDue sends every unsent, unacked batch whose retry time has come, in
// sequence order.
func (s *session) sendDue() {
	now := time.Now()
	for _, p := range s.queue {
		if p.acked || p.sent || now.Before(p.retryAt) {
			continue
		}
		if err := s.stream.Send(p.msg); err != nil {
			s.c.log.Warn("send to aggregator failed", "err", err)
			s.brokenStream()
			return
		}
		p.sent = true
	}
}

func (s *session) handle(a ackOrErr) {
	if a.stream != s.streamID {
		return // from a stream already given up
	}
	if a.err != nil {
		if !errors.Is(a.err, context.Canceled) {
			s.c.log.Warn("stream to aggregator broken", "err", a.err)
		}
		s.brokenStream()
		return
	}
	var p *pending
	for _, q := range s.queue {
		if q.msg.Seq == a.ack.GetSeq() {
			p = q
			break
		}
	}
	if p == nil || p.acked {
		return
	}
	switch a.ack.GetCode() {
	case ferryv1.Ack_CODE_OK:
		p.acked = true
		s.backoff = s.c.cfg.BackoffInitial
		s.c.stats.BatchesAcked++
		s.c.stats.EventsAcked += uint64(p.events)
		s.advance()
	case ferryv1.Ack_CODE_PERMANENT:
		s.c.log.Error("aggregator rejected a batch for good; its events are dropped",
			"seq", p.msg.Seq, "events", p.events, "reason", a.ack.GetMessage())
		p.acked = true
		s.c.stats.BatchesRejected++
		s.advance()
	default:
		delay := time.Duration(a.ack.GetRetryAfterMillis()) * time.Millisecond
		delay = max(delay, s.jitter())
		s.c.log.Debug("aggregator asked to retry a batch", "seq", p.msg.Seq, "after", delay, "reason", a.ack.GetMessage())
		p.sent = false
		p.retryAt = time.Now().Add(delay)
		s.c.stats.Resends++
	}
}

// advance commits the acknowledged batches at the head of the window, in
// order, so an offset never passes a line that is not acknowledged.
func (s *session) advance() {
	for len(s.queue) > 0 && s.queue[0].acked {
		p := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		for _, cm := range p.commits {
			s.c.commit.Commit(cm.file, cm.end, cm.final)
		}
	}
}

// jitter returns the next backoff delay with full jitter and doubles it.
func (s *session) jitter() time.Duration {
	d := s.backoff
	s.backoff = min(2*s.backoff, s.c.cfg.BackoffMax)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

func (s *session) connect(connCtx context.Context) {
	ctx, cancel := context.WithCancel(connCtx)
	var opts []grpc.CallOption
	if s.c.cfg.Compression == "gzip" {
		opts = append(opts, grpc.UseCompressor(gzip.Name))
	}
	st, err := ferryv1.NewIngestClient(s.c.conn).Stream(ctx, opts...)
	if err != nil {
		cancel()
		d := s.jitter()
		s.c.log.Warn("cannot open stream to aggregator", "address", s.c.cfg.Address, "err", err, "retry_in", d)
		s.reconnect = time.Now().Add(d)
		return
	}
	s.streamID++
	s.stream, s.cancel = st, cancel
	s.c.connected.Store(true)
	if s.c.stats.Reconnects > 0 || s.streamID > 1 {
		s.c.log.Info("stream to aggregator open", "address", s.c.cfg.Address, "resending", len(s.queue))
	}
	s.c.stats.Reconnects++
	for _, p := range s.queue {
		p.sent = false
	}
	id := s.streamID
	go func() {
		for {
			a, err := st.Recv()
			select {
			case s.acks <- ackOrErr{ack: a, err: err, stream: id}:
			case <-s.done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
}

func (s *session) brokenStream() {
	s.closeStream()
	d := s.jitter()
	s.reconnect = time.Now().Add(d)
	for _, p := range s.queue {
		p.sent = false
	}
}

func (s *session) closeStream() {
	if s.stream == nil {
		return
	}
	s.cancel()
	s.stream, s.cancel = nil, nil
	s.c.connected.Store(false)
	// Move the stream id on so acks of the old stream are ignored.
	s.streamID++
}
