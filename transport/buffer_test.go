package transport

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/ferrylogs/ferry/pipeline/event"
	"github.com/ferrylogs/ferry/pipeline/wal"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/sinks"
	"github.com/ferrylogs/ferry/sinks/buffer"
)

// copySink records the message of every event delivered, copied, once
// gate is closed.
type copySink struct {
	gate chan struct{}
	mu   sync.Mutex
	msgs map[string][]byte // by event id
}

func (s *copySink) Write(ctx context.Context, b *event.Batch) (sinks.Result, error) {
	select {
	case <-s.gate:
	case <-ctx.Done():
		return sinks.Result{}, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range b.Events {
		s.msgs[string(e.Id)] = bytes.Clone(e.Message)
	}
	return sinks.Result{Delivered: len(b.Events)}, nil
}
func (s *copySink) Close(context.Context) error { return nil }

func (s *copySink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// TestServerIntoDiskBuffer sends batches of about 100 KiB to a server whose
// sink is a real disk buffer with a small memory tail, delivering nothing
// until every batch is acknowledged: the first batches are decoded at
// receive and kept decoded, the next ones only scanned, their receive
// buffers given back to the pool and reused by the next batches, and
// delivered from the file. Every event is delivered with its own message.
func TestServerIntoDiskBuffer(t *testing.T) {
	inner := &copySink{gate: make(chan struct{}), msgs: map[string][]byte{}}
	buf, err := buffer.New(inner, buffer.Options{
		WAL:         wal.Options{Dir: t.TempDir(), MaxBytes: 1 << 30, Sync: wal.SyncNever},
		MemoryBytes: 512 << 10, CommitInterval: -1,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close(context.Background())
	srv := startHostileServer(t, buf, ServerConfig{}, 16<<20)
	raw := dialRaw(t, srv.addr)
	const batches, events = 60, 400
	msg := func(seq uint64, i int) []byte {
		return []byte(fmt.Sprintf("batch %d event %d %s", seq, i, bytes.Repeat([]byte{byte('a' + (int(seq)+i)%26)}, 200)))
	}
	for seq := uint64(1); seq <= batches; seq++ {
		b := &ferryv1.Batch{Seq: seq, Node: testNode}
		for i := range events {
			b.Events = append(b.Events, &ferryv1.Event{Id: event.ID(nil, testNode, "f", int64(seq)<<32|int64(i)), Message: msg(seq, i)})
		}
		if err := raw.st.Send(b); err != nil {
			t.Fatal(err)
		}
	}
	acks := raw.recvAcks(t, batches)
	for seq := uint64(1); seq <= batches; seq++ {
		if a := acks[seq]; a == nil || a.Code != ferryv1.Ack_CODE_OK {
			t.Fatalf("batch %d: ack %v", seq, a)
		}
	}
	close(inner.gate)
	waitFor(t, "every event delivered", func() bool { return inner.count() == batches*events })
	for seq := uint64(1); seq <= batches; seq++ {
		for i := range events {
			got := inner.msgs[string(event.ID(nil, testNode, "f", int64(seq)<<32|int64(i)))]
			if !bytes.Equal(got, msg(seq, i)) {
				t.Fatalf("batch %d event %d delivered with %q, want %q", seq, i, got, msg(seq, i))
			}
		}
	}
}
