// Package syslog is the agent's syslog input: it receives messages over
// UDP or TCP (RFC 3164 or RFC 5424; on TCP octet counting or newline
// framing, detected per connection), appends them to a local on-disk spool
// (pipeline/wal) before they count as read, and hands them on as chunks
// (tail.Chunk) that the shipper treats like the lines of a file: the spool
// is committed only once the aggregator has acknowledged them.
//
// What is guaranteed: a message is received once the spool append returns
// (fsynced); from then on an agent restart or an aggregator outage loses
// nothing, and a message sent again after a restart carries the same event
// id, which derives from its place in the spool (segment and byte offset),
// never from its text. What is not: UDP datagrams can be dropped by the
// kernel (a full socket buffer) or by the input when its queue in front of
// the spool is full (counted); TCP is acknowledged only by the kernel, so
// what sits in the socket buffers when the agent dies is lost, and while the
// spool is full the input stops reading TCP connections (the senders
// block: backpressure) and drops UDP datagrams (counted).
//
// Memory is bounded: messages wait in a queue of at most QueueBytes in
// front of the spool, and the spool is on disk (SpoolMaxBytes).
package syslog

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/ferrylogs/ferry/pipeline/budget"
	"github.com/ferrylogs/ferry/pipeline/parse"
	"github.com/ferrylogs/ferry/pipeline/tail"
	"github.com/ferrylogs/ferry/pipeline/wal"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// Config configures one syslog input.
type Config struct {
	Name   string // the input's name (ferry.input)
	Listen string // "udp://host:port" or "tcp://host:port"
	// Dir is the spool directory (the agent uses <state_dir>/spool/<name>).
	Dir string
	// MaxMessageBytes bounds a message; a longer one is cut and flagged
	// truncated (default 256 KiB).
	MaxMessageBytes int
	// SpoolMaxBytes bounds the spool on disk (default 256 MiB).
	SpoolMaxBytes int64
	// QueueBytes bounds the messages received and not yet in the spool
	// (default 4 MiB, at least one message).
	QueueBytes int64
	// Fields are sent with every event (shared, read-only).
	Fields map[string]*ferryv1.Value
	// Location reads RFC 3164 times, which have no zone (default Local).
	Location *time.Location
	// CommitInterval is how often acknowledged positions are committed to
	// the spool (default 200ms); a restart sends again, with the same
	// ids, what was acknowledged since.
	CommitInterval time.Duration
}

// Record packing: a spool record holds up to this many messages or bytes.
const (
	recordMaxMsgs  = 512
	recordMaxBytes = 1 << 20
	msgHeader      = 4 + 8 + 1 // length, receive time, flags
	segmentBytes   = 16 << 20
)

// Input is one running syslog input.
type Input struct {
	cfg  Config
	log  *slog.Logger
	spl  *wal.WAL
	file *tail.File

	udp *net.UDPConn
	tcp net.Listener

	queue  chan message
	budget *budget.Budget

	mu    sync.Mutex
	read  []wal.Pos // read, not yet committed, in order
	acked int64     // the last acknowledged chunk end; 0: none
	done  int64     // committed up to here

	connsMu sync.Mutex
	conns   map[net.Conn]struct{}

	received, dropped, truncated, spoolFull, bytes atomic.Uint64
}

type message struct {
	b     []byte
	t     int64
	flags uint8
}

const (
	fTruncated uint8 = 1
)

// Open opens the spool and binds the listener, so that a bad address or a
// busy port is an error at start.
func Open(cfg Config, log *slog.Logger) (*Input, error) {
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 256 << 10
	}
	if cfg.SpoolMaxBytes <= 0 {
		cfg.SpoolMaxBytes = 256 << 20
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = 4 << 20
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	if cfg.CommitInterval <= 0 {
		cfg.CommitInterval = 200 * time.Millisecond
	}
	network, addr, err := SplitListen(cfg.Listen)
	if err != nil {
		return nil, err
	}
	maxRec := int64(recordMaxBytes + cfg.MaxMessageBytes + msgHeader)
	spl, err := wal.Open(wal.Options{
		Dir:            cfg.Dir,
		SegmentBytes:   max(segmentBytes, maxRec),
		MaxBytes:       max(cfg.SpoolMaxBytes, 2*maxRec+64),
		MaxRecordBytes: maxRec,
		Sync:           wal.SyncAlways,
		Logger:         log,
	})
	if err != nil {
		return nil, fmt.Errorf("syslog input %s: spool: %w", cfg.Name, err)
	}
	id, err := spoolID(cfg.Dir)
	if err != nil {
		_ = spl.Close()
		return nil, fmt.Errorf("syslog input %s: %w", cfg.Name, err)
	}
	in := &Input{
		cfg: cfg, log: log.With("input", cfg.Name), spl: spl,
		file:   &tail.File{ID: "syslog:" + id, Input: cfg.Name, Fields: cfg.Fields},
		queue:  make(chan message, max(1024, cfg.QueueBytes/256)), // the budget bounds the bytes
		budget: budget.New(max(cfg.QueueBytes, int64(cfg.MaxMessageBytes))),
		conns:  map[net.Conn]struct{}{},
	}
	switch network {
	case "udp":
		ua, err := net.ResolveUDPAddr("udp", addr)
		if err == nil {
			in.udp, err = net.ListenUDP("udp", ua)
		}
		if err != nil {
			_ = spl.Close()
			return nil, fmt.Errorf("syslog input %s: listen %s: %w", cfg.Name, cfg.Listen, err)
		}
		_ = in.udp.SetReadBuffer(8 << 20) // best effort: capped by net.core.rmem_max
	case "tcp":
		if in.tcp, err = net.Listen("tcp", addr); err != nil {
			_ = spl.Close()
			return nil, fmt.Errorf("syslog input %s: listen %s: %w", cfg.Name, cfg.Listen, err)
		}
	}
	return in, nil
}

// SplitListen splits "udp://host:port" or "tcp://host:port".
func SplitListen(s string) (network, addr string, err error) {
	network, addr, ok := strings.Cut(s, "://")
	if !ok || (network != "udp" && network != "tcp") {
		return "", "", fmt.Errorf("listen %q: want udp://host:port or tcp://host:port", s)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", "", fmt.Errorf("listen %q: %w", s, err)
	}
	return network, addr, nil
}

// spoolID returns the random identity of the spool in dir, made when the
// spool is new: event ids derive from it and the position in the spool, so
// a spool made again from nothing never repeats the ids of an earlier one.
func spoolID(dir string) (string, error) {
	p := filepath.Join(dir, "spool.id")
	b, err := os.ReadFile(p)
	if err == nil && len(strings.TrimSpace(string(b))) == 32 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	var r [16]byte
	_, _ = rand.Read(r[:])
	id := hex.EncodeToString(r[:])
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o600); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", err
	}
	return id, nil
}

// Addr returns the address the input listens on.
func (in *Input) Addr() net.Addr {
	if in.udp != nil {
		return in.udp.LocalAddr()
	}
	return in.tcp.Addr()
}

// File returns the file the input's chunks belong to: Commit takes their
// ends.
func (in *Input) File() *tail.File { return in.file }

// Counters returns the input's counters by metric name (the agent sums
// them over its syslog inputs).
func (in *Input) Counters() map[string]uint64 {
	st := in.spl.Stats()
	return map[string]uint64{
		"ferry_agent_syslog_received_total":       in.received.Load(),
		"ferry_agent_syslog_received_bytes_total": in.bytes.Load(),
		"ferry_agent_syslog_dropped_total":        in.dropped.Load(),
		"ferry_agent_syslog_truncated_total":      in.truncated.Load(),
		"ferry_agent_syslog_spool_full_total":     in.spoolFull.Load(),
		"ferry_agent_syslog_spool_pending_bytes":  uint64(st.PendingBytes),
	}
}

// Run receives messages into the spool and sends what the spool holds to
// out as chunks, until ctx ends. Then it stops listening, appends what was
// received to the spool and returns; call Close after the shipper has
// stopped, so that the last acknowledgements are committed.
func (in *Input) Run(ctx context.Context, out chan<- *tail.Chunk) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var recv sync.WaitGroup
	recv.Add(1)
	if in.udp != nil {
		go func() { defer recv.Done(); in.readUDP(ctx) }()
	} else {
		go func() { defer recv.Done(); in.acceptTCP(ctx, &recv) }()
	}
	context.AfterFunc(ctx, in.stopListening)
	appended := make(chan struct{})
	go func() { defer close(appended); in.appendLoop(ctx) }()
	wg.Add(2)
	go func() { defer wg.Done(); in.readSpool(ctx, out) }()
	go func() { defer wg.Done(); in.commitLoop(ctx) }()
	<-ctx.Done()
	recv.Wait()
	close(in.queue) // every receiver is gone: the appender drains the queue
	<-appended
	wg.Wait()
	return nil
}

func (in *Input) stopListening() {
	if in.udp != nil {
		_ = in.udp.Close()
	}
	if in.tcp != nil {
		_ = in.tcp.Close()
	}
	in.connsMu.Lock()
	for c := range in.conns {
		_ = c.Close()
	}
	in.connsMu.Unlock()
}

// Close commits what was acknowledged and closes the spool.
func (in *Input) Close() error {
	in.commitAcked()
	return in.spl.Close()
}

// Commit records that the chunks of the input up to the one ending at end
// are acknowledged. The spool is committed by the next commit tick.
func (in *Input) Commit(end int64) {
	in.mu.Lock()
	if end > in.acked {
		in.acked = end
	}
	in.mu.Unlock()
}

func (in *Input) commitLoop(ctx context.Context) {
	t := time.NewTicker(in.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			in.commitAcked()
		}
	}
}

// commitAcked commits the spool up to the last acknowledged chunk.
func (in *Input) commitAcked() {
	in.mu.Lock()
	var last wal.Pos
	n := 0
	for n < len(in.read) && endOf(in.read[n]) <= in.acked {
		last = in.read[n]
		n++
	}
	in.read = in.read[n:]
	in.mu.Unlock()
	if n == 0 {
		return
	}
	if err := in.spl.Commit(last); err != nil {
		in.log.Error("committing the syslog spool failed; acknowledged messages may be sent again after a restart", "err", err)
	}
}

// endOf is the chunk end of the record at p: segment and offset just past
// it, ordered like the spool.
func endOf(p wal.Pos) int64 { return int64(p.Segment)<<40 | p.Offset }

// enqueue hands a received message to the appender. wait: block while the
// queue is full (TCP); else drop it and count (UDP).
func (in *Input) enqueue(ctx context.Context, m message, wait bool) {
	n := int64(len(m.b) + msgHeader)
	if wait {
		if err := in.budget.Acquire(ctx, n); err != nil {
			return
		}
		select {
		case in.queue <- m:
		case <-ctx.Done():
			in.budget.Release(n)
			return
		}
	} else {
		if !in.budget.TryAcquire(n) {
			in.dropped.Add(1)
			return
		}
		select {
		case in.queue <- m:
		default:
			in.budget.Release(n)
			in.dropped.Add(1)
			return
		}
	}
	in.received.Add(1)
	in.bytes.Add(uint64(len(m.b)))
	if m.flags&fTruncated != 0 {
		in.truncated.Add(1)
	}
}

func (in *Input) readUDP(ctx context.Context) {
	buf := make([]byte, 65536)
	for {
		n, _, err := in.udp.ReadFromUDP(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			in.log.Warn("syslog: reading UDP failed", "err", err)
			continue
		}
		b := trimEOL(buf[:n])
		if len(b) == 0 {
			continue
		}
		var flags uint8
		if len(b) > in.cfg.MaxMessageBytes {
			b, flags = b[:in.cfg.MaxMessageBytes], fTruncated
		}
		in.enqueue(ctx, message{b: append([]byte(nil), b...), t: time.Now().UnixNano(), flags: flags}, false)
	}
}

func trimEOL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == 0) {
		b = b[:len(b)-1]
	}
	return b
}

func (in *Input) acceptTCP(ctx context.Context, recv *sync.WaitGroup) {
	for {
		c, err := in.tcp.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			in.log.Warn("syslog: accepting a TCP connection failed", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		in.connsMu.Lock()
		if ctx.Err() != nil {
			in.connsMu.Unlock()
			_ = c.Close()
			return
		}
		in.conns[c] = struct{}{}
		recv.Add(1)
		in.connsMu.Unlock()
		go func() {
			defer recv.Done()
			defer func() {
				in.connsMu.Lock()
				delete(in.conns, c)
				in.connsMu.Unlock()
				_ = c.Close()
			}()
			if err := in.readConn(ctx, c); err != nil && ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				in.log.Warn("syslog: TCP connection ended", "remote", c.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

// readConn reads the messages of one TCP connection: octet counting ("<len>
// <msg>") when its first byte is a digit, else one message per line.
func (in *Input) readConn(ctx context.Context, c net.Conn) error {
	r := bufio.NewReaderSize(c, 64<<10)
	return ReadFramed(r, in.cfg.MaxMessageBytes, func(b []byte, truncated bool) {
		var flags uint8
		if truncated {
			flags = fTruncated
		}
		in.enqueue(ctx, message{b: append([]byte(nil), b...), t: time.Now().UnixNano(), flags: flags}, true)
	})
}

// ReadFramed reads syslog messages from a TCP stream until it ends (nil
// at a clean end) and calls emit for each; b is valid only during the call.
// The framing is chosen by the first byte: a digit means octet counting
// (RFC 6587 3.4.1), anything else newline framing (3.4.2). A message longer
// than max is cut to max and emitted with truncated set; the rest of it is
// skipped.
func ReadFramed(r *bufio.Reader, maxBytes int, emit func(b []byte, truncated bool)) error {
	first, err := r.Peek(1)
	if err != nil {
		if err == io.EOF {
			return nil
		}
		return err
	}
	if first[0] >= '0' && first[0] <= '9' {
		return readOctetCounted(r, maxBytes, emit)
	}
	return readLines(r, maxBytes, emit)
}

func readOctetCounted(r *bufio.Reader, maxBytes int, emit func([]byte, bool)) error {
	buf := make([]byte, 0, 4096)
	for {
		n, digits := 0, 0
		for {
			c, err := r.ReadByte()
			if err != nil {
				if err == io.EOF && digits == 0 {
					return nil
				}
				if err == io.EOF {
					return io.ErrUnexpectedEOF
				}
				return err
			}
			if c == ' ' && digits > 0 {
				break
			}
			if c == '\n' && digits == 0 {
				continue // a stray newline between frames
			}
			if c < '0' || c > '9' || digits >= 9 {
				return fmt.Errorf("octet counting: bad frame length byte %q", c)
			}
			n = n*10 + int(c-'0')
			digits++
		}
		take := min(n, maxBytes)
		if cap(buf) < take {
			buf = make([]byte, take)
		}
		buf = buf[:take]
		if _, err := io.ReadFull(r, buf); err != nil {
			return fmt.Errorf("octet counting: frame of %d bytes cut short: %w", n, err)
		}
		if n > take {
			if _, err := r.Discard(n - take); err != nil {
				return fmt.Errorf("octet counting: frame of %d bytes cut short: %w", n, err)
			}
		}
		if b := trimEOL(buf); len(b) > 0 {
			emit(b, n > take)
		}
	}
}

func readLines(r *bufio.Reader, maxBytes int, emit func([]byte, bool)) error {
	var long []byte // the start of a line longer than the reader's buffer
	total := 0      // bytes of the current line so far
	for {
		part, err := r.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull && err != io.EOF {
			return err
		}
		if len(long) < maxBytes {
			long = append(long, part[:min(len(part), maxBytes-len(long))]...)
		}
		total += len(part)
		if err == bufio.ErrBufferFull {
			continue
		}
		content := total - (len(part) - len(trimEOL(part)))
		cut := content > maxBytes
		line := long[:min(len(long), content)]
		if !cut {
			line = trimEOL(line)
		}
		if len(line) > 0 {
			emit(line, cut)
		}
		long, total = long[:0], 0
		if err == io.EOF {
			return nil
		}
	}
}

// appendLoop packs queued messages into spool records, as many as are
// waiting (group commit: one fsync for all), until the queue is closed
// and drained. ctx ending does not stop it, unless the spool is full.
func (in *Input) appendLoop(ctx context.Context) {
	rec := make([]byte, 0, 64<<10)
	var held int64
	for {
		m, ok := <-in.queue
		if !ok {
			return
		}
		rec, held = rec[:0], 0
		count := 0
		add := func(m message) {
			rec = binary.BigEndian.AppendUint32(rec, uint32(len(m.b)))
			rec = binary.BigEndian.AppendUint64(rec, uint64(m.t))
			rec = append(rec, m.flags)
			rec = append(rec, m.b...)
			held += int64(len(m.b) + msgHeader)
			count++
		}
		add(m)
		closed := false
	more:
		for count < recordMaxMsgs && len(rec) < recordMaxBytes {
			select {
			case m, ok := <-in.queue:
				if !ok {
					closed = true
					break more
				}
				add(m)
			default:
				break more
			}
		}
		in.appendRecord(ctx, rec, count)
		in.budget.Release(held)
		if closed {
			return
		}
	}
}

// appendRecord appends rec (of n messages) to the spool, waiting while the
// spool is full (messages then wait in the queue: TCP readers stop, UDP
// drops). It gives up if the spool has failed for good, or is full while
// the input stops: the messages are then counted and logged as lost.
func (in *Input) appendRecord(ctx context.Context, rec []byte, n int) {
	warned := false
	for {
		_, err := in.spl.Append(context.Background(), rec)
		switch {
		case err == nil:
			return
		case errors.Is(err, wal.ErrFull):
			in.spoolFull.Add(1)
			if !warned {
				in.log.Warn("syslog spool full: the aggregator is behind or away; TCP senders are held back and UDP messages dropped until it catches up",
					"spool_max_bytes", in.cfg.SpoolMaxBytes)
				warned = true
			}
			select {
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
				in.dropped.Add(uint64(n))
				in.log.Error("syslog spool full while stopping: received messages lost", "messages", n)
				return
			}
		default:
			in.dropped.Add(uint64(n))
			in.log.Error("syslog spool failed: received messages lost", "err", err, "messages", n)
			return
		}
	}
}

// readSpool reads the spool in order and sends each record as a chunk.
func (in *Input) readSpool(ctx context.Context, out chan<- *tail.Chunk) {
	for {
		pos, rec, err := in.spl.Read(ctx)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, wal.ErrClosed) {
				in.log.Error("reading the syslog spool failed", "err", err)
			}
			return
		}
		c := in.Chunk(pos, rec)
		in.mu.Lock()
		in.read = append(in.read, pos)
		in.mu.Unlock()
		select {
		case out <- c:
		case <-ctx.Done():
			return
		}
	}
}

// Chunk turns the spool record rec at pos into a chunk of events: the
// message of each is the MSG part of the syslog message (header
// stripped), its time the header's or, without one, the time of receipt.
// Each event's offset (and so its id) is the spool segment and the byte
// offset of its message in that segment.
func (in *Input) Chunk(pos wal.Pos, rec []byte) *tail.Chunk {
	c := tail.NewChunk(in.file, nil)
	c.Arena = rec
	c.End = endOf(pos)
	base := pos.Offset - int64(len(rec))
	for i := 0; i+msgHeader <= len(rec); {
		n := int(binary.BigEndian.Uint32(rec[i:]))
		t := int64(binary.BigEndian.Uint64(rec[i+4:]))
		flags := rec[i+12]
		start := i + msgHeader
		if start+n > len(rec) {
			break // cannot happen: records are checksummed
		}
		msg := rec[start : start+n]
		h, body := parse.ParseSyslog(msg, time.Unix(0, t), in.cfg.Location)
		if h.Time != 0 {
			t = h.Time
		}
		ms := start + (len(msg) - len(body))
		r := tail.Rec{Off: int64(pos.Segment)<<40 | (base + int64(start)), MsgStart: uint32(ms), MsgEnd: uint32(start + n), Time: t}
		if flags&fTruncated != 0 {
			r.Flags |= uint32(ferryv1.Flag_FLAG_TRUNCATED)
		}
		if !utf8.Valid(body) {
			r.Flags |= uint32(ferryv1.Flag_FLAG_INVALID_UTF8)
		}
		c.Recs = append(c.Recs, r)
		i = start + n
	}
	return c
}
