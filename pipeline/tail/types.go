// Package tail finds log files by glob, follows each one through rename and
// copytruncate rotation, deletion and inode reuse, parses its lines (CRI,
// Docker json-file or plain) and hands them on in chunks. It never moves a
// saved offset by itself: offsets advance only through Commit, which the
// shipper calls once the aggregator has acknowledged the lines.
//
// With an input's multiline rule the lines of each stream, once partial
// lines are joined, go through a multiline.Joiner (see multiline.go): a
// stack trace becomes one event with the offset of its first line, and a
// chunk's End never passes the first line of a group still open, so a
// crash reads the group again from there.
//
// A file's identity is its device, inode and first line, plus a generation
// when that identity held other content before (see checkpoint.GenID). A
// saved offset is resumed only if the file still holds the bytes that were
// read just before it (the check saved with it); a file seen deleted has its
// position retired, so no later file on the same inode resumes it. Content
// that fails these checks is new: it is read from its start under the next
// generation, so its events never take the ids of earlier content.
package tail

import (
	"context"
	"sync"
	"time"
	"unsafe"

	"github.com/ferrylogs/ferry/pipeline/budget"
	"github.com/ferrylogs/ferry/pipeline/multiline"
	"github.com/ferrylogs/ferry/pipeline/parse"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// Input says which files to follow and how to read them.
type Input struct {
	Name string
	// Container inputs take Kubernetes coordinates from the file name.
	Container    bool
	Paths        []string
	Exclude      []string
	Format       parse.Format
	StartAtEnd   bool // for files present at the very first start
	MaxLineBytes int
	PollInterval time.Duration
	GlobInterval time.Duration
	// ReadDelay is how long a follower waits after a write notification
	// before it reads (0: it reads at once). Every write to any file in
	// that window is read when it ends: many writes become one read and
	// one chunk, and the agent wakes once per window instead of once per
	// write. The inputs share one window, of the shortest delay; when
	// every input has one, the notifications wait in the kernel while it
	// is open (see window).
	ReadDelay time.Duration
	// PartialFlushAfter is how long a partial record (CRI "P", Docker
	// "log" without a newline) waits for its continuation before it is
	// sent on its own, flagged partial (0: 5s).
	PartialFlushAfter time.Duration
	// Dataset, if set, is sent as the data_stream.dataset field.
	Dataset string
	// Environment, if set, is sent as the service.environment and
	// data_stream.namespace fields (Kubernetes metadata, where the
	// aggregator has it, takes precedence).
	Environment string
	// Multiline, if not nil, joins the lines of each stream of a file
	// into events by its rule (a stack trace is one event).
	Multiline *multiline.Spec
	// RuleFor, if not nil, names the multiline rule the pod of a
	// container log file asks for (its ferry.io/multiline annotations),
	// overriding Multiline's: ok is false while the pod's metadata is not
	// known (it is asked again every poll interval), rule is "" when the
	// pod asks for nothing. It must be safe for concurrent use and fast:
	// it is called by every follower of the input.
	RuleFor func(k *ferryv1.Kubernetes) (rule string, ok bool)
}

// File is one file under one identity. Its fields do not change once the
// File is handed out in a Chunk.
type File struct {
	ID   string
	Path string // resolved path, where the bytes are
	// SentPath is Path as events carry it when Path is not valid UTF-8
	// (each run of invalid bytes as U+FFFD: a string field of the wire format
	// must be valid UTF-8); "" when Path is. See WirePath.
	SentPath string
	Link     string // the glob match (often a symlink), or Path
	Input    string
	Kube     *ferryv1.Kubernetes
	// Fields are sent with every event of the file (shared, read-only).
	Fields map[string]*ferryv1.Value

	// checks of the chunk ends handed on, for Commit (nil for a File made
	// elsewhere: its offsets are saved without a check).
	checks *endChecks
}

// Rec is one event parsed from a file.
type Rec struct {
	Off      int64 // offset of the line's first byte (first fragment if joined)
	MsgStart uint32
	MsgEnd   uint32
	Time     int64 // the line's own time, else when it was read
	Stream   ferryv1.StreamName
	Flags    uint32
	// OrigTime is the line's time as written when it is out of range
	// (FLAG_TIMESTAMP_OUT_OF_RANGE; Time is then the time of reading).
	OrigTime string
	// Of an event joined from several lines by a multiline rule
	// (FLAG_MULTILINE) only, else 0: the offset just past its last line,
	// and how many lines it joins.
	End   int64
	Lines uint32
}

// Chunk is a run of events from one file, in file order. After the events
// of every chunk up to this one are acknowledged, the file's offset may
// advance to End. Final says the file is finished: once End is committed
// its position can be forgotten.
type Chunk struct {
	File  *File
	Arena []byte
	Recs  []Rec
	End   int64
	Final bool

	// What the chunk holds of its manager's budget (nil for chunks made by
	// NewChunk) and the arena capacity counted so far.
	budget    *budget.Budget
	reserved  int64
	counted   int
	onRelease func()
}

// Message returns the message of r.
func (c *Chunk) Message(r *Rec) []byte { return c.Arena[r.MsgStart:r.MsgEnd] }

// chunk limits: a chunk is sent when it holds this many events or bytes. It
// never holds more than chunkMaxRecs events (the shipper sizes its batches on
// that), nor more than chunkMaxBytes plus one message. A follower reads
// readSize bytes at a time (its read buffer holds two reads).
//
// They are small on purpose: a chunk of 512 lines of ~120 bytes is full at
// ~60 KiB, so a larger arena would sit mostly empty while the chunk waits for
// the shipper, and a read larger than a chunk leaves lines over that are
// read again (see follower.rewind). Memory per chunk in flight: arenaCap +
// recsBytes; per follower reading: its read buffer.
const (
	chunkMaxRecs  = 512
	chunkMaxBytes = 64 << 10
	readSize      = 64 << 10
	// arenaCap is the arena a chunk starts with: room for chunkMaxBytes and
	// the message that crosses it, if not a long one (the arena grows for
	// that, counted in the budget).
	arenaCap  = chunkMaxBytes + 16<<10
	recsBytes = chunkMaxRecs * int(unsafe.Sizeof(Rec{}))
)

var chunkPool = sync.Pool{New: func() any {
	return &Chunk{Arena: make([]byte, 0, arenaCap), Recs: make([]Rec, 0, chunkMaxRecs)}
}}

// full reports whether the chunk should be handed on before reading more.
func (c *Chunk) full() bool {
	return len(c.Recs) >= chunkMaxRecs || len(c.Arena) >= chunkMaxBytes
}

// readAllowance is counted with every chunk for the read buffer of the
// follower filling it (a follower reads only while it holds a chunk).
const readAllowance = 2 * readSize

// chunkCost is what a chunk takes of the budget when it starts: its arena,
// its records and the follower's read buffer.
const chunkCost = int64(arenaCap + recsBytes + readAllowance)

// newChunk takes a chunk's worth of the manager's byte budget, waiting while
// it is used up: this bounds the memory held by read, not yet shipped
// events, and pauses reading while the shipper is behind.
func (m *Manager) newChunk(ctx context.Context, f *File) (*Chunk, error) {
	if err := m.budget.Acquire(ctx, chunkCost); err != nil {
		return nil, err
	}
	return m.chunkFor(f), nil
}

// tryNewChunk is newChunk without waiting: nil when the budget is used up.
func (m *Manager) tryNewChunk(f *File) *Chunk {
	if !m.budget.TryAcquire(chunkCost) {
		return nil
	}
	return m.chunkFor(f)
}

func (m *Manager) chunkFor(f *File) *Chunk {
	c := chunkPool.Get().(*Chunk)
	c.File = f
	c.Arena = c.Arena[:0]
	c.Recs = c.Recs[:0]
	c.End = 0
	c.Final = false
	c.budget, c.reserved, c.counted = m.budget, chunkCost, arenaCap
	c.count() // a pooled arena may have grown before
	return c
}

// count adds the growth of the arena (a long line) to the budget, past its
// limit if need be: the memory is in use already. Reading pauses until it
// is released.
func (c *Chunk) count() {
	if g := cap(c.Arena) - c.counted; g > 0 && c.budget != nil {
		c.budget.Force(int64(g))
		c.reserved += int64(g)
		c.counted = cap(c.Arena)
	}
}

// NewChunk returns an empty chunk of f for a producer other than a Manager
// (another input, a test), which bounds its memory by its own means:
// onRelease, if not nil, is called by Release.
func NewChunk(f *File, onRelease func()) *Chunk {
	return &Chunk{File: f, onRelease: onRelease}
}

// Release returns c and what it holds of the budget. The caller must not
// use c, nor any message slice taken from it, afterwards.
func (c *Chunk) Release() {
	b, n, fn := c.budget, c.reserved, c.onRelease
	c.File, c.budget, c.reserved, c.onRelease = nil, nil, 0, nil
	if cap(c.Arena) <= 4*arenaCap && fn == nil {
		chunkPool.Put(c)
	}
	if b != nil {
		b.Release(n)
	}
	if fn != nil {
		fn()
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, readSize*2); return &b }}

// WirePath is the path events of f carry: Path, valid UTF-8.
func (f *File) WirePath() string {
	if f.SentPath != "" {
		return f.SentPath
	}
	return f.Path
}
