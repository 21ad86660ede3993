package transport

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// MaxRecvHeader is the response header in which the aggregator announces,
// when a stream opens, the largest message it accepts (its
// max_recv_message_bytes, in decimal bytes), so that the agent can say at
// once which of its settings cannot fit, rather than when a long line
// comes.
const MaxRecvHeader = "ferry-max-recv-message-bytes"

// Framing allowances of the agent's checks against the aggregator's
// announced limit: what an event adds to its message (id, path, offset,
// Kubernetes coordinates and fields; a path may take 4 KiB alone), and what
// a batch adds to its events (sequence number, node name).
const (
	lineFraming  = 8 << 10
	batchFraming = 1 << 10
)

// announcedMax returns the limit announced in md, or 0.
func announcedMax(md metadata.MD) int64 {
	v := md.Get(MaxRecvHeader)
	if len(v) == 0 {
		return 0
	}
	n, err := strconv.ParseInt(v[0], 10, 64)
	if err != nil || n <= 0 {
		return 0
	}
	return n
}

// limitProblem is a setting of the agent that can produce a message larger
// than the aggregator accepts.
type limitProblem struct {
	msg   string
	attrs []any
}

// limitProblems compares the agent's settings with the aggregator's limit:
// each input whose longest line (max_line_bytes) plus framing exceeds it,
// and batch_max_bytes plus framing. Inputs come in name order.
func limitProblems(limit int64, maxLine map[string]int, batchMax int) []limitProblem {
	var out []limitProblem
	for _, name := range slices.Sorted(maps.Keys(maxLine)) {
		if n := maxLine[name]; int64(n)+lineFraming > limit {
			out = append(out, limitProblem{
				msg: fmt.Sprintf("a line of input %s can be larger than the aggregator accepts and would stop that file: "+
					"raise max_recv_message_bytes on the aggregator above max_line_bytes plus %d KiB, or lower max_line_bytes of input %s (longer lines are cut and flagged)",
					name, lineFraming>>10, name),
				attrs: []any{"input", name, "max_line_bytes", n, "aggregator_max_recv_message_bytes", limit},
			})
		}
	}
	if int64(batchMax)+batchFraming > limit {
		out = append(out, limitProblem{
			msg:   fmt.Sprintf("batches can be larger than the aggregator accepts: lower aggregator.batch_max_bytes below the aggregator's max_recv_message_bytes less %d KiB, or raise that", batchFraming>>10),
			attrs: []any{"batch_max_bytes", batchMax, "aggregator_max_recv_message_bytes", limit},
		})
	}
	return out
}

// noteAnnounced records the limit the aggregator announced on a new stream
// and warns, once per announced value, about the settings that cannot fit.
func (c *Client) noteAnnounced(md metadata.MD) {
	limit := announcedMax(md)
	if limit == 0 {
		return
	}
	c.serverMax.Store(limit)
	if c.warnedMax.Swap(limit) == limit {
		return
	}
	for _, p := range limitProblems(limit, c.cfg.MaxLineBytes, c.cfg.BatchMaxBytes) {
		c.log.Warn(p.msg, p.attrs...)
	}
}

// grpcTooLarge matches gRPC's refusal of a message over the receiver's limit.
var grpcTooLarge = regexp.MustCompile(`larger than max \((\d+) vs\. (\d+)\)`)

// logRefusedBatch says why the aggregator refused a message as too large
// (err, ResourceExhausted) and what to change: the aggregator's limit as
// announced or as quoted by gRPC, and the largest event of the batches
// sent on the stream, with its input.
func (s *session) logRefusedBatch(err error) {
	c := s.c
	limit := c.serverMax.Load()
	size := int64(0)
	if m := grpcTooLarge.FindStringSubmatch(err.Error()); m != nil {
		size, _ = strconv.ParseInt(m[1], 10, 64)
		if limit == 0 {
			limit, _ = strconv.ParseInt(m[2], 10, 64)
		}
	}
	var big *ferryv1.Event
	bigSize := 0
	for _, p := range s.queue {
		if p.acked || !p.sent {
			continue
		}
		for i, e := range p.msg.Events {
			n := proto.Size(e)
			if i < len(p.extra) {
				n += len(p.extra[i])
			}
			if n > bigSize {
				big, bigSize = e, n
			}
		}
	}
	attrs := []any{"err", err, "aggregator_max_recv_message_bytes", limit, "message_bytes", size, "batch_max_bytes", c.cfg.BatchMaxBytes}
	if big != nil && limit > 0 && int64(bigSize)+batchFraming > limit {
		input := big.GetSource().GetInput()
		attrs = append(attrs, "input", input, "line_bytes", len(big.Message), "max_line_bytes", c.cfg.MaxLineBytes[input])
		c.log.Error(fmt.Sprintf("the aggregator refused a batch as too large: a line of input %s is larger than the aggregator accepts; "+
			"raise max_recv_message_bytes on the aggregator, or lower max_line_bytes of input %s (longer lines are cut and flagged); "+
			"the batch is kept and sent again", input, input), attrs...)
		return
	}
	c.log.Error("the aggregator refused a batch as too large: lower aggregator.batch_max_bytes below the aggregator's max_recv_message_bytes, or raise that; "+
		"the batch is kept and sent again", attrs...)
}

// noteOversize counts a message refused as larger than the server's limit
// and logs it, at most once a minute with the count.
func (s *Server) noteOversize(st *ingestStream, err error) {
	s.OversizeMessages.Add(1)
	if ok, n := s.oversizeLog.note(); ok {
		node, _ := st.node.Load().(string)
		s.log.Warn("refused a message larger than max_recv_message_bytes: the agent's stream ends and its batch waits; "+
			"raise max_recv_message_bytes here, or lower the agent's max_line_bytes or batch_max_bytes",
			"node", node, "peer", peerAddr(st.stream.Context()), "err", err, "refused", n)
	}
}

// peerAddr returns the address of the peer of a stream's context.
func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}
