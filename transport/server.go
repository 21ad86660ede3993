package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	// Agents may compress their batches: the server must know the codec
	// whatever else the binary imports.
	_ "google.golang.org/grpc/encoding/gzip"

	"github.com/ferrylogs/ferry/pipeline/budget"
	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/proto/ferry/v1/wire"
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
	// MaxRecvMessageBytes is the gRPC server's limit of one received
	// message (grpc.MaxRecvMsgSize), announced to the agent in the
	// MaxRecvHeader response header as soon as a stream opens; 0 announces
	// nothing. Messages refused over it are counted and logged.
	MaxRecvMessageBytes int
	// MaxBytesInFlight bounds the memory of the batches received and not
	// yet written, over all the connections of the server. A batch counts
	// with the estimated size of its decoded form (its encoded bytes, the
	// string copy of them and the Go structs of its events, see
	// decodedBytes), or, for a sink that takes raw batches, of its bytes
	// alone (rawBytes), from after Recv, before
	// it goes to the sink, until the sink's write returned and its ack is
	// made (the ack's send does not hold it). A stream whose batch does not
	// fit waits, in arrival order, and reads nothing more meanwhile: HTTP/2
	// flow control pushes back on its agent. That waiting batch, one per
	// stream at most, is not counted. A batch larger than the whole budget
	// is admitted alone, once nothing else is held, so the bytes held never
	// exceed max(MaxBytesInFlight, the largest batch); the configuration
	// keeps the maximum message size below the budget anyway. The wait ends
	// with the stream, or with a RETRY ack once Drain gave up waiting.
	// Zero means 256 MiB.
	MaxBytesInFlight int64
	// AckTimeout bounds how long sending one ack may block because the
	// agent does not read its acks (HTTP/2 flow control): past it, the
	// handler ends the stream with DeadlineExceeded, and its goroutines
	// and batches are released at once; the agent sends its
	// unacknowledged batches again on a new stream. (gRPC queues the
	// status behind the acks not sent: the agent learns it when it reads,
	// and until then, or until the connection closes, gRPC keeps the
	// stream's unread data, at most its flow control window, and its
	// unsent acks, at most 64 KiB.) Zero means 30 seconds.
	AckTimeout time.Duration
	// Health, if set, says whether the server can take batches (nil) or why
	// not (a failed disk buffer). While it returns an error, a stream's next
	// batch is not taken: the stream ends with Unavailable and the reason,
	// and the agent sends its batches again on a new stream, which its
	// round-robin balancing opens on another replica when there is one.
	Health func() error
	// EventLatency, when set, observes for each event of a batch the sink
	// accepted the seconds from the event's time (time_unix_nano: the
	// line's own time, or when the agent read it) to that acceptance; a
	// time in the future observes 0, an event without a time nothing.
	EventLatency Observer
}

// Defaults of ServerConfig.
const (
	DefaultMaxBytesInFlight = 256 << 20
	DefaultAckTimeout       = 30 * time.Second
)

// errDrainCancelled ends a stream's wait for the budget once Drain gave up.
var errDrainCancelled = errors.New("drain cancelled the batches in flight")

// Server receives batches and acks each one after its sink accepted it.
//
// A batch is received as its wire bytes (see rawBatch) and decoded once,
// by proto/ferry/v1/wire, which checks it as proto.Unmarshal would. When
// the sink takes raw batches (a disk buffer: TakesRaw), the server does
// not even decode it: wire.Scan checks the bytes and the events as
// validate does, without building anything, and the sink gets the bytes;
// unless the sink would keep the decoded batch for its delivery
// (decodedKeeper): then the server decodes it, and the sink gets both.
type Server struct {
	ferryv1.UnimplementedIngestServer
	sink   sinks.Sink
	raw    bool          // sink takes raw batches
	keeper decodedKeeper // the sink, if raw and it may keep decoded batches
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

	budget *budget.Budget
	// running counts the goroutines of Stream calls, the handlers' own
	// included.
	running atomic.Int64

	BatchesAcked  atomic.Uint64
	EventsAcked   atomic.Uint64
	BatchesRetry  atomic.Uint64
	BatchesFailed atomic.Uint64
	// BudgetWaits counts the batches that waited for MaxBytesInFlight.
	BudgetWaits atomic.Uint64
	// AckTimeouts counts the streams ended because their agent did not
	// read its acks for AckTimeout.
	AckTimeouts atomic.Uint64
	// NotReadyStreams counts the streams ended because Health failed.
	NotReadyStreams atomic.Uint64
	// EventsDropped counts events the sinks refused for good (not
	// retryable, not dead-lettered), acknowledged with their batch.
	EventsDropped atomic.Uint64
	// OversizeMessages counts the messages refused as larger than the
	// server's limit (gRPC's ResourceExhausted on receive).
	OversizeMessages atomic.Uint64
	// Revoked counts the streams ended because their credentials were
	// revoked (see revoked).
	Revoked atomic.Uint64

	oversizeLog everyLog
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
	if cfg.MaxBytesInFlight <= 0 {
		cfg.MaxBytesInFlight = DefaultMaxBytesInFlight
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = DefaultAckTimeout
	}
	if err := usesRawCodec(); err != nil {
		panic("transport: " + err.Error())
	}
	rt, ok := sink.(rawTaker)
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{sink: sink, raw: ok && rt.TakesRaw(), cfg: cfg, log: log, ctx: ctx, cancel: cancel, budget: budget.New(cfg.MaxBytesInFlight),
		oversizeLog: everyLog{every: time.Minute}}
	if k, ok := sink.(decodedKeeper); ok && s.raw {
		s.keeper = k
	}
	return s
}

// rawTaker is a sink that takes batches undecoded (event.Batch.Raw, with
// Seq and Node only), such as a disk buffer (sinks/buffer), which stores
// the bytes as received and decodes them when it delivers.
type rawTaker interface{ TakesRaw() bool }

// decodedKeeper is a sink that takes raw batches and may keep a batch's
// decoded form for later, such as a disk buffer whose memory tail delivers
// it without decoding the bytes again: KeepsDecoded(n) reports whether it
// would now keep a batch of n encoded bytes. The server then decodes the
// batch, which checks it as Scan does, and hands Events and Pods with Raw:
// the bytes are walked once on their way to the sink rather than twice.
type decodedKeeper interface{ KeepsDecoded(encoded int) bool }

// BytesInFlight returns the bytes of the batches received and not yet
// written, as counted against MaxBytesInFlight.
func (s *Server) BytesInFlight() int64 { return s.budget.Used() }

// Drain stops accepting batches (new ones are answered with a retry, so the
// agent sends them again to another replica or after the restart) and waits
// for the batches being written, until ctx ends; then it cancels them, and
// the batches waiting for MaxBytesInFlight are answered with a retry. It
// does not wait for the acks to be sent: GracefulStop does.
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
//
// One goroutine receives; each admitted batch is written by a goroutine of
// its own (MaxBatchesInFlight per stream), which sends its ack. The handler
// returns once the receiving ended and every ack is sent, or as soon as an
// ack could not be sent for AckTimeout: returning is the only way to end
// a stream whose agent does not read, and so to unblock its Send.
func (s *Server) Stream(stream ferryv1.Ingest_StreamServer) error {
	s.running.Add(1)
	defer s.running.Add(-1)
	if s.cfg.MaxRecvMessageBytes > 0 {
		// Now, not with the first ack: the agent checks its settings
		// against it before it sends anything.
		_ = stream.SendHeader(metadata.Pairs(MaxRecvHeader, strconv.Itoa(s.cfg.MaxRecvMessageBytes)))
	}
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	stopDrainWatch := context.AfterFunc(s.ctx, func() { cancel(errDrainCancelled) })
	defer stopDrainWatch()
	st := &ingestStream{
		s:      s,
		stream: stream,
		ctx:    ctx,
		slots:  make(chan struct{}, s.cfg.MaxBatchesInFlight),
		stuck:  make(chan struct{}),
	}
	st.onStuck = func() {
		s.AckTimeouts.Add(1)
		node, _ := st.node.Load().(string)
		s.log.Warn("agent does not read acknowledgements; ending its stream", "node", node, "peer", peerAddr(stream.Context()), "ack_timeout", s.cfg.AckTimeout)
		cancel(st.stuckErr())
		close(st.stuck)
	}
	received := make(chan error, 1)
	s.running.Add(1)
	go func() {
		defer s.running.Add(-1)
		received <- st.receive()
	}()
	written := func() <-chan struct{} {
		done := make(chan struct{})
		s.running.Add(1)
		go func() {
			defer s.running.Add(-1)
			st.writers.Wait()
			close(done)
		}()
		return done
	}
	streamEnd := stream.Context().Done()
	for {
		select {
		case err := <-received:
			select {
			case <-written():
				return err
			case <-st.stuck:
			}
		case <-streamEnd:
			cause := revoked(stream.Context())
			if cause == nil {
				streamEnd = nil // the agent went: Recv fails next
				continue
			}
			// The agent's credentials were revoked: the batches being
			// written get their acks, no other is taken (receive sees
			// the cause), then the stream ends with it.
			s.Revoked.Add(1)
			st.closeWriters()
			select {
			case <-written():
				return cause
			case <-st.stuck:
			}
		case <-st.stuck:
		}
		break
	}
	// The goroutines still at work end once the stream does, right after
	// this returns: Send and Recv fail, and the writes only hold the
	// budget until they return.
	return st.stuckErr()
}

// revoked returns the cause with which the stream's context was cancelled
// if it is a gRPC status: an interceptor (tlsconf's token and certificate
// checks) ended the stream because the agent's credentials no longer pass.
// The handler answers it by taking no more batches, acknowledging those
// being written, and ending the stream with that status.
func revoked(ctx context.Context) error {
	if ctx.Err() == nil {
		return nil
	}
	cause := context.Cause(ctx)
	if _, ok := status.FromError(cause); !ok {
		return nil
	}
	return cause
}

// ingestStream is the state of one Stream call.
type ingestStream struct {
	s      *Server
	stream ferryv1.Ingest_StreamServer
	// ctx ends with the stream, when an ack is stuck (cause: stuckErr) and
	// when Drain gives up (cause: errDrainCancelled).
	ctx     context.Context
	slots   chan struct{} // MaxBatchesInFlight
	writers sync.WaitGroup
	node    atomic.Value // string: the node of the last batch, for logs

	sendMu sync.Mutex
	stuck  chan struct{} // closed when an ack could not be sent for AckTimeout

	// writersMu orders writers.Add against a Wait while receive still
	// runs (credentials revoked): once closed, no writer starts.
	writersMu sync.Mutex
	closed    bool
	stuckOnce sync.Once
	onStuck   func()
}

// addWriter registers a batch write about to start; false once
// closeWriters was called.
func (st *ingestStream) addWriter() bool {
	st.writersMu.Lock()
	defer st.writersMu.Unlock()
	if st.closed {
		return false
	}
	st.writers.Add(1)
	return true
}

// closeWriters lets no more writes start, so that writers.Wait may run
// while receive does.
func (st *ingestStream) closeWriters() {
	st.writersMu.Lock()
	st.closed = true
	st.writersMu.Unlock()
}

func (st *ingestStream) stuckErr() error {
	return status.Errorf(codes.DeadlineExceeded, "agent does not read acknowledgements: an ack could not be sent for %v", st.s.cfg.AckTimeout)
}

// send sends an ack; if that blocks for AckTimeout, the stream ends.
func (st *ingestStream) send(a *ferryv1.Ack) {
	st.sendMu.Lock()
	defer st.sendMu.Unlock()
	select {
	case <-st.stuck:
		return // the stream is ending
	default:
	}
	t := time.AfterFunc(st.s.cfg.AckTimeout, func() { st.stuckOnce.Do(st.onStuck) })
	err := st.stream.Send(a)
	t.Stop()
	if err != nil {
		st.s.log.Debug("cannot send ack; the agent will re-send", "seq", a.Seq, "err", err)
	}
}

// receive reads and dispatches batches until the stream ends.
func (st *ingestStream) receive() error {
	s := st.s
	for {
		var raw rawBatch
		err := st.stream.RecvMsg(&raw)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if status.Code(err) == codes.ResourceExhausted {
				s.noteOversize(st, err)
			}
			return err
		}
		if err := revoked(st.stream.Context()); err != nil {
			return err // not written: the agent sends it again once let in
		}
		b, err := s.decode(raw)
		if err != nil {
			// What gRPC answered when it decoded batches itself: the
			// stream ends, the batch is not acknowledged.
			return status.Errorf(codes.Internal, "grpc: failed to unmarshal the received message: %v", err)
		}
		if prev, _ := st.node.Load().(string); prev != b.batch.Node {
			// A copy: a decoded node name is a substring of its whole
			// batch, which the stream would keep alive while idle.
			st.node.Store(strings.Clone(b.batch.Node))
		}
		if s.cfg.Health != nil {
			if herr := s.cfg.Health(); herr != nil {
				s.NotReadyStreams.Add(1)
				s.log.Warn("not ready: ending an agent's stream so that it goes to another replica", "node", b.batch.Node, "reason", herr)
				return status.Errorf(codes.Unavailable, "aggregator not ready: %v", herr)
			}
		}
		if !s.Ready() {
			s.retryDraining(b.batch.Seq, st.send)
			continue
		}
		if err := b.invalid; err != nil {
			s.BatchesFailed.Add(1)
			s.log.Warn("rejecting malformed batch", "node", b.batch.Node, "seq", b.batch.Seq, "err", err)
			st.send(&ferryv1.Ack{Seq: b.batch.Seq, Code: ferryv1.Ack_CODE_PERMANENT, Message: ackMessage(err.Error())})
			continue
		}
		select {
		case st.slots <- struct{}{}:
		case <-st.ctx.Done():
			if errors.Is(context.Cause(st.ctx), errDrainCancelled) {
				s.retryDraining(b.batch.Seq, st.send)
				continue
			}
			return context.Cause(st.ctx)
		}
		size := b.size
		if !s.budget.TryAcquire(size) {
			s.BudgetWaits.Add(1)
			if err := s.budget.Acquire(st.ctx, size); err != nil {
				<-st.slots
				if errors.Is(err, errDrainCancelled) {
					s.retryDraining(b.batch.Seq, st.send)
					continue
				}
				return err
			}
		}
		if !st.addWriter() {
			s.budget.Release(size)
			<-st.slots
			return revoked(st.stream.Context())
		}
		if !s.startWrite() {
			st.writers.Done()
			s.budget.Release(size)
			<-st.slots
			s.retryDraining(b.batch.Seq, st.send)
			continue
		}
		s.running.Add(1)
		go func() {
			defer func() { <-st.slots; st.writers.Done(); s.running.Add(-1) }()
			a := s.write(b)
			if s.raw && b.batch.Events == nil {
				// Scanned, not decoded: nothing refers to its bytes
				// once Write returned (a sink that keeps Raw copies it).
				receivedPool.put(b.batch.Raw)
			}
			b = nil // the batch is garbage from here on
			s.budget.Release(size)
			s.inflight.Done()
			st.send(a)
		}()
	}
}

// received is a batch taken from a stream.
type received struct {
	batch *event.Batch // what the sink gets: Raw set, decoded or not (see Server)
	// events counts the batch's events; times holds their times, in
	// order, when the events are not decoded and EventLatency is set.
	events int
	times  []int64
	// invalid is why validate refused the batch, nil if it did not.
	invalid error
	// size is what the batch counts against MaxBytesInFlight.
	size int64
}

// decode turns the bytes of a batch into a received batch: decoded (or,
// for a sink that takes raw batches, only checked) and validated. An error
// means the bytes are not a Batch that proto.Unmarshal accepts.
func (s *Server) decode(raw rawBatch) (*received, error) {
	if !s.raw || s.keeper != nil && s.keeper.KeepsDecoded(len(raw)) {
		decode := wire.Decode
		if s.raw {
			// Kept decoded by the disk buffer: typed fields left encoded,
			// as it delivers what it reads back, for sinks that read them
			// (package event) for less than their maps cost to build and
			// walk (an HAProxy request has 40).
			decode = wire.DecodeRawFields
		}
		b, err := decode(raw)
		if err != nil {
			return nil, err
		}
		return &received{
			batch:   &event.Batch{Node: b.Node, Seq: b.Seq, Events: b.Events, Pods: b.Pods, Raw: raw},
			events:  len(b.Events),
			invalid: s.validate(b),
			size:    decodedBytes(len(raw), b),
		}, nil
	}
	r := &received{}
	if s.cfg.EventLatency != nil {
		if n, _, err := wire.Count(raw); err == nil {
			r.times = make([]int64, 0, n)
		}
	}
	var invalid error
	sum, err := wire.Scan(raw, func(i int, e *ferryv1.Event) error {
		// Go on past an invalid event: bytes that do not decode end the
		// stream rather than get a permanent ack, as before.
		if invalid == nil {
			invalid = s.validateEvent(i, e)
		}
		if s.cfg.EventLatency != nil {
			r.times = append(r.times, e.TimeUnixNano)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.batch = &event.Batch{Node: sum.Node, Seq: sum.Seq, Raw: raw}
	r.events = sum.Events
	r.invalid = s.validateBatch(sum.Seq, sum.Node)
	if r.invalid == nil {
		r.invalid = invalid
	}
	r.size = rawBytes(len(raw), cap(r.times))
	return r, nil
}

func (s *Server) retryDraining(seq uint64, send func(*ferryv1.Ack)) {
	s.BatchesRetry.Add(1)
	send(&ferryv1.Ack{Seq: seq, Code: ferryv1.Ack_CODE_RETRY, Message: "aggregator is shutting down", RetryAfterMillis: s.cfg.RetryAfter.Milliseconds()})
}

// write hands one batch to the sink and turns the outcome into an ack.
func (s *Server) write(r *received) *ferryv1.Ack {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.WriteTimeout)
	defer cancel()
	b := r.batch
	res, err := s.sink.Write(ctx, b)
	switch {
	case err != nil && sinks.IsPermanent(err):
		s.BatchesFailed.Add(1)
		s.log.Error("sink refused a batch for good", "node", b.Node, "seq", b.Seq, "err", err)
		return &ferryv1.Ack{Seq: b.Seq, Code: ferryv1.Ack_CODE_PERMANENT, Message: ackMessage(err.Error())}
	case err != nil:
		s.BatchesRetry.Add(1)
		s.log.Warn("sink write failed; agent will retry", "node", b.Node, "seq", b.Seq, "err", err)
		return &ferryv1.Ack{Seq: b.Seq, Code: ferryv1.Ack_CODE_RETRY, Message: ackMessage(err.Error()), RetryAfterMillis: s.cfg.RetryAfter.Milliseconds()}
	case !res.OK() && !res.Retryable():
		// Only events refused for good: a re-send cannot help, and a retry
		// would hold up this agent for ever. Drop them, loudly.
		s.EventsDropped.Add(uint64(len(res.Failed)))
		s.log.Error("events refused for good by the sinks; dropped, the rest of the batch is written", "node", b.Node, "seq", b.Seq,
			"dropped", len(res.Failed), "first", res.Failed[0].Error())
	case !res.OK():
		s.BatchesRetry.Add(1)
		s.log.Warn("some events not written; agent will retry the batch", "node", b.Node, "seq", b.Seq, "failed", len(res.Failed), "first", res.Failed[0].Error())
		return &ferryv1.Ack{Seq: b.Seq, Code: ferryv1.Ack_CODE_RETRY, Message: ackMessage(fmt.Sprintf("%d events not written: %v", len(res.Failed), res.Failed[0])), RetryAfterMillis: s.cfg.RetryAfter.Milliseconds()}
	}
	s.BatchesAcked.Add(1)
	s.EventsAcked.Add(uint64(r.events))
	if o := s.cfg.EventLatency; o != nil {
		observeLatencies(o, time.Now().UnixNano(), r.times, b.Events)
	}
	return &ferryv1.Ack{Seq: b.Seq, Code: ferryv1.Ack_CODE_OK}
}

// ManyObserver takes a batch of observations at once (ops.BatchHistogram):
// an EventLatency that is one gets each batch's latencies in one call.
type ManyObserver interface {
	ObserveMany([]float64)
}

// latencies holds the slices observeLatencies fills.
var latencies = sync.Pool{New: func() any { return new([]float64) }}

// observeLatencies observes, for each event time (times, or the events'
// own) that is set, the seconds from it to now.
func observeLatencies(o Observer, now int64, times []int64, events []*ferryv1.Event) {
	p := latencies.Get().(*[]float64)
	vs := (*p)[:0]
	for _, t := range times {
		if t > 0 {
			vs = append(vs, float64(max(now-t, 0))/1e9)
		}
	}
	for _, e := range events {
		if t := e.GetTimeUnixNano(); t > 0 {
			vs = append(vs, float64(max(now-t, 0))/1e9)
		}
	}
	if m, ok := o.(ManyObserver); ok {
		m.ObserveMany(vs)
	} else {
		for _, v := range vs {
			o.Observe(v)
		}
	}
	*p = vs
	latencies.Put(p)
}

// maxAckMessage bounds the reason sent with an ack: a sink's error can
// quote a whole document, and an ack must stay far below the agent's
// receive limit.
const maxAckMessage = 1 << 10

// ackMessage returns msg cut to maxAckMessage bytes, at a character
// boundary, marked when cut.
func ackMessage(msg string) string {
	if len(msg) <= maxAckMessage {
		return msg
	}
	cut := maxAckMessage
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "…"
}

// validate checks what the aggregator relies on. A batch failing it is
// malformed and will never be accepted.
func (s *Server) validate(b *ferryv1.Batch) error {
	if err := s.validateBatch(b.Seq, b.Node); err != nil {
		return err
	}
	for i, e := range b.Events {
		if err := s.validateEvent(i, e); err != nil {
			return err
		}
	}
	return nil
}

// validateBatch is validate's check of the batch itself.
func (s *Server) validateBatch(seq uint64, node string) error {
	if seq == 0 {
		return errors.New("batch without sequence number")
	}
	if node == "" {
		return errors.New("batch without node name")
	}
	return nil
}

// validateEvent is validate's check of event i; it reads only the
// event's id and message (what wire.Scan sets).
func (s *Server) validateEvent(i int, e *ferryv1.Event) error {
	if e == nil {
		return fmt.Errorf("event %d: missing", i)
	}
	if len(e.Id) != event.IDLen {
		return fmt.Errorf("event %d: id of %d bytes, want %d", i, len(e.Id), event.IDLen)
	}
	if len(e.Message) > s.cfg.MaxMessageBytes {
		return fmt.Errorf("event %d: message of %d bytes exceeds %d", i, len(e.Message), s.cfg.MaxMessageBytes)
	}
	return nil
}
