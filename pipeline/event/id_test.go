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

// TestIDHasherMatchesID: IDHasher.Append computes ID, byte for byte, for
// node and file identity lengths around the SHA-256 block edges, runs of
// offsets of one file (the saved state reused), offsets whose high bytes
// change within a run, and files interleaved.
func TestIDHasherMatchesID(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	var x IDHasher
	check := func(node, file string, off int64) {
		t.Helper()
		got := x.Append([]byte("p"), node, file, off)
		if want := ID([]byte("p"), node, file, off); !bytes.Equal(got, want) {
			t.Fatalf("node len %d, file len %d, offset %#x: Append = %x, ID = %x", len(node), len(file), off, got, want)
		}
	}
	for ln := 0; ln < 140; ln++ {
		for _, lf := range []int{0, 1, 5, 20, 21, 22, 50, 53, 54, 55, 56, 57, 60, 64, 100, 119, 120, 121, 200} {
			node, file := randString(r, ln), randString(r, lf)
			other := randString(r, lf)
			base := r.Int63n(1 << 40)
			for k := range 6 {
				off := base + int64(k)*int64(r.Intn(300))
				check(node, file, off)
				if k == 3 {
					check(node, other, off) // another file between two lines
				}
			}
			// High bytes of the offset change: 0xff..ff to 0x100..00.
			for _, off := range []int64{1<<32 - 1, 1 << 32, 1<<40 - 1, 1 << 40, 1<<48 - 1, 1 << 48, 1<<56 - 1, 1 << 56, 1<<63 - 1, -1, -1 << 63, 0} {
				check(node, file, off)
			}
		}
	}
	for range 20000 {
		check(randString(r, r.Intn(2*idStackBuf)), randString(r, r.Intn(2*idStackBuf)), r.Int63()-r.Int63())
	}
	// Longer than the stack buffer: the streaming hash.
	check(strings.Repeat("n", idStackBuf), "f", 1)
}

func TestIDHasherDoesNotAllocate(t *testing.T) {
	var x IDHasher
	dst := make([]byte, 0, 64)
	node, file := "ip-10-0-1-17.eu-west-1.compute.internal", "fd00-1234567-89abcdef"
	off := int64(0)
	if n := testing.AllocsPerRun(1000, func() { off += 120; _ = x.Append(dst[:0], node, file, off) }); n != 0 {
		t.Fatalf("Append allocates %v times per call", n)
	}
	// Files in turn: the state is saved again for each, in the same memory
	// (the race detector's instrumentation makes the digest's AppendBinary
	// allocate).
	if idRaceEnabled {
		return
	}
	files := []string{file, "fd00-7654321-0f86d081", "fd00-1111111-22222222"}
	i := 0
	if n := testing.AllocsPerRun(1000, func() { i++; _ = x.Append(dst[:0], node, files[i%len(files)], 5000) }); n != 0 {
		t.Fatalf("Append allocates %v times per call, files in turn", n)
	}
}

// BenchmarkIDHasher is BenchmarkID for lines of one file in a row, as the
// agent's batches take them.
func BenchmarkIDHasher(b *testing.B) {
	var x IDHasher
	dst := make([]byte, 0, 64)
	node, file := "ip-10-0-1-17.eu-west-1.compute.internal", "fd00-1234567-89abcdef"
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		dst = x.Append(dst[:0], node, file, int64(i))
	}
}
