package testlog

import (
	"fmt"
	"sync"
	"testing"
)

func TestBuffer(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				fmt.Fprintf(&b, "level=%s g=%d i=%d\n", map[bool]string{true: "WARN", false: "INFO"}[i%10 == 0], g, i)
			}
		}()
	}
	wg.Wait()
	if n := b.Count("level=WARN"); n != 80 {
		t.Fatalf("Count(WARN) = %d, want 80", n)
	}
	if n := len(b.Lines("level=")); n != 800 {
		t.Fatalf("%d lines, want 800", n)
	}
	if n := b.Count("nothing like this"); n != 0 {
		t.Fatalf("Count of an absent string = %d", n)
	}
}

func TestNewLogs(t *testing.T) {
	log, b := New(t, "component")
	log.Debug("hello", "k", 1)
	if n := b.Count(`msg=hello k=1`); n != 1 {
		t.Fatalf("logged %q", b.String())
	}
}

func TestBufferReset(t *testing.T) {
	var b Buffer
	fmt.Fprintln(&b, "level=WARN before")
	b.Reset()
	fmt.Fprintln(&b, "level=WARN after")
	if got := b.Lines("level=WARN"); len(got) != 1 || got[0] != "level=WARN after" {
		t.Fatalf("Lines after Reset = %q, want only the line written after it", got)
	}
	if s := b.String(); s != "level=WARN before\nlevel=WARN after\n" {
		t.Fatalf("String after Reset = %q, want everything", s)
	}
}
