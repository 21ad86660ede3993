// Package tail finds log files by glob, follows each one through rename and
// copytruncate rotation, deletion and inode reuse, parses its lines (CRI,
// Docker json-file or plain) and hands them on in chunks. It never moves a
// saved offset by itself: offsets advance only through Commit, which the
// shipper calls once the aggregator has acknowledged the lines.
package tail

import (
	"context"
	"sync"
	"time"

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
	// Dataset, if set, is sent as the data_stream.dataset field.
	Dataset string
}

// File is one file under one identity. Its fields do not change once the
// File is handed out in a Chunk.
type File struct {
	ID    string
	Path  string // resolved path, where the bytes are
	Link  string // the glob match (often a symlink), or Path
	Input string
	Kube  *ferryv1.Kubernetes
	// Fields are sent with every event of the file (shared, read-only).
	Fields map[string]*ferryv1.Value
}

// Rec is one event parsed from a file.
type Rec struct {
	Off      int64 // offset of the line's first byte (first fragment if joined)
	MsgStart uint32
	MsgEnd   uint32
	Time     int64
	Stream   ferryv1.StreamName
	Flags    uint32
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

	permits chan struct{}
}

// Message returns the message of r.
func (c *Chunk) Message(r *Rec) []byte { return c.Arena[r.MsgStart:r.MsgEnd] }

// chunk limits: a chunk is sent when it holds this many events or bytes. It
// never holds more than chunkMaxRecs events (the shipper sizes its batches on
// that), nor more than chunkMaxBytes plus one message.
const (
	chunkMaxRecs  = 512
	chunkMaxBytes = 256 << 10
	readSize      = 128 << 10
)

var chunkPool = sync.Pool{New: func() any {
	return &Chunk{Arena: make([]byte, 0, chunkMaxBytes+readSize), Recs: make([]Rec, 0, chunkMaxRecs)}
}}

// full reports whether the chunk should be handed on before reading more.
func (c *Chunk) full() bool {
	return len(c.Recs) >= chunkMaxRecs || len(c.Arena) >= chunkMaxBytes
}

// newChunk takes one of the manager's chunk permits, waiting while all are
// out: this bounds the memory held by parsed, not yet shipped events.
func (m *Manager) newChunk(ctx context.Context, f *File) (*Chunk, error) {
	select {
	case m.permits <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return m.chunkFor(f), nil
}

// tryNewChunk is newChunk without waiting: nil when no permit is free.
func (m *Manager) tryNewChunk(f *File) *Chunk {
	select {
	case m.permits <- struct{}{}:
		return m.chunkFor(f)
	default:
		return nil
	}
}

func (m *Manager) chunkFor(f *File) *Chunk {
	c := chunkPool.Get().(*Chunk)
	c.File = f
	c.Arena = c.Arena[:0]
	c.Recs = c.Recs[:0]
	c.End = 0
	c.Final = false
	c.permits = m.permits
	return c
}

// NewChunk returns an empty chunk of f for a producer other than a Manager
// (another input, a test). It holds one token of permits, which must have
// been taken (sent) by the caller; Release takes it back. permits may be nil
// when the producer bounds its memory by other means.
func NewChunk(f *File, permits chan struct{}) *Chunk {
	return &Chunk{File: f, permits: permits}
}

// Release returns c and its permit. The caller must not use c, nor any
// message slice taken from it, afterwards.
func (c *Chunk) Release() {
	p := c.permits
	c.File, c.permits = nil, nil
	if cap(c.Arena) <= 4*chunkMaxBytes {
		chunkPool.Put(c)
	}
	if p != nil {
		<-p
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, readSize*2); return &b }}
