package multiline

import (
	"fmt"
	"testing"
)

// BenchmarkJoinerJava pushes the lines of a Java service (a 12-line trace
// every 200 lines) through a Joiner as the follower does: Alone first,
// Push and Ready for the rest. It measures what the java rule adds per
// line.
func BenchmarkJoinerJava(b *testing.B) {
	var lines [][]byte
	for i := 0; i < 200; i++ {
		lines = append(lines, []byte(fmt.Sprintf("2024-05-01 12:00:00.123  INFO 1 --- [exec-%d] c.e.OrderController : GET /api/v1/orders/%07d 200 1.23ms", i%16, i)))
	}
	trace := []string{"java.lang.IllegalStateException: order 1"}
	for k := 0; k < 8; k++ {
		trace = append(trace, fmt.Sprintf("\tat com.example.shop.OrderService.step%d(OrderService.java:%d) ~[classes/:na]", k, 80+k))
	}
	trace = append(trace, "Caused by: java.sql.SQLException: duplicate key", "\t... 12 more")
	for _, l := range trace {
		lines = append(lines, []byte(l))
	}
	j := NewJoiner(mustSpec(b, Config{Rule: RuleJava}))
	var off int64
	b.ReportAllocs()
	for b.Loop() {
		for _, l := range lines {
			if !j.Alone(l) {
				j.Push(Line{Off: off, End: off + int64(len(l)) + 1}, l, 0)
				_ = j.Ready()
			}
			off += int64(len(l)) + 1
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(lines)), "ns/line")
}
