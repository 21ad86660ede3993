package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/test/harness"
)

// TestHostileClients: the real aggregator binary (memory_limit 256MiB, so
// 64 MiB of batches in flight) under four kinds of broken or hostile
// clients at once, while a real agent ships its lines:
//   - slow readers: streams sending tiny batches as fast as they can and
//     never reading an ack; once gRPC's buffers for their acks are full,
//     the aggregator must end them after ack_timeout;
//   - floods: streams sending valid 8 MiB batches back to back;
//   - garbage: connections writing random bytes;
//   - oversize: batches over max_recv_message_bytes.
//
// The aggregator must stay up, its resident memory must stay under its
// memory_limit, the batches it holds under its in-flight budget, and every
// line of the agent must be acknowledged while the attack goes on.
func TestHostileClients(t *testing.T) {
	const (
		files, perFile = 10, 2000
		slowReaders    = 4
		floods         = 4
		garbage        = 4
		oversize       = 2
		attack         = 15 * time.Second
		memoryLimit    = 256 << 20
		inFlight       = memoryLimit / 4
		floodBatch     = 8 << 20
	)
	root := harness.NodeRoot(t)
	listen, aggHTTP, agentHTTP := harness.FreePort(t), harness.FreePort(t), harness.FreePort(t)
	harness.WriteFile(t, filepath.Join(root, "aggregator.yaml"), fmt.Sprintf(`
listen: %s
http: %s
memory_limit: 256MiB
ack_timeout: 2s
sinks:
  - {type: file, path: /dev/null}
`, listen, aggHTTP))
	harness.AgentConfig{Node: "node-hostile", Root: root, HTTP: agentHTTP, Address: listen}.Write(t, filepath.Join(root, "agent.yaml"))
	agg := harness.StartProc(t, root, "aggregator", "--config", filepath.Join(root, "aggregator.yaml"))
	harness.LogTailsOnFailure(t, agg)
	harness.WaitHealthy(t, "aggregator", aggHTTP)

	ctx, cancel := context.WithTimeout(context.Background(), attack)
	defer cancel()
	var wg sync.WaitGroup
	var sent, refused, garbageConns atomic.Int64
	conn := func(opts ...grpc.DialOption) *grpc.ClientConn {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
		c, err := grpc.NewClient(listen, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// Slow readers: tiny batches, each stream on a connection of its own,
	// never calling Recv. Floods: valid 8 MiB batches, acks read and
	// dropped.
	// Slow readers send until the aggregator ends their streams (bounded by
	// a minute past the attack): on a busy machine filling their windows
	// with unread acks can take longer than the attack itself.
	slowCtx, slowCancel := context.WithTimeout(context.Background(), attack+time.Minute)
	defer slowCancel()
	var slowWG sync.WaitGroup
	for i := range slowReaders {
		// A fixed 64 KiB window (no BDP growth): the acks a slow reader
		// leaves unread fill it after a few thousand batches, so the
		// aggregator's ack_timeout must act.
		c := conn(grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
		slowWG.Add(1)
		go func() { defer slowWG.Done(); sendForever(slowCtx, c, fmt.Sprintf("slow-%d", i), 1, 10, false, &sent) }()
	}
	for i := range floods {
		c := conn()
		wg.Add(1)
		go func() { defer wg.Done(); sendForever(ctx, c, fmt.Sprintf("flood-%d", i), 8, floodBatch/8, true, &sent) }()
	}
	// Garbage: random bytes on fresh TCP connections.
	for range garbage {
		wg.Add(1)
		go func() {
			defer wg.Done()
			junk := make([]byte, 64<<10)
			for ctx.Err() == nil {
				c, err := net.DialTimeout("tcp", listen, time.Second)
				if err != nil {
					continue
				}
				rand.Read(junk)
				_ = c.SetWriteDeadline(time.Now().Add(time.Second))
				_, _ = c.Write(junk)
				c.Close()
				garbageConns.Add(1)
			}
		}()
	}
	// Oversize: 20 MiB batches against the 16 MiB default limit.
	for i := range oversize {
		c := conn()
		wg.Add(1)
		go func() {
			defer wg.Done()
			big := hostileBatch(fmt.Sprintf("big-%d", i), 1, 1, 20<<20)
			for ctx.Err() == nil {
				st, err := ferryv1.NewIngestClient(c).Stream(ctx)
				if err != nil {
					continue
				}
				_ = st.Send(big)
				if _, err := st.Recv(); status.Code(err) == codes.ResourceExhausted {
					refused.Add(1)
				}
			}
		}()
	}

	// The agent and its lines, during the attack.
	agent := harness.StartProc(t, root, "agent", "--config", filepath.Join(root, "agent.yaml"))
	harness.LogTailsOnFailure(t, agent)
	pods := harness.NewPodFiles(t, root, files)
	var maxInFlight uint64
	deadline := time.Now().Add(attack)
	for written := 0; written < perFile; {
		for i, p := range pods {
			for k := 0; k < perFile/20; k++ {
				p.Write(t, i, p.Written)
			}
		}
		written += perFile / 20
		if v, err := harness.Stat(aggHTTP, "ferry_aggregator_bytes_in_flight"); err == nil {
			maxInFlight = max(maxInFlight, v)
		}
		time.Sleep(time.Until(deadline) / 40) // pacing of the writer over the attack
	}
	total := uint64(files * perFile)
	acked := func() bool {
		if v, err := harness.Stat(aggHTTP, "ferry_aggregator_bytes_in_flight"); err == nil {
			maxInFlight = max(maxInFlight, v)
		}
		n, err := harness.AgentAcked(agentHTTP)
		return err == nil && n >= total
	}
	if !harness.Poll(time.Until(deadline)+time.Minute, 50*time.Millisecond, acked) {
		n, _ := harness.AgentAcked(agentHTTP)
		t.Fatalf("the agent got %d of %d lines acknowledged", n, total)
	}
	ackedDuring := ctx.Err() == nil
	if os.Getenv("FERRY_PPROF") == "1" {
		b, _ := harness.HTTPGet(aggHTTP, "/debug/pprof/heap")
		harness.WriteFile(t, "/tmp/agg-heap.prof", string(b))
		b, _ = harness.HTTPGet(aggHTTP, "/debug/pprof/goroutine?debug=1")
		harness.WriteFile(t, "/tmp/agg-goroutines.txt", string(b))
	}
	wg.Wait()

	if exited, err := agg.Exited(); exited {
		t.Fatalf("the aggregator exited during the attack: %v", err)
	}
	_, peak, err := agg.RSS()
	if err != nil {
		t.Fatal(err)
	}
	harness.Poll(time.Until(deadline)+time.Minute, 50*time.Millisecond, func() bool {
		n, _ := harness.Stat(aggHTTP, "ferry_aggregator_ack_timeouts_total")
		return n >= slowReaders
	})
	slowCancel()
	slowWG.Wait()
	timeouts, _ := harness.Stat(aggHTTP, "ferry_aggregator_ack_timeouts_total")
	waits, _ := harness.Stat(aggHTTP, "ferry_aggregator_budget_waits_total")
	t.Logf("attack %s: %d batches sent, %d oversize refused, %d garbage connections; agent's %d lines acked during the attack: %v; "+
		"aggregator peak RSS %d MiB (memory_limit %d MiB), batches in flight at most %d MiB sampled (budget %d MiB), %d budget waits, %d ack timeouts",
		attack, sent.Load(), refused.Load(), garbageConns.Load(), total, ackedDuring,
		peak>>20, memoryLimit>>20, maxInFlight>>20, inFlight>>20, waits, timeouts)
	if peak >= memoryLimit {
		t.Errorf("aggregator peak RSS %d MiB reached its memory_limit %d MiB", peak>>20, memoryLimit>>20)
	}
	if maxInFlight > inFlight+2*floodBatch {
		t.Errorf("batches in flight reached %d MiB, budget %d MiB", maxInFlight>>20, inFlight>>20)
	}
	if timeouts < slowReaders {
		t.Errorf("%d streams ended for not reading acks, want %d", timeouts, slowReaders)
	}
	if refused.Load() == 0 || garbageConns.Load() == 0 {
		t.Errorf("the attack did not run: %d oversize refused, %d garbage connections", refused.Load(), garbageConns.Load())
	}
	harness.StopAll(t, 30*time.Second, agent, agg)
}

// sendForever sends valid batches of n events of size bytes on one stream
// of c until it fails, counting them in sent; it reads (and drops) the acks
// only if readAcks.
func sendForever(ctx context.Context, c *grpc.ClientConn, node string, n, size int, readAcks bool, sent *atomic.Int64) {
	st, err := ferryv1.NewIngestClient(c).Stream(ctx)
	if err != nil {
		return
	}
	if readAcks {
		go func() {
			for {
				if _, err := st.Recv(); err != nil {
					return
				}
			}
		}()
	}
	for seq := uint64(1); ; seq++ {
		if err := st.Send(hostileBatch(node, seq, n, size)); err != nil {
			return
		}
		sent.Add(1)
	}
}

// hostileBatch is a valid batch of n events with messages of size bytes.
func hostileBatch(node string, seq uint64, n, size int) *ferryv1.Batch {
	b := &ferryv1.Batch{Seq: seq, Node: node}
	msg := make([]byte, size)
	for i := range msg {
		msg[i] = 'a' + byte(i%26)
	}
	for i := range n {
		id := make([]byte, 16)
		copy(id, fmt.Sprintf("%s-%d-%d", node, seq, i))
		b.Events = append(b.Events, &ferryv1.Event{Id: id, TimeUnixNano: time.Now().UnixNano(), Message: msg})
	}
	return b
}
