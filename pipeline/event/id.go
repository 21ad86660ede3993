package event

import (
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"hash"
)

// IDHasher computes ids as ID does, byte for byte, for many lines of the
// same files: the hashed input of a line is node, 0, fileID, 0 and its
// offset, and when that is longer than one SHA-256 block (node names and
// file identities often make it 60-80 bytes) the blocks the lines of a
// file have in common are hashed once. The hasher keeps the SHA-256 state
// after those blocks for the last node, file and high bytes of the offset
// it saw, and for the next line of the same file only hashes the rest: one
// block instead of two. The zero value is ready for use; it is not safe
// for concurrent use.
type IDHasher struct {
	h hash.Hash
	// The input whose leading blocks state holds: node, fileID, and the
	// offset's bytes inside them (hi, the top hiBytes bytes).
	node, fileID string
	hi           uint64
	hiBytes      int
	state        []byte // the marshalled state; nil: none
	ok           bool   // the digest can save and restore its state
	// Scratch, here rather than on the stack: what goes through the
	// hash.Hash interface escapes.
	buf [sha256.BlockSize + 8]byte
	sum [sha256.Size]byte
	in  []byte // the input prime hashes
}

// Append appends ID(node, fileID, offset) to dst.
func (x *IDHasher) Append(dst []byte, node, fileID string, offset int64) []byte {
	pre := len(node) + len(fileID) + 2
	whole := (pre + 8) / sha256.BlockSize * sha256.BlockSize // bytes in complete blocks
	if pre+8 > idStackBuf {
		return ID(dst, node, fileID, offset)
	}
	if whole == 0 {
		// One block in all (or two of which the second is padding): no
		// state worth keeping, but the digest and its buffers are reused.
		if !x.init() {
			return ID(dst, node, fileID, offset)
		}
		x.h.Reset()
		x.h.Write(x.input(node, fileID, offset))
		x.state = nil // the digest no longer holds a saved state's blocks
		return append(dst, x.h.Sum(x.sum[:0])[:IDLen]...)
	}
	hiBytes := max(whole-pre, 0) // the offset's bytes in the complete blocks
	var hi uint64
	if hiBytes > 0 {
		hi = uint64(offset) >> (8 * (8 - hiBytes))
	}
	if x.state == nil || node != x.node || fileID != x.fileID || hiBytes != x.hiBytes || hi != x.hi {
		if !x.prime(node, fileID, offset, whole, hiBytes, hi) {
			return ID(dst, node, fileID, offset)
		}
	} else if err := x.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(x.state); err != nil {
		x.state = nil
		return ID(dst, node, fileID, offset)
	}
	// The rest of the input, after the complete blocks.
	n := 0
	if whole < pre {
		// Part of the prefix is left: node, 0, fileID, 0 from byte whole on.
		n = appendPrefixFrom(x.buf[:0], node, fileID, whole)
	}
	var off [8]byte
	binary.BigEndian.PutUint64(off[:], uint64(offset))
	n += copy(x.buf[n:], off[hiBytes:])
	x.h.Write(x.buf[:n])
	sum := x.h.Sum(x.sum[:0])
	return append(dst, sum[:IDLen]...)
}

// input is ID's whole input for (node, fileID, offset) in x's buffer:
// node, 0, fileID, 0, offset big endian.
func (x *IDHasher) input(node, fileID string, offset int64) []byte {
	in := append(x.in[:0], node...)
	in = append(in, 0)
	in = append(in, fileID...)
	in = append(in, 0)
	x.in = binary.BigEndian.AppendUint64(in, uint64(offset))
	return x.in
}

// prime hashes the complete blocks of the input of (node, fileID, offset)
// and keeps the state; false if the digest cannot save its state.
func (x *IDHasher) prime(node, fileID string, offset int64, whole, hiBytes int, hi uint64) bool {
	if !x.init() {
		return false
	}
	x.h.Reset()
	x.h.Write(x.input(node, fileID, offset)[:whole])
	var st []byte
	var err error
	if a, ok := x.h.(encoding.BinaryAppender); ok {
		st, err = a.AppendBinary(x.state[:0]) // the state's memory, reused
	} else {
		st, err = x.h.(encoding.BinaryMarshaler).MarshalBinary()
	}
	if err != nil {
		x.state = nil
		return false
	}
	x.state = st
	x.node, x.fileID, x.hiBytes, x.hi = node, fileID, hiBytes, hi
	return true
}

// init makes the digest, once; false if it cannot save and restore its
// state.
func (x *IDHasher) init() bool {
	if x.h == nil {
		x.h = sha256.New()
		_, m := x.h.(encoding.BinaryMarshaler)
		_, u := x.h.(encoding.BinaryUnmarshaler)
		x.ok = m && u
	}
	return x.ok
}

// appendPrefixFrom writes the bytes of node, 0, fileID, 0 from index from
// on into dst (which has room) and returns how many.
func appendPrefixFrom(dst []byte, node, fileID string, from int) int {
	n := 0
	put := func(s string) {
		if from < len(s) {
			n += copy(dst[n:cap(dst)], s[from:])
			from = 0
		} else {
			from -= len(s)
		}
	}
	put(node)
	put("\x00")
	put(fileID)
	put("\x00")
	return n
}
