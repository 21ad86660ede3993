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
	"unsafe"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/ferrylogs/ferry/pipeline/event"
	"github.com/ferrylogs/ferry/pipeline/tail"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// ClientConfig configures the agent's client.
type ClientConfig struct {
	// Address is host:port or a gRPC target such as dns:///name:port (a
	// name resolving to every replica); Addresses, when given, is a fixed
	// list of replicas instead. Streams are spread round-robin over what
	// resolves, and a stream broken by one replica reopens on another.
	Address        string
	Addresses      []string
	Node           string
	Compression    string // "none" or "gzip"
	MaxInflight    int    // sealed batches not yet acknowledged, at most
	BatchMaxEvents int
	// BatchMaxBytes bounds the encoded size of a batch (estimated: messages
	// plus per-event metadata), so that it stays below the aggregator's
	// maximum message size. A single event larger than this is sent alone.
	BatchMaxBytes   int
	BatchTimeout    time.Duration
	BackoffInitial  time.Duration
	BackoffMax      time.Duration
	ShutdownTimeout time.Duration
	DialOptions     []grpc.DialOption
	// MaxLineBytes is max_line_bytes of each input, by input name. When a
	// stream opens, the client compares it (and BatchMaxBytes) with the
	// limit the aggregator announces (MaxRecvHeader) and warns, once per
	// announced limit, about every setting that can make a message the
	// aggregator would refuse.
	MaxLineBytes map[string]int
	// Parsers refine the events of an input, by input name, as they are
	// copied into a batch (see Parser); inputs without one ship lines as
	// they are.
	Parsers map[string]Parser
	// ReleaseFields, by input name, takes back the fields of an event the
	// input's Parser refined once the event's batch is acknowledged and
	// nothing refers to them any more, for the parser to reuse the map
	// (see parse.HAProxyParser.Release). Only for a parser that gives
	// every event a map of its own.
	ReleaseFields map[string]func(map[string]*ferryv1.Value)
	// FieldAppenders, by input name, are the fast form of the input's
	// Parser (see FieldAppender): an event it takes carries the fields it
	// adds encoded, with no map of its own. An input with one must have a
	// Parser too, for the events it leaves.
	FieldAppenders map[string]FieldAppender
	// Pods, when set, gives the Kubernetes metadata of the pod of each
	// chunk of a container file: every batch carries each pod of its
	// events once (Batch.pods), and an event whose file path gave no pod
	// uid gets the pod's. Nil: events carry their file-name coordinates
	// only.
	Pods PodMeta
	// AckLatency, when set, observes the seconds from sending a batch to
	// its OK acknowledgement (a prometheus.Histogram fits).
	AckLatency Observer
}

// Observer takes one observation (a prometheus.Observer fits).
type Observer interface {
	Observe(float64)
}

// PodMeta gives the Kubernetes metadata of a pod (see pipeline/kube).
type PodMeta interface {
	// Pod returns the metadata of the pod of the file coordinates k, or
	// nil when there is none. It may block for a bounded time (a pod not
	// known yet) and returns at once when ctx ends. The Pod returned is
	// shared and never modified.
	Pod(ctx context.Context, k *ferryv1.Kubernetes) *ferryv1.Pod
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
	serverMax atomic.Int64 // the limit the aggregator announced last; 0: none
	warnedMax atomic.Int64 // the announced limit last checked
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
		"ferry_agent_batches_in_flight":      s.BatchesInFlight,
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
	Resends         uint64 // batches sent again: after a retry ack or on a new stream
	Reconnects      uint64 // streams opened after the first one
	// BatchesInFlight is a gauge: batches sealed and not acknowledged yet
	// (at most MaxInflight).
	BatchesInFlight uint64
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
	target := cfg.Address
	if len(cfg.Addresses) > 0 {
		b, err := newStaticBuilder(cfg.Addresses)
		if err != nil {
			return nil, err
		}
		target = staticScheme + ":///aggregators"
		opts = append(opts, grpc.WithResolvers(b))
	}
	opts = append(opts, cfg.DialOptions...)
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("aggregator address %q: %w", target, err)
	}
	return &Client{cfg: cfg, commit: commit, log: log, conn: conn}, nil
}

// Close releases the connection.
func (c *Client) Close() error { return c.conn.Close() }

// pending is a sealed batch waiting for its ack.
type pending struct {
	msg  *ferryv1.Batch
	size int // the builder's estimate of its encoded size
	// extra holds the encoded fields of the events a FieldAppender
	// refined (see wire.MarshalBatchExtra), nil when there are none.
	extra   [][]byte
	b       *builder // owns the memory of msg; reused once p is committed
	commits []commit
	events  int
	acked   bool
	sent    bool // on the current stream
	sends   int  // times sent, on any stream
	sentAt  time.Time
	retryAt time.Time
}

// wireMsg is what is sent for p: its batch, with the encoded fields of
// its events when it has some, and its estimated size, for rawCodec to
// encode it in one pass into a buffer of that size.
func (p *pending) wireMsg() any {
	return &batchExtra{Batch: p.msg, extra: p.extra, hint: p.size}
}

type commit struct {
	file  *tail.File
	end   int64
	final bool
	done  func() // a Sample's Done (file is nil then)
}

// builder turns chunks into one wire batch. It copies every message into
// its own arena, so a chunk is released as soon as its last event is copied.
// A chunk larger than what is left of a batch is split: its first events
// close this batch, the rest start the next one, and its offset is committed
// with the batch that holds its last event.
type builder struct {
	maxEv, maxBytes int
	events          []ferryv1.Event
	sources         []ferryv1.Source
	ptrs            []*ferryv1.Event
	arena           []byte
	ids             []byte
	idh             event.IDHasher
	commits         []commit
	n               int  // events
	bytes           int  // estimated encoded size
	full            bool // the next event does not fit
	opened          time.Time
	parsers         map[string]Parser
	releasers       map[string]func(map[string]*ferryv1.Value)
	appenders       map[string]FieldAppender
	// The fields FieldAppenders encoded (an arena, as arena), and each
	// event's part of it, by event index (shorter than ptrs when the last
	// events have none).
	extra  []byte
	extras [][]byte
	// Whether the last fields map checked holds a key the appender sets.
	clashFields   unsafe.Pointer
	clashAppender FieldAppender
	clash         bool
	// The fields maps of refined events, to give back at reset.
	owned []ownedFields

	// The pods of the events, each once (wire form, see wirePod), and
	// their uids.
	pods    []*ferryv1.Pod
	podUIDs map[string]struct{}
}

type ownedFields struct {
	release func(map[string]*ferryv1.Value)
	fields  map[string]*ferryv1.Value
}

// Preallocation caps: larger batches grow on demand.
const (
	preallocEvents = 1 << 14
	preallocBytes  = 256 << 10
)

func newBuilder(maxEvents, maxBytes int) *builder {
	n := min(maxEvents, preallocEvents)
	return &builder{
		maxEv:    maxEvents,
		maxBytes: maxBytes,
		events:   make([]ferryv1.Event, n),
		sources:  make([]ferryv1.Source, n),
		ptrs:     make([]*ferryv1.Event, 0, n),
		arena:    make([]byte, 0, min(maxBytes, preallocBytes)),
		ids:      make([]byte, 0, n*event.IDLen),
	}
}

// reset empties b for reuse. The batch it built must be acknowledged and
// never sent again.
func (b *builder) reset() {
	for i := range min(b.n, len(b.events)) {
		// Drop references to files that may be long gone.
		b.events[i].Kubernetes, b.events[i].Fields = nil, nil
		b.sources[i] = ferryv1.Source{}
	}
	clear(b.ptrs)
	b.ptrs = b.ptrs[:0]
	for _, o := range b.owned {
		o.release(o.fields)
	}
	clear(b.owned)
	b.owned = b.owned[:0]
	b.arena = b.arena[:0]
	b.ids = b.ids[:0]
	b.extra = b.extra[:0]
	clear(b.extras)
	b.extras = b.extras[:0]
	clear(b.commits)
	b.commits = b.commits[:0]
	clear(b.pods)
	b.pods = b.pods[:0]
	clear(b.podUIDs)
	b.n, b.bytes, b.full = 0, 0, false
}

func (b *builder) empty() bool { return b.n == 0 && len(b.commits) == 0 }

// ready reports whether b should be sealed now, timeout aside.
func (b *builder) ready() bool { return b.full || b.n >= b.maxEv || b.bytes >= b.maxBytes }

// overhead estimates the encoded size of an event of f without its message.
func overhead(f *tail.File) int { return overheadKube(f, f.Kube) }

// overheadKube is overhead for an event with the Kubernetes coordinates
// kube.
func overheadKube(f *tail.File, kube *ferryv1.Kubernetes) int {
	tmpl := ferryv1.Event{
		TimeUnixNano: 1,
		Stream:       ferryv1.StreamName_STREAM_STDERR,
		Source:       &ferryv1.Source{Path: f.WirePath(), Offset: 1 << 40, Input: f.Input, FileId: f.ID},
		Kubernetes:   kube,
		Fields:       f.Fields,
		Flags:        0xff,
		Kind:         ferryv1.Kind_KIND_LOG,
	}
	// id (tag, length, 16 bytes), message tag and length, the event's own
	// tag and length in the batch.
	return proto.Size(&tmpl) + 2 + event.IDLen + 1 + 5 + 1 + 5
}

// add copies the events of c from index from on, as many as fit, and
// returns the index of the first event not copied. Once every event is in,
// it records the chunk's offsets for commit. An empty batch always takes
// at least one event. The events carry the coordinates of the file.
func (b *builder) add(node string, c *tail.Chunk, from, ovh int) int {
	return b.addPod(node, c, from, ovh, c.File.Kube, nil)
}

// addPod is add for events with the coordinates kube, of the pod pod (nil:
// no metadata): the batch carries pod once, and its size counts when it
// joins.
func (b *builder) addPod(node string, c *tail.Chunk, from, ovh int, kube *ferryv1.Kubernetes, pod *wirePod) int {
	if b.empty() {
		b.opened = time.Now()
	}
	f := c.File
	parser := b.parsers[f.Input]
	var release func(map[string]*ferryv1.Value)
	var app FieldAppender
	if parser != nil {
		release = b.releasers[f.Input]
		if app = b.appenders[f.Input]; app != nil && b.clashes(f.Fields, app) {
			app = nil
		}
	}
	i := from
	for ; i < len(c.Recs) && !b.ready(); i++ {
		r := &c.Recs[i]
		msg := c.Message(r)
		size := ovh + len(msg) + len(r.OrigTime)
		if parser != nil {
			size += parsedSize(len(msg))
		}
		if b.n > 0 && b.bytes+size > b.maxBytes {
			b.full = true
			break
		}
		var ev *ferryv1.Event
		var src *ferryv1.Source
		if b.n < len(b.events) {
			ev, src = &b.events[b.n], &b.sources[b.n]
		} else {
			ev, src = new(ferryv1.Event), new(ferryv1.Source)
		}
		b.n++
		b.bytes += size
		idStart := len(b.ids)
		b.ids = b.idh.Append(b.ids, node, f.ID, r.Off)
		msgStart := len(b.arena)
		b.arena = append(b.arena, msg...)
		src.Path, src.Offset, src.Input, src.FileId = f.WirePath(), r.Off, f.Input, f.ID
		src.EndOffset, src.Lines = r.End, r.Lines // a multiline event's (else 0)
		// Full slice expressions: when an arena grows, earlier events keep
		// pointing into the old array, which stays valid.
		ev.Id = b.ids[idStart:len(b.ids):len(b.ids)]
		ev.TimeUnixNano = r.Time
		ev.Message = b.arena[msgStart:len(b.arena):len(b.arena)]
		ev.Stream = r.Stream
		ev.Source = src
		ev.Kubernetes = kube
		ev.Fields = f.Fields
		ev.Flags = r.Flags
		ev.OriginalTime = r.OrigTime
		ev.Kind = ferryv1.Kind_KIND_LOG
		b.ptrs = append(b.ptrs, ev)
		if parser != nil {
			if app != nil {
				start := len(b.extra)
				var ok bool
				if b.extra, ok = app.AppendFields(b.extra, ev, msg); ok {
					for len(b.extras) < len(b.ptrs)-1 {
						b.extras = append(b.extras, nil)
					}
					b.extras = append(b.extras, b.extra[start:len(b.extra):len(b.extra)])
					continue
				}
			}
			parser(ev, msg)
			if release != nil {
				b.owned = append(b.owned, ownedFields{release, ev.Fields})
			}
		}
	}
	if pod != nil && i > from {
		b.carry(pod)
	}
	if i == len(c.Recs) {
		b.commits = append(b.commits, commit{file: f, end: c.End, final: c.Final})
	}
	return i
}

// clashes reports whether fields holds a key app may set (then its
// events take the Parser). The answer for the last map is kept: a file's
// fields map does not change.
func (b *builder) clashes(fields map[string]*ferryv1.Value, app FieldAppender) bool {
	id := *(*unsafe.Pointer)(unsafe.Pointer(&fields))
	if id == b.clashFields && app == b.clashAppender {
		return b.clash
	}
	clash := false
	for k := range fields {
		if app.Sets(k) {
			clash = true
			break
		}
	}
	b.clashFields, b.clashAppender, b.clash = id, app, clash
	return clash
}

// carry makes the batch carry pod, once. Its size counts from then on,
// which may take the batch past maxBytes by one pod's metadata (a few
// KiB at most: the aggregator's limit leaves room for it).
func (b *builder) carry(pod *wirePod) {
	if _, ok := b.podUIDs[pod.uid]; ok {
		return
	}
	if b.podUIDs == nil {
		b.podUIDs = make(map[string]struct{})
	}
	b.podUIDs[pod.uid] = struct{}{}
	b.pods = append(b.pods, pod.msg)
	b.bytes += pod.size + 1 + 3 // tag and length
}

// wirePod is the metadata of a pod encoded once for every batch that
// carries it: msg is a Pod holding nothing but that encoding as unknown
// fields, which proto writes out as they are, so a batch neither sizes nor
// encodes the pod's maps again (they cost more than the events otherwise).
// The aggregator decodes an ordinary Pod.
type wirePod struct {
	uid  string
	msg  *ferryv1.Pod
	size int
}

func newWirePod(p *ferryv1.Pod) (*wirePod, error) {
	raw, err := proto.Marshal(p)
	if err != nil {
		return nil, err
	}
	w := &wirePod{uid: p.Uid, msg: &ferryv1.Pod{}, size: len(raw)}
	w.msg.ProtoReflect().SetUnknown(raw)
	return w, nil
}

func (b *builder) seal(node string, seq uint64) *pending {
	return &pending{
		msg:     &ferryv1.Batch{Seq: seq, Node: node, Events: b.ptrs, Pods: b.pods},
		extra:   b.extras,
		size:    b.bytes,
		b:       b,
		commits: b.commits,
		events:  b.n,
	}
}

// Run ships chunks from in until ctx ends. Then it stops reading, sends
// what it holds, and waits up to the shutdown timeout for outstanding acks;
// it returns an error if some batches stayed unacknowledged (their lines are
// read again at the next start). A closed in is treated as an input that
// has nothing more to send.
func (c *Client) Run(ctx context.Context, in <-chan *tail.Chunk) error {
	return c.RunWithSamples(ctx, in, nil)
}

// RunWithSamples is Run with a second source: metric samples (see
// samples.go), shipped in the same batches as the lines, in the order they
// come. A nil samples is none.
func (c *Client) RunWithSamples(ctx context.Context, in <-chan *tail.Chunk, samples <-chan *event.Sample) error {
	s := &session{c: c, in: in, samples: samples, acks: make(chan ackOrErr, 2*c.cfg.MaxInflight+8), done: make(chan struct{}), ctx: ctx}
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
	free    []*builder
	nextSeq uint64

	// The chunk being moved into batches, and its next event.
	pend   *tail.Chunk
	pendAt int
	// The metric sample being moved into batches, and its next event.
	samples <-chan *event.Sample
	pendS   *event.Sample
	pendSAt int
	// Estimated encoded size of an event of ovhFile with coordinates
	// ovhKube, without its message.
	ovhFile *tail.File
	ovhKube *ferryv1.Kubernetes
	ovh     int
	// ovhs remembers ovh by file: chunks of many files come interleaved
	// when each is written a little at a time, and sizing the template
	// costs more than the events of a small chunk.
	ovhs map[*tail.File]fileOverhead
	// The pod metadata of the chunk pend (metaChunk), and the coordinates
	// its events carry (the file's, with the pod's uid when the path gave
	// none).
	metaChunk *tail.Chunk
	pod       *wirePod
	kube      *ferryv1.Kubernetes
	wirePods  map[*ferryv1.Pod]*wirePod // by the metadata's (immutable) message

	ctx context.Context // of Run: ends a wait for pod metadata

	stream    grpc.BidiStreamingClient[ferryv1.Batch, ferryv1.Ack]
	streamID  int
	opened    int // streams opened
	cancel    context.CancelFunc
	backoff   time.Duration
	reconnect time.Time
}

func (s *session) run(ctx context.Context) error {
	cfg := s.c.cfg
	s.cur = s.newBuilder()
	s.nextSeq = 1
	s.backoff = cfg.BackoffInitial
	connCtx, stopConn := context.WithCancel(context.Background())
	defer stopConn()
	defer s.closeStream()
	defer s.releasePending()

	// The shutdown timeout runs from the moment ctx ends, even while this
	// loop is blocked in Send (the aggregator does not read) or in opening a
	// stream: when it expires, connCtx ends, which unblocks both.
	expired := make(chan struct{})
	var (
		expiryMu sync.Mutex
		expiry   *time.Timer
		returned bool
	)
	stopAfter := context.AfterFunc(ctx, func() {
		expiryMu.Lock()
		defer expiryMu.Unlock()
		if !returned {
			expiry = time.AfterFunc(cfg.ShutdownTimeout, func() { close(expired); stopConn() })
		}
	})
	defer func() {
		stopAfter()
		expiryMu.Lock()
		returned = true
		if expiry != nil {
			expiry.Stop()
		}
		expiryMu.Unlock()
	}()

	draining := false
	done := ctx.Done()
	var deadline <-chan struct{}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.fill(draining)
		if draining && len(s.queue) == 0 && s.cur.empty() && s.pend == nil && s.pendS == nil {
			return nil
		}
		if s.stream == nil && !time.Now().Before(s.reconnect) && (!draining || len(s.queue) > 0) {
			s.connect(connCtx)
			s.c.publish()
		}
		if s.stream != nil {
			s.sendDue()
		}
		if n := s.unacked(); n != s.c.stats.BatchesInFlight {
			s.c.stats.BatchesInFlight = n
			s.c.publish()
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
		var samples <-chan *event.Sample
		if !draining && s.pend == nil && s.pendS == nil && len(s.queue) < cfg.MaxInflight {
			in, samples = s.in, s.samples
		}
		select {
		case smp, ok := <-samples:
			if !ok {
				s.samples = nil
				continue
			}
			s.pendS, s.pendSAt = smp, 0
		case ch, ok := <-in:
			if !ok {
				s.c.log.Warn("input closed: nothing more to ship until shutdown")
				s.in = nil
				continue
			}
			s.pend, s.pendAt = ch, 0
		case <-timer.C:
			if !s.cur.empty() && !time.Now().Before(s.cur.opened.Add(cfg.BatchTimeout)) && len(s.queue) < cfg.MaxInflight {
				s.sealCurrent()
			}
		case a := <-s.acks:
			s.handle(a)
			s.c.publish()
		case <-done:
			draining, done, deadline = true, nil, expired
			s.c.log.Info("draining: waiting for outstanding acks", "batches", len(s.queue), "timeout", cfg.ShutdownTimeout)
		case <-deadline:
			batches, events := 0, 0
			for _, p := range s.queue {
				if !p.acked {
					batches++
					events += p.events
				}
			}
			if s.pend != nil {
				events += len(s.pend.Recs) - s.pendAt
			}
			if s.pendS != nil {
				events += len(s.pendS.Events) - s.pendSAt
			}
			return fmt.Errorf("shutdown timeout: %d events in %d batches not acknowledged (they are read again at the next start)", events+s.cur.n, batches)
		}
	}
}

// fill moves the pending chunk into batches and seals every full batch, as
// far as the window has room; when draining it also seals a batch that is
// not full.
func (s *session) fill(draining bool) {
	room := func() bool { return len(s.queue) < s.c.cfg.MaxInflight }
	for {
		if s.cur.ready() || (draining && s.pend == nil && !s.cur.empty()) {
			if !room() {
				return
			}
			s.sealCurrent()
		}
		if s.pend == nil {
			if s.pendS == nil {
				return
			}
			s.pendSAt = s.cur.addSample(s.pendS, s.pendSAt, s.samplePod)
			if s.pendSAt == len(s.pendS.Events) {
				s.pendS = nil
			}
			continue
		}
		c := s.pend
		if c != s.metaChunk {
			s.metaChunk = c
			s.kube, s.pod = s.podOf(c.File)
		}
		if c.File != s.ovhFile || s.kube != s.ovhKube {
			s.ovhFile, s.ovhKube, s.ovh = c.File, s.kube, s.overheadOf(c.File, s.kube)
		}
		s.pendAt = s.cur.addPod(s.c.cfg.Node, c, s.pendAt, s.ovh, s.kube, s.pod)
		if s.pendAt == len(c.Recs) {
			if c.Final {
				delete(s.ovhs, c.File)
			}
			s.pend = nil
			s.metaChunk = nil // chunks are pooled: the next one may be at the same address
			c.Release()
		}
	}
}

// fileOverhead is the estimated overhead of an event of a file with the
// coordinates kube.
type fileOverhead struct {
	kube *ferryv1.Kubernetes
	ovh  int
}

// maxOverheads bounds how many files' overheads a session remembers; past
// it they are forgotten and sized again as their chunks come.
const maxOverheads = 4096

// overheadOf returns overheadKube(f, kube), sized once per file and
// coordinates (a File and its fields do not change).
func (s *session) overheadOf(f *tail.File, kube *ferryv1.Kubernetes) int {
	if o, ok := s.ovhs[f]; ok && o.kube == kube {
		return o.ovh
	}
	if s.ovhs == nil || len(s.ovhs) >= maxOverheads {
		s.ovhs = make(map[*tail.File]fileOverhead)
	}
	ovh := overheadKube(f, kube)
	s.ovhs[f] = fileOverhead{kube: kube, ovh: ovh}
	return ovh
}

// podOf returns the coordinates the events of f carry and the metadata of
// their pod (nil: none), looked up once per chunk so that a change of the
// pod shows on its later lines. The coordinates are f's own unless the
// path gave no pod uid and the metadata has one.
func (s *session) podOf(f *tail.File) (*ferryv1.Kubernetes, *wirePod) {
	k := f.Kube
	if s.c.cfg.Pods == nil || k == nil {
		return k, nil
	}
	pod := s.c.cfg.Pods.Pod(s.ctx, k)
	if pod == nil || pod.Uid == "" {
		return k, nil
	}
	w := s.wire(pod)
	if w == nil {
		return k, nil
	}
	if k.PodUid != "" {
		return k, w
	}
	if s.kube != nil && s.ovhFile == f && s.kube.PodUid == pod.Uid {
		return s.kube, w // the copy made for the chunk before, same file
	}
	withUID := &ferryv1.Kubernetes{Namespace: k.Namespace, Pod: k.Pod, PodUid: pod.Uid, Container: k.Container, ContainerId: k.ContainerId}
	return withUID, w
}

// releasePending gives back a chunk taken from the input but not shipped.
func (s *session) releasePending() {
	if s.pend != nil {
		s.pend.Release()
		s.pend = nil
	}
}

func (s *session) newBuilder() *builder {
	if n := len(s.free); n > 0 {
		b := s.free[n-1]
		s.free = s.free[:n-1]
		return b
	}
	b := newBuilder(s.c.cfg.BatchMaxEvents, s.c.cfg.BatchMaxBytes)
	b.parsers = s.c.cfg.Parsers
	b.releasers = s.c.cfg.ReleaseFields
	b.appenders = s.c.cfg.FieldAppenders
	return b
}

// sealCurrent moves the batch being built into the window.
func (s *session) sealCurrent() {
	if s.cur.empty() {
		return
	}
	p := s.cur.seal(s.c.cfg.Node, s.nextSeq)
	s.nextSeq++
	s.cur = s.newBuilder()
	if p.events == 0 {
		// Only offsets to commit (e.g. the end of a drained file): no
		// need to send, but commit in order with the batches before it.
		p.acked = true
	}
	s.queue = append(s.queue, p)
	s.advance()
}

// unacked is the number of batches in the window not acknowledged yet.
func (s *session) unacked() uint64 {
	var n uint64
	for _, p := range s.queue {
		if !p.acked {
			n++
		}
	}
	return n
}

// sendDue sends every unsent, unacked batch whose retry time has come, in
// sequence order.
func (s *session) sendDue() {
	now := time.Now()
	for _, p := range s.queue {
		if p.acked || p.sent || now.Before(p.retryAt) {
			continue
		}
		if err := s.stream.SendMsg(p.wireMsg()); err != nil {
			s.c.log.Warn("send to aggregator failed", "err", err)
			s.brokenStream()
			return
		}
		p.sent = true
		p.sentAt = now
		if p.sends > 0 {
			s.c.stats.Resends++
		}
		p.sends++
	}
}

func (s *session) handle(a ackOrErr) {
	if a.stream != s.streamID {
		return // from a stream already given up
	}
	if a.err != nil {
		switch {
		case status.Code(a.err) == codes.ResourceExhausted:
			// The batches are kept and sent again: lines are not dropped
			// for a configuration mismatch, which the operator must fix.
			s.logRefusedBatch(a.err)
		case status.Code(a.err) == codes.Unauthenticated || status.Code(a.err) == codes.PermissionDenied:
			// A revoked token or certificate: retried with backoff, the
			// batches kept, until the operator lets this agent in again.
			s.c.log.Error("stream to aggregator refused: it does not accept this agent's credentials; check aggregator.bearer_token or bearer_token_file and the client certificate "+
				"against the aggregator's auth and tls.client_ca_file; retrying with backoff, unacknowledged lines are kept",
				"err", a.err, "unacknowledged_batches", len(s.queue))
		case !errors.Is(a.err, context.Canceled):
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
	if p == nil || p.acked || !p.sent {
		return
	}
	switch a.ack.GetCode() {
	case ferryv1.Ack_CODE_OK:
		p.acked = true
		s.backoff = s.c.cfg.BackoffInitial
		s.c.stats.BatchesAcked++
		s.c.stats.EventsAcked += uint64(p.events)
		if o := s.c.cfg.AckLatency; o != nil {
			o.Observe(time.Since(p.sentAt).Seconds())
		}
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
			if cm.done != nil {
				cm.done()
				continue
			}
			s.c.commit.Commit(cm.file, cm.end, cm.final)
		}
		// Acknowledged and committed: its memory serves the next batch.
		if len(s.free) <= s.c.cfg.MaxInflight {
			p.b.reset()
			s.free = append(s.free, p.b)
		}
	}
}

// jitter returns the next backoff delay, between half and all of it, and
// doubles it.
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
	if s.opened > 0 {
		s.c.stats.Reconnects++
		s.c.log.Info("stream to aggregator open again", "address", s.c.cfg.Address, "resending", len(s.queue))
	}
	s.opened++
	for _, p := range s.queue {
		p.sent = false
	}
	id := s.streamID
	go func() {
		// The aggregator sends its headers as the stream opens; an older
		// one with its first ack. Either way, before any ack is read.
		if md, err := st.Header(); err == nil {
			s.c.noteAnnounced(md)
		}
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
