package transport

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	// The codec wrapped below must be registered before this package's
	// init replaces it.
	_ "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/proto/ferry/v1/wire"
)

// rawBatch receives a message as its wire bytes, undecoded: the server
// reads batches into it (see receive), and decodes them itself with
// proto/ferry/v1/wire, once, or only checks them when its sink is a disk
// buffer that stores the bytes as they are.
//
// The bytes are the message's own copy, made by the codec out of gRPC's
// receive buffers (which gRPC reuses once Unmarshal returns), into a
// buffer of receivedPool: they belong to whoever holds the rawBatch, and
// nothing in gRPC keeps or changes them. The server gives the buffer back
// to the pool when it is sure that nothing refers to it (see
// receivedPool).
type rawBatch []byte

// rawCodec is gRPC's "proto" codec with two additions: it unmarshals into
// a *rawBatch by copying the message's bytes (one copy, one allocation;
// gzip is undone before), and it marshals a *ferryv1.Batch (what the
// agent sends) with package wire's encoder, which writes what proto.Marshal
// writes (map order aside) at a fraction of its cost, into a buffer of
// gRPC's pool that gRPC returns once the message is written. Every other
// message goes to the codec it replaces, so a gRPC client or server in the
// same process sees no difference. It is registered under the name "proto" (what the
// agent's content type asks for) when this package is initialised:
// grpc-go picks a codec by name, and replacing the default one this way is
// its documented extension point (encoding.RegisterCodecV2).
type rawCodec struct{ proto encoding.CodecV2 }

func init() {
	base := encoding.GetCodecV2("proto")
	if base == nil {
		panic("transport: gRPC's proto codec is not registered")
	}
	if _, ok := base.(rawCodec); !ok {
		encoding.RegisterCodecV2(rawCodec{proto: base})
	}
}

// Marshal implements encoding.CodecV2.
func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	switch b := v.(type) {
	case *ferryv1.Batch:
		if b != nil {
			return marshalBatch(b, nil, 0, sendPool)
		}
	case *batchExtra:
		return marshalBatch(b.Batch, b.extra, b.hint, sendPool)
	}
	return c.proto.Marshal(v)
}

// sendPool holds the buffers batches are encoded into: gRPC's default
// tiers, without clearing a reused buffer (gRPC's default pool clears it
// whole, a pass over every byte sent for nothing: the encoder writes every
// byte of the part of the buffer it uses, which is all gRPC sends).
var sendPool mem.BufferPool = newDirtyPool(8, 12, 14, 15, 20)

// batchExtra is what the agent sends (see pending.wireMsg): a batch, with
// more fields of some of its events already encoded (see
// wire.MarshalBatchExtra; those a FieldAppender wrote) and the builder's
// estimate of its encoded size, for rawCodec to encode it in one pass. It
// goes on the wire as the batch with those fields in its events' maps. It
// is a proto.Message (the batch's, without the extra fields) for whatever
// looks at messages on their way to the codec.
type batchExtra struct {
	*ferryv1.Batch
	extra [][]byte
	hint  int
}

// marshalBatch encodes b (with the encoded fields extra of its events)
// into a buffer of pool (as gRPC's proto codec does, a small message into
// a buffer of its own). The buffer goes back to pool when gRPC frees the
// BufferSlice.
//
// With a size hint (the builder's estimate, which is above the encoded
// size but for a few bytes a multiline event may add), it encodes in one
// pass (wire.AppendBatchExtra) into a buffer of that size: the pool's
// tiers round it up, and a batch that still does not fit grows into a
// buffer of its own. Without one (0), it sizes the batch first and takes
// a buffer of exactly that size (wire.MarshalBatchExtra).
func marshalBatch(b *ferryv1.Batch, extra [][]byte, hint int, pool mem.BufferPool) (mem.BufferSlice, error) {
	if hint > 0 {
		return appendBatch(b, extra, hint, pool)
	}
	var buf *[]byte
	out, err := wire.MarshalBatchExtra(b, extra, func(n int) []byte {
		if mem.IsBelowBufferPoolingThreshold(n) {
			return make([]byte, 0, n)
		}
		buf = pool.Get(n)
		return (*buf)[:0]
	})
	if err != nil {
		if buf != nil {
			pool.Put(buf)
		}
		return nil, fmt.Errorf("marshal batch %d: %w", b.Seq, err)
	}
	if buf == nil {
		return mem.BufferSlice{mem.SliceBuffer(out)}, nil
	}
	*buf = out
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

// appendBatch is marshalBatch with a size hint.
func appendBatch(b *ferryv1.Batch, extra [][]byte, hint int, pool mem.BufferPool) (mem.BufferSlice, error) {
	if mem.IsBelowBufferPoolingThreshold(hint) {
		out, err := wire.AppendBatchExtra(make([]byte, 0, hint), b, extra)
		if err != nil {
			return nil, fmt.Errorf("marshal batch %d: %w", b.Seq, err)
		}
		return mem.BufferSlice{mem.SliceBuffer(out)}, nil
	}
	buf := pool.Get(hint)
	out, err := wire.AppendBatchExtra((*buf)[:0], b, extra)
	if err != nil {
		pool.Put(buf)
		return nil, fmt.Errorf("marshal batch %d: %w", b.Seq, err)
	}
	if len(out) > 0 && cap(out) == cap(*buf) && &out[0] == &(*buf)[:1][0] {
		*buf = out
		return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
	}
	pool.Put(buf) // outgrown
	return mem.BufferSlice{mem.SliceBuffer(out)}, nil
}

// Unmarshal implements encoding.CodecV2.
func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*rawBatch); ok {
		buf := receivedPool.get(data.Len())
		data.CopyTo(buf)
		*r = buf
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

// Name implements encoding.CodecV2.
func (c rawCodec) Name() string { return c.proto.Name() }

// usesRawCodec reports whether the "proto" codec is rawCodec (another
// package's init could replace it after this one's).
func usesRawCodec() error {
	if _, ok := encoding.GetCodecV2("proto").(rawCodec); !ok {
		return fmt.Errorf("gRPC's proto codec is %T, not the transport's: register no other codec named proto", encoding.GetCodecV2("proto"))
	}
	return nil
}

// rawCodecRegistered returns the registered rawCodec.
func rawCodecRegistered() (rawCodec, error) {
	if err := usesRawCodec(); err != nil {
		return rawCodec{}, err
	}
	return encoding.GetCodecV2("proto").(rawCodec), nil
}
