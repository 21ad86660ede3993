// Command sysloggen sends a bounded number of HAProxy request log lines to a
// syslog listener on loopback, over TCP (newline framing, as HAProxy does;
// or -octets) or UDP (flat out, or at -rate per second), and says how long
// it took. With the agent's /stats (ferry_agent_syslog_received_total,
// ferry_agent_syslog_dropped_total, ferry_agent_events_acked_total) it
// measures what the agent takes without loss:
//
//	go run ./test/sysloggen -net tcp -addr 127.0.0.1:5514 -n 200000
//	go run ./test/sysloggen -net udp -addr 127.0.0.1:5515 -n 200000 -rate 50000
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"time"
)

// line is a HAProxy httplog line as HAProxy sends it (RFC 3164), 230 bytes.
const line = `<134>Nov 30 11:25:44 haproxy[13509]: 81.2.69.142:40001 [30/Nov/2026:11:25:44.260] fe_http be_app/app1 0/0/0/1/1 200 128 - - ---- 1/1/0/0/0 0/0 {example.com|test/1.0} {r1} "GET /index.html?a=1&b=two HTTP/1.1"`

func main() {
	network := flag.String("net", "tcp", "tcp or udp")
	addr := flag.String("addr", "127.0.0.1:5514", "the syslog listener")
	n := flag.Int("n", 100000, "messages to send (at most 100 million)")
	rate := flag.Int("rate", 0, "messages per second; 0: as fast as the connection takes them")
	octets := flag.Bool("octets", false, "TCP: octet counting instead of newline framing")
	flag.Parse()
	if *n < 0 || *n > 100_000_000 || (*network != "tcp" && *network != "udp") {
		flag.Usage()
		os.Exit(2)
	}
	c, err := net.Dial(*network, *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer c.Close()
	start := time.Now()
	pace := func(i int) {
		if *rate > 0 && i%100 == 99 {
			time.Sleep(time.Until(start.Add(time.Duration(i+1) * time.Second / time.Duration(*rate))))
		}
	}
	if *network == "tcp" {
		w := bufio.NewWriterSize(c, 64<<10)
		for i := range *n {
			if *octets {
				fmt.Fprintf(w, "%d ", len(line))
				w.WriteString(line)
			} else {
				w.WriteString(line)
				w.WriteByte('\n')
			}
			pace(i)
		}
		if err := w.Flush(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	} else {
		for i := range *n {
			if _, err := c.Write([]byte(line)); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			pace(i)
		}
	}
	d := time.Since(start)
	fmt.Printf("sent %d messages over %s in %v (%.0f/s)\n", *n, *network, d.Round(time.Millisecond), float64(*n)/d.Seconds())
}
