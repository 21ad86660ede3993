package event

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"math/rand"
	"strings"
	"testing"
)

// oldID is ID as it was before it hashed a stack buffer: the streaming
// hash. Ids are the dedup key across versions, so the two must agree
// byte for byte.
func oldID(dst []byte, node, fileID string, offset int64) []byte {
	h := sha256.New()
	var buf [8]byte
	h.Write([]byte(node))
	h.Write([]byte{0})
	h.Write([]byte(fileID))
	h.Write([]byte{0})
	binary.BigEndian.PutUint64(buf[:], uint64(offset))
	h.Write(buf[:])
	var sum [sha256.Size]byte
	return append(dst, h.Sum(sum[:0])[:IDLen]...)
}

func randString(r *rand.Rand, n int) string {
	b := make([]byte, n)
	r.Read(b) // any bytes, zeros included
	return string(b)
}

func TestIDMatchesStreamingHash(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	// Lengths around the stack buffer's edge, and far beyond it.
	lens := []int{0, 1, 7, 63, 64, 200, 253, idStackBuf - 11, idStackBuf - 10, idStackBuf - 9, idStackBuf, 1000, 5000}
	offsets := []int64{0, 1, 255, 1 << 32, -1, 1<<63 - 1, -1 << 63}
	for _, ln := range lens {
		for _, lf := range lens {
			for k := 0; k < 3; k++ {
				node, file := randString(r, ln), randString(r, lf)
				off := offsets[r.Intn(len(offsets))]
				if k == 2 {
					off = r.Int63() - r.Int63()
				}
				prefix := []byte("prefix")
				got := ID(append([]byte(nil), prefix...), node, file, off)
				want := oldID(append([]byte(nil), prefix...), node, file, off)
				if !bytes.Equal(got, want) {
					t.Fatalf("node len %d, file len %d, offset %d: ID = %x, streaming hash = %x", ln, lf, off, got, want)
				}
			}
		}
	}
	for i := 0; i < 20000; i++ {
		node, file := randString(r, r.Intn(2*idStackBuf)), randString(r, r.Intn(2*idStackBuf))
		off := r.Int63() - r.Int63()
		if got, want := ID(nil, node, file, off), oldID(nil, node, file, off); !bytes.Equal(got, want) {
			t.Fatalf("node len %d, file len %d, offset %d: ID = %x, streaming hash = %x", len(node), len(file), off, got, want)
		}
	}
}

// A fixed id pins the format itself, not just agreement with oldID.
func TestIDKnownValue(t *testing.T) {
	const want = "n3uywMIKKXWM0KgnGelnkA" // what every release so far computed
	if got := IDString(ID(nil, "node-1", "fe00-1-abc", 100)); got != want || IDString(oldID(nil, "node-1", "fe00-1-abc", 100)) != want {
		t.Fatalf("ID = %s", got)
	}
}

func TestIDDoesNotAllocate(t *testing.T) {
	dst := make([]byte, 0, 64)
	node, file := "node-1.example.internal", strings.Repeat("f", 40)
	if n := testing.AllocsPerRun(100, func() { _ = ID(dst[:0], node, file, 12345) }); n != 0 {
		t.Fatalf("ID allocates %v times per call", n)
	}
}

func BenchmarkID(b *testing.B) {
	dst := make([]byte, 0, 64)
	node, file := "ip-10-0-1-17.eu-west-1.compute.internal", "fd00-1234567-89abcdef"
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		dst = ID(dst[:0], node, file, int64(i))
	}
}

func BenchmarkIDStreaming(b *testing.B) {
	dst := make([]byte, 0, 64)
	node, file := "ip-10-0-1-17.eu-west-1.compute.internal", "fd00-1234567-89abcdef"
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		dst = oldID(dst[:0], node, file, int64(i))
	}
}
