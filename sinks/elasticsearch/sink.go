package elasticsearch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	es "github.com/elastic/go-elasticsearch/v8"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/sinks"
)

// Sink writes batches into Elasticsearch data streams. It is safe for
// concurrent use. See the package documentation for what happens per item.
type Sink struct {
	cfg    Config
	log    *slog.Logger
	client *es.Client
	tr     *http.Transport

	in  chan handoff  // to the flusher
	sem chan struct{} // bulk requests in flight
	// wake tells the flusher to look again whether to send what it holds
	// (see run): a request slot was freed, or a Write left without
	// handing over items.
	wake chan struct{}
	// preparing counts the Writes between entering and handing their
	// items to the flusher, which takes them off as it receives the items;
	// handed counts the Writes whose items it received (for tests).
	preparing, handed atomic.Int64

	bg     context.Context // background work; canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // flusher, senders

	mu     sync.Mutex
	closed bool
	active sync.WaitGroup // Writes in progress

	setupSem  chan struct{} // one Setup at a time
	setupDone bool
	tmpl      templateState

	// outage logs failures at a steady cadence, and the recovery.
	outage *outage
	// streams: which data streams Ferry's index templates govern.
	streams streamChecks
	// items counts bulk items by result (see Items).
	items itemCounters
	// bodies are bulk request bodies to reuse (see bulk).
	bodies bodyPool
	// reqTimeout bounds one request (requestTimeout; tests shorten it);
	// a bulk unanswered for slowAfter is warned about before that.
	reqTimeout, slowAfter time.Duration
}

var _ sinks.Sink = (*Sink)(nil)

// New validates cfg, builds the client and starts the background flusher.
// It does not contact Elasticsearch.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	client, tr, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	log = log.With("sink", "elasticsearch")
	s := &Sink{
		cfg:        cfg,
		log:        log,
		outage:     newOutage(log),
		reqTimeout: requestTimeout,
		slowAfter:  slowAfter,
		client:     client,
		tr:         tr,
		in:         make(chan handoff, 16),
		wake:       make(chan struct{}, 1),
		sem:        make(chan struct{}, cfg.MaxConcurrentRequests),
		bg:         bg,
		cancel:     cancel,
		setupSem:   make(chan struct{}, 1),
	}
	s.wg.Add(1)
	go s.run()
	return s, nil
}

// Write indexes the events of b and blocks until each is delivered,
// dead-lettered or given up on, or until ctx ends (see sinks.Sink).
func (s *Sink) Write(ctx context.Context, b *event.Batch) (sinks.Result, error) {
	if b == nil || len(b.Events) == 0 {
		return sinks.Result{}, nil
	}
	if !s.enter() {
		return sinks.Result{}, errClosed
	}
	defer s.active.Done()
	// Until its items reach the flusher, this Write is preparing: the
	// flusher expects its items and holds the others for them (see run).
	s.preparing.Add(1)
	handed := false
	defer func() {
		if !handed {
			s.preparing.Add(-1)
			s.poke()
		}
	}()
	if err := s.ensureSetup(ctx); err != nil {
		return sinks.Result{}, err
	}
	w := newWaiter(ctx, len(b.Events))
	wb := getWriteBufs()
	items := s.admit(ctx, wb.build(w, b, time.Now(), s.TimeSeries()))
	if len(items) == 0 {
		wb.unref()
		return w.result(), nil // every event refused: its data stream is in conflict
	}
	select {
	case s.in <- handoff{items: items, write: true}:
		handed = true // the flusher takes it off preparing
	case <-ctx.Done():
		return w.finish(ctx.Err())
	case <-s.bg.Done():
		return w.finish(errClosed)
	}
	select {
	case <-w.done:
		wb.unref() // every item resolved: only request bodies may still use them
		return w.result(), nil
	case <-ctx.Done():
		return w.finish(ctx.Err())
	case <-s.bg.Done():
		return w.finish(errClosed)
	}
}

// buildItems renders every event's bulk lines (action line and document)
// into one buffer, sized from the first document, and every _id into one
// string. A data stream name is one string per run of events with the
// same data stream (usually the whole batch), so that items cost no
// allocation each.
func buildItems(w *waiter, b *event.Batch, now time.Time) []*item {
	wb := new(writeBufs)
	wb.refs.Store(1) // never given back: left to the garbage collector
	return wb.build(w, b, now, false)
}

// writeBufs are the buffers of one Write's items: their bulk lines, the
// items and the pointers to them. A Write takes them from writePool
// (getWriteBufs) and gives them back (unref) once every one of its items
// is resolved (its waiter is done): no request, retry or dead-letter item
// refers to them any more then (an item is resolved only after the request
// that carried it was answered; a dead-letter item copies the document).
// A request body sends lines from these buffers (see setBulkBody) and
// holds a reference to them until the transport is done with it, which may
// be after the answer: the buffers go back to the pool when the last
// reference goes. A Write that returns before its items are resolved (its
// context ended, the sink closed) keeps its reference: the buffers are
// left to the garbage collector, as items of it may still be on their way.
type writeBufs struct {
	lines []byte
	ids   []byte
	ends  []int
	items []item
	ptrs  []*item
	// refs: the Write's own reference, and one per request body that
	// sends lines from lines and is not released yet.
	refs atomic.Int32
}

// writePool holds writeBufs to reuse: a Write's lines are hundreds of KiB,
// whose allocation the runtime clears first.
var writePool = sync.Pool{New: func() any { return new(writeBufs) }}

// maxPooledLines: lines of a larger batch are not kept.
const maxPooledLines = 16 << 20

// getWriteBufs returns buffers from writePool, with the caller's reference.
func getWriteBufs() *writeBufs {
	wb := writePool.Get().(*writeBufs)
	wb.refs.Store(1)
	return wb
}

// ref takes a reference to wb for a request body.
func (wb *writeBufs) ref() { wb.refs.Add(1) }

// unref drops a reference; the last one returns wb to writePool.
func (wb *writeBufs) unref() {
	if wb.refs.Add(-1) == 0 {
		wb.release()
	}
}

// release returns wb to writePool, dropping what its items pointed to.
func (wb *writeBufs) release() {
	clear(wb.items)
	clear(wb.ptrs)
	if cap(wb.lines) > maxPooledLines {
		wb.lines = nil
	}
	writePool.Put(wb)
}

// build is buildItems into wb's buffers. With noMetricIDs (the cluster
// makes time-series data streams, which refuse a given _id) metric events
// are sent without _id: Elasticsearch derives it from the dimensions and
// @timestamp, as deterministic as Ferry's own.
func (wb *writeBufs) build(w *waiter, b *event.Batch, now time.Time, noMetricIDs bool) []*item {
	n := len(b.Events)
	idBuf := slices.Grow(wb.ids[:0], n*base64IDLen)
	for _, ev := range b.Events {
		idBuf = event.AppendIDString(idBuf, ev.GetId())
	}
	wb.ids = idBuf
	ids := string(idBuf) // a copy: ids outlive the Write in errors and logs
	if cap(wb.items) < n {
		wb.items = make([]item, n)
		wb.ptrs = make([]*item, n)
		wb.ends = make([]int, n)
	}
	items, ptrs, ends := wb.items[:n], wb.ptrs[:n], wb.ends[:n]
	buf := wb.lines[:0]
	enc := event.NewDocumentEncoder(b, now)
	var (
		stream string
		// action is the action line up to the _id, for stream.
		action []byte
	)
	idStart := 0
	for i, ev := range b.Events {
		if ds := enc.DataStream(i); ds != stream || action == nil {
			stream = ds
			action = appendJSONString(append(action[:0], `{"create":{"_index":`...), stream)
		}
		idEnd := idStart + (len(ev.GetId())*8+5)/6
		eventID := idBuf[idStart:idEnd]
		id := ids[idStart:idEnd]
		idStart = idEnd
		if noMetricIDs && ev.GetKind() == ferryv1.Kind_KIND_METRIC {
			id = ""
		}
		at := len(buf)
		buf = append(buf, action...)
		if id != "" {
			buf = append(buf, `,"_id":"`...)
			buf = append(buf, id...) // base64url: nothing to escape
			buf = append(buf, "\"}}\n"...)
		} else {
			buf = append(buf, "}}\n"...)
		}
		docAt := len(buf) - at
		buf = enc.AppendWithID(buf, i, eventID)
		buf = append(buf, '\n')
		if i == 0 {
			// The others are about as long: one allocation for all, with
			// room to spare.
			if want := len(buf)*n + len(buf)*n/4 + 512; cap(buf) < want {
				buf = append(make([]byte, 0, want), buf...)
			}
		}
		ends[i] = len(buf)
		items[i] = item{w: w, pos: i, index: stream, id: id, docAt: docAt, owner: wb, at: at}
	}
	wb.lines = buf
	for i := range items { // buf is where it stays now
		items[i].line = buf[items[i].at:ends[i]:ends[i]]
		ptrs[i] = &items[i]
	}
	return ptrs
}

// base64IDLen is the length of IDString of an id of event.IDLen bytes.
const base64IDLen = (event.IDLen*8 + 5) / 6

// admit returns the items that may be written: with SetupTemplates and
// ConflictError, the items of a data stream that another index template
// governs (see checkStream) are resolved as retryable failures instead.
func (s *Sink) admit(ctx context.Context, items []*item) []*item {
	if !s.cfg.SetupTemplates {
		return items
	}
	verdicts := map[string]error{}
	out := items[:0]
	for _, it := range items {
		err, ok := verdicts[it.index]
		if !ok {
			err = s.checkStream(ctx, it.index)
			verdicts[it.index] = err
		}
		if err != nil && s.cfg.TemplateConflict != ConflictWarn {
			it.w.resolve(it.pos, false, fmt.Errorf("elasticsearch: %w", err), true)
			continue
		}
		out = append(out, it)
	}
	return out
}

func (s *Sink) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.active.Add(1)
	return true
}

// ensureSetup runs Setup before the first bulk when SetupTemplates is set,
// retrying transient failures while ctx allows. Writing before the templates
// exist would create plain indices with guessed mappings.
func (s *Sink) ensureSetup(ctx context.Context) error {
	if !s.cfg.SetupTemplates {
		return nil
	}
	ctx, cancel := context.WithCancelCause(ctx) // Close ends the wait too
	defer cancel(nil)
	defer context.AfterFunc(s.bg, func() { cancel(errClosed) })()
	select {
	case s.setupSem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("elasticsearch: waiting for template setup: %w", context.Cause(ctx))
	}
	defer func() { <-s.setupSem }()
	var last error // the last failure not caused by ctx ending
	for attempt := 0; !s.setupDone; attempt++ {
		err := s.Setup(ctx)
		if err == nil {
			s.setupDone = true
			s.outage.succeeded()
			break
		}
		if sinks.IsPermanent(err) {
			return err
		}
		if ctx.Err() == nil || last == nil {
			last = err
		}
		if ctx.Err() == nil {
			s.outage.failed(ctx, "template setup", err, "attempt", attempt+1)
		}
		if !sleep(ctx, backoff(attempt, s.cfg.RetryInitial, s.cfg.RetryMax)) {
			return fmt.Errorf("elasticsearch: templates not installed: %w (last: %w)", context.Cause(ctx), last)
		}
	}
	return nil
}

// Close waits until the Writes in progress have their answers (or ctx
// ends), then stops the background work and releases the connections. It is
// safe to call twice.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	already := s.closed
	s.closed = true
	s.mu.Unlock()
	if already {
		return nil
	}
	idle := make(chan struct{})
	go func() { s.active.Wait(); close(idle) }()
	var err error
	select {
	case <-idle:
	case <-ctx.Done():
		err = fmt.Errorf("elasticsearch: close: writes still in progress: %w", ctx.Err())
	}
	s.cancel()
	s.wg.Wait()
	<-idle // Writes return at once when bg is canceled
	if cerr := s.client.Close(context.Background()); cerr != nil && !errors.Is(cerr, es.ErrAlreadyClosed) && err == nil {
		err = fmt.Errorf("elasticsearch: close client: %w", cerr)
	}
	s.tr.CloseIdleConnections()
	return err
}
