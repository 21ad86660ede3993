package multiline

import (
	"strings"
	"testing"
	"time"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// feed pushes the lines of text (split at '\n', offsets as in a file) to a
// Joiner of spec and returns the events, the last group flushed at the end.
func feed(t *testing.T, spec *Spec, text string) []Event {
	t.Helper()
	j := NewJoiner(spec)
	var out []Event
	collect := func() {
		for _, e := range j.Ready() {
			e.Msg = append([]byte(nil), e.Msg...)
			out = append(out, e)
		}
	}
	off := int64(0)
	for _, line := range strings.SplitAfter(text, "\n") {
		if line == "" {
			continue
		}
		l := Line{Off: off, End: off + int64(len(line)), Time: off}
		msg := []byte(strings.TrimSuffix(line, "\n"))
		off += int64(len(line))
		alone := j.Push(l, msg, 0)
		collect()
		if alone {
			out = append(out, Event{Line: l, Lines: 1, Msg: msg})
		}
	}
	j.Flush()
	collect()
	return out
}

func mustSpec(t testing.TB, c Config) *Spec {
	t.Helper()
	if c.MaxBytes == 0 {
		c.MaxBytes = 256 << 10
	}
	s, err := Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const springTrace = `java.lang.IllegalStateException: Failed to process order 42
	at com.example.shop.OrderService.process(OrderService.java:87) ~[classes/:na]
	at com.example.shop.OrderController.create(OrderController.java:41) ~[classes/:na]
	at java.base/jdk.internal.reflect.DirectMethodHandleAccessor.invoke(DirectMethodHandleAccessor.java:103) ~[na:na]
	at org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:885) ~[spring-webmvc-6.1.2.jar:6.1.2]
	at java.base/java.lang.Thread.run(Thread.java:1583) ~[na:na]
Caused by: org.springframework.dao.DataIntegrityViolationException: could not execute statement; SQL [n/a]; constraint [uk_order_ref]
	at org.springframework.orm.jpa.vendor.HibernateJpaDialect.convertHibernateAccessException(HibernateJpaDialect.java:290) ~[spring-orm-6.1.2.jar:6.1.2]
	at com.example.shop.OrderService.process(OrderService.java:80) ~[classes/:na]
	... 12 more
	Suppressed: java.lang.RuntimeException: rollback failed
		at com.example.shop.Tx.rollback(Tx.java:12) ~[classes/:na]
		... 14 more
Caused by: java.sql.SQLIntegrityConstraintViolationException: Duplicate entry 'A-42' for key 'uk_order_ref'
	at com.mysql.cj.jdbc.exceptions.SQLError.createSQLException(SQLError.java:118) ~[mysql-connector-j-8.2.0.jar:8.2.0]
	... 3 common frames omitted`

const pythonTrace = `Traceback (most recent call last):
  File "/app/worker.py", line 12, in handle
    value = int(payload["count"])
            ~~~~~~~^^^^^^^^^
KeyError: 'count'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/app/worker.py", line 30, in <module>
    handle({})
  File "/app/worker.py", line 14, in handle
    raise ValueError("bad payload") from None
ValueError: bad payload

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/app/main.py", line 3, in <module>
    run()
app.errors.JobFailed: job 7 failed`

const goTrace = `panic: runtime error: invalid memory address or nil pointer dereference
[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x47e2a5]

goroutine 1 [running]:
main.(*Server).handle(0x0, {0x4d8f20, 0xc000012345})
	/app/server.go:42 +0x25
main.main()
	/app/main.go:17 +0x1d

goroutine 18 [chan receive, 2 minutes]:
main.worker(0xc00001e0c0)
	/app/worker.go:9 +0x3b
created by main.main in goroutine 1
	/app/main.go:12 +0x8f

goroutine 19 [select]:
net/http.(*persistConn).writeLoop(0xc0000b8000)
	/usr/local/go/src/net/http/transport.go:2421 +0xe5
created by net/http.(*Transport).dialConn in goroutine 7
	/usr/local/go/src/net/http/transport.go:1777 +0x16f1`

const dotnetTrace = `Unhandled exception. System.InvalidOperationException: Order 42 cannot be shipped
 ---> System.ArgumentNullException: Value cannot be null. (Parameter 'address')
   at Shop.Address.Validate(String line) in /src/Shop/Address.cs:line 18
   at Shop.Order.Ship() in /src/Shop/Order.cs:line 51
   --- End of inner exception stack trace ---
   at Shop.Order.Ship() in /src/Shop/Order.cs:line 55
--- End of stack trace from previous location ---
   at Shop.Program.Main(String[] args) in /src/Shop/Program.cs:line 9`

const rubyTrace = `/app/lib/cart.rb:14:in 'Cart#total': undefined method 'price' for nil (NoMethodError)
	from /app/lib/cart.rb:9:in 'Array#each'
	from /app/lib/cart.rb:9:in 'Cart#total'
	from /app/bin/checkout:5:in '<main>'`

// TestBuiltinRules: each real trace is exactly one event with its exact
// text, the log lines around it stay events of their own.
func TestBuiltinRules(t *testing.T) {
	const before = "2024-05-01T10:00:00.123Z ERROR 1 --- [nio-8080-exec-1] c.e.shop.OrderController : request failed"
	const after = "2024-05-01T10:00:00.200Z  INFO 1 --- [nio-8080-exec-2] c.e.shop.OrderController : next request"
	for _, tc := range []struct {
		rule, trace string
		lines       int
	}{
		{RuleJava, springTrace, 16},
		{RulePython, pythonTrace, 21},
		{RuleGo, goTrace, 20},
		{RuleDotnet, dotnetTrace, 8},
		{RuleRuby, rubyTrace, 4},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			spec := mustSpec(t, Config{Rule: tc.rule})
			evs := feed(t, spec, before+"\n"+tc.trace+"\n"+after+"\n"+tc.trace+"\n")
			want := []string{before, tc.trace, after, tc.trace}
			if len(evs) != len(want) {
				for _, e := range evs {
					t.Logf("event %d lines: %q", e.Lines, e.Msg)
				}
				t.Fatalf("%d events, want %d", len(evs), len(want))
			}
			for i, e := range evs {
				if string(e.Msg) != want[i] {
					t.Errorf("event %d:\n%s\nwant:\n%s", i, e.Msg, want[i])
				}
			}
			tr := evs[1]
			if tr.Lines != tc.lines || tr.Flags&uint32(ferryv1.Flag_FLAG_MULTILINE) == 0 || tr.Flags&uint32(ferryv1.Flag_FLAG_TRUNCATED) != 0 {
				t.Errorf("trace: %d lines, flags %b; want %d lines, multiline", tr.Lines, tr.Flags, tc.lines)
			}
			if wantOff := int64(len(before) + 1); tr.Off != wantOff || tr.End != wantOff+int64(len(tc.trace)+1) || tr.Time != wantOff {
				t.Errorf("trace at %d..%d time %d, want %d..%d, time of its first line", tr.Off, tr.End, tr.Time, wantOff, wantOff+int64(len(tc.trace)+1))
			}
			if evs[0].Lines != 1 || evs[0].Flags != 0 {
				t.Errorf("line before the trace: %d lines, flags %b", evs[0].Lines, evs[0].Flags)
			}
		})
	}
}

// TestRuleEdges: what ends a group, what does not start one.
func TestRuleEdges(t *testing.T) {
	for _, tc := range []struct {
		name, rule, in string
		want           []string
	}{
		{"spring root cause line and blank stay apart", RuleJava,
			"2024 ERROR [dispatcherServlet] : Servlet.service() threw exception [Request processing failed: java.lang.IllegalStateException: boom] with root cause\n\njava.lang.IllegalStateException: boom\n\tat a.B.c(B.java:1)\n",
			[]string{"2024 ERROR [dispatcherServlet] : Servlet.service() threw exception [Request processing failed: java.lang.IllegalStateException: boom] with root cause", "", "java.lang.IllegalStateException: boom\n\tat a.B.c(B.java:1)"}},
		{"java thread header", RuleJava,
			"Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space\n\tat a.B.c(B.java:1)\nnext\n",
			[]string{"Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space\n\tat a.B.c(B.java:1)", "next"}},
		{"two traces back to back", RuleJava,
			"a.BException: one\n\tat x.Y.z(Y.java:1)\na.CError\n\tat x.Y.z(Y.java:2)\n",
			[]string{"a.BException: one\n\tat x.Y.z(Y.java:1)", "a.CError\n\tat x.Y.z(Y.java:2)"}},
		{"words ending in Error are not a start", RuleJava,
			"Error: disk full\n\tat nothing\n",
			[]string{"Error: disk full", "\tat nothing"}},
		{"python blank after the error not followed by a chain", RulePython,
			"Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\nZeroDivisionError: division by zero\n\nINFO done\n",
			[]string{"Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\nZeroDivisionError: division by zero", "", "INFO done"}},
		{"python logging line before", RulePython,
			"ERROR:root:job failed\nTraceback (most recent call last):\n  File \"x.py\", line 1, in <module>\nKeyboardInterrupt\nINFO:root:next\n",
			[]string{"ERROR:root:job failed", "Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\nKeyboardInterrupt", "INFO:root:next"}},
		{"go blank then a log line", RuleGo,
			"panic: boom\n\ngoroutine 1 [running]:\nmain.main()\n\t/app/main.go:3 +0x1\n\n2024/05/01 10:00:00 restarted\n",
			[]string{"panic: boom\n\ngoroutine 1 [running]:\nmain.main()\n\t/app/main.go:3 +0x1", "", "2024/05/01 10:00:00 restarted"}},
		{"go http panic serving", RuleGo,
			"2024/05/01 10:00:00 http: panic serving 10.0.0.1:4242: boom\ngoroutine 7 [running]:\nnet/http.(*conn).serve.func1()\n\t/usr/local/go/src/net/http/server.go:1898 +0xbe\n2024/05/01 10:00:01 ok\n",
			[]string{"2024/05/01 10:00:00 http: panic serving 10.0.0.1:4242: boom\ngoroutine 7 [running]:\nnet/http.(*conn).serve.func1()\n\t/usr/local/go/src/net/http/server.go:1898 +0xbe", "2024/05/01 10:00:01 ok"}},
		{"go fatal error", RuleGo,
			"fatal error: all goroutines are asleep - deadlock!\n\ngoroutine 1 [chan receive]:\nmain.main()\n\t/app/main.go:5 +0x2d\n",
			[]string{"fatal error: all goroutines are asleep - deadlock!\n\ngoroutine 1 [chan receive]:\nmain.main()\n\t/app/main.go:5 +0x2d"}},
		{"rails error", RuleRuby,
			"Started GET \"/\"\nNoMethodError (undefined method 'x' for nil):\n  app/controllers/home_controller.rb:5:in 'index'\n  \n  app/controllers/home_controller.rb:3:in 'show'\nCompleted 500\n",
			[]string{"Started GET \"/\"", "NoMethodError (undefined method 'x' for nil):\n  app/controllers/home_controller.rb:5:in 'index'\n  \n  app/controllers/home_controller.rb:3:in 'show'", "Completed 500"}},
		{"aspnet core indented", RuleDotnet,
			"fail: Microsoft.AspNetCore.Server.Kestrel[13]\n      System.Exception: boom\n         at Web.Get() in /src/W.cs:line 3\ninfo: next\n",
			[]string{"fail: Microsoft.AspNetCore.Server.Kestrel[13]", "      System.Exception: boom\n         at Web.Get() in /src/W.cs:line 3", "info: next"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs := feed(t, mustSpec(t, Config{Rule: tc.rule}), tc.in)
			var got []string
			for _, e := range evs {
				got = append(got, string(e.Msg))
			}
			if strings.Join(got, "\x00") != strings.Join(tc.want, "\x00") {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestCustom: start and continue regexes, with and without negate.
func TestCustom(t *testing.T) {
	in := "leftover\n2024-05-01 first\n  detail\n  more\n2024-05-01 second\n2024-05-01 third\n  x\n"
	for _, tc := range []struct {
		name string
		c    Config
		want []string
	}{
		{"start", Config{Start: `^\d{4}-\d{2}-\d{2}`},
			[]string{"leftover", "2024-05-01 first\n  detail\n  more", "2024-05-01 second", "2024-05-01 third\n  x"}},
		{"continue", Config{Continue: `^\s`},
			[]string{"leftover", "2024-05-01 first\n  detail\n  more", "2024-05-01 second", "2024-05-01 third\n  x"}},
		{"continue negate", Config{Continue: `^\d{4}-`, Negate: true},
			[]string{"leftover", "2024-05-01 first\n  detail\n  more", "2024-05-01 second", "2024-05-01 third\n  x"}},
		{"start negate", Config{Start: `^\s`, Negate: true},
			[]string{"leftover", "2024-05-01 first\n  detail\n  more", "2024-05-01 second", "2024-05-01 third\n  x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.Rule = RuleCustom
			var got []string
			for _, e := range feed(t, mustSpec(t, tc.c), in) {
				got = append(got, string(e.Msg))
			}
			if strings.Join(got, "\x00") != strings.Join(tc.want, "\x00") {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestCutByLimits: a trace longer than max_lines or max_bytes continues as
// new events, every part flagged truncated, no line lost, each part
// carrying the offset of its own first line.
func TestCutByLimits(t *testing.T) {
	trace := "java.lang.RuntimeException: x\n"
	for i := 0; i < 9; i++ {
		trace += "\tat a.B.m" + string(rune('0'+i)) + "(B.java:1)\n"
	}
	for _, c := range []Config{{Rule: RuleJava, MaxLines: 4}, {Rule: RuleJava, MaxBytes: 80}} {
		evs := feed(t, mustSpec(t, c), trace+"after\n")
		var joined []string
		total := 0
		for i, e := range evs[:len(evs)-1] {
			joined = append(joined, string(e.Msg))
			total += e.Lines
			if e.Flags&uint32(ferryv1.Flag_FLAG_TRUNCATED) == 0 {
				t.Errorf("%+v: part %d not flagged truncated", c, i)
			}
			if c.MaxLines > 0 && e.Lines > c.MaxLines || c.MaxBytes > 0 && len(e.Msg) > c.MaxBytes {
				t.Errorf("%+v: part %d has %d lines, %d bytes", c, i, e.Lines, len(e.Msg))
			}
			if i > 0 && e.Off != evs[i-1].End {
				t.Errorf("%+v: part %d starts at %d, the one before ends at %d", c, i, e.Off, evs[i-1].End)
			}
		}
		if got := strings.Join(joined, "\n") + "\n"; got != trace || total != 10 || len(evs) < 3 {
			t.Errorf("%+v: %d parts, %d lines, text\n%s", c, len(evs)-1, total, got)
		}
		if last := evs[len(evs)-1]; string(last.Msg) != "after" || last.Flags != 0 {
			t.Errorf("%+v: last event %q flags %b", c, last.Msg, last.Flags)
		}
	}
}

// TestStaleFlush: an open group is stale after flush_after without a line.
func TestStaleFlush(t *testing.T) {
	j := NewJoiner(mustSpec(t, Config{Rule: RuleJava, FlushAfter: 2 * time.Second}))
	if !j.Push(Line{Off: 0, End: 5}, []byte("hello"), 0) {
		t.Fatal("a plain line was held")
	}
	j.Push(Line{Off: 5, End: 20}, []byte("a.BException: x"), 100)
	j.Push(Line{Off: 20, End: 30}, []byte("\tat a.B.c()"), int64(time.Second))
	if off, ok := j.Open(); !ok || off != 5 {
		t.Fatalf("Open = %d, %v", off, ok)
	}
	if j.Stale(int64(2*time.Second)) || !j.Stale(int64(3*time.Second)) {
		t.Fatal("stale before flush_after after the last line, or not after")
	}
	j.Flush()
	if evs := j.Ready(); len(evs) != 1 || string(evs[0].Msg) != "a.BException: x\n\tat a.B.c()" || evs[0].Lines != 2 {
		t.Fatalf("flushed %+v", evs)
	}
	if _, ok := j.Open(); ok {
		t.Fatal("open after Flush")
	}
}

func TestCompileErrors(t *testing.T) {
	for _, c := range []Config{
		{Rule: "perl", MaxBytes: 1024},
		{Rule: RuleCustom, MaxBytes: 1024},
		{Rule: RuleCustom, Start: "a", Continue: "b", MaxBytes: 1024},
		{Rule: RuleCustom, Start: "(", MaxBytes: 1024},
		{Rule: RuleJava, MaxLines: 1, MaxBytes: 1024},
		{Rule: RuleJava},
	} {
		if _, err := Compile(c); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	if s, err := Compile(Config{Rule: RuleNone, MaxBytes: 1}); s != nil || err != nil {
		t.Errorf("none: %v, %v", s, err)
	}
}

func TestFromAnnotations(t *testing.T) {
	a := map[string]string{"ferry.io/multiline": "java", "ferry.io/multiline.worker": "python", "other": "x"}
	for _, tc := range []struct {
		ann       map[string]string
		container string
		want      string
	}{
		{a, "app", "java"},
		{a, "worker", "python"},
		{a, "", "java"},
		{map[string]string{"ferry.io/multiline.worker": "go"}, "app", ""},
		{nil, "app", ""},
	} {
		if got := FromAnnotations(tc.ann, tc.container); got != tc.want {
			t.Errorf("FromAnnotations(%v, %q) = %q, want %q", tc.ann, tc.container, got, tc.want)
		}
	}
}

// TestAlone: Alone agrees with Push on lines that stand alone, and is
// false while a group is open.
func TestAlone(t *testing.T) {
	j := NewJoiner(mustSpec(t, Config{Rule: RuleJava}))
	if !j.Alone([]byte("2024 INFO x")) || j.Alone([]byte("a.BException: x")) {
		t.Fatal("Alone wrong in state 0")
	}
	j.Push(Line{}, []byte("a.BException: x"), 0)
	if j.Alone([]byte("2024 INFO x")) {
		t.Fatal("Alone while a group is open")
	}
}

// TestGroupFlags: a group has the flags of all its lines, but a time out of
// range only if its first line's time is (the event's time is the first
// line's).
func TestGroupFlags(t *testing.T) {
	oor := uint32(ferryv1.Flag_FLAG_TIMESTAMP_OUT_OF_RANGE)
	utf8 := uint32(ferryv1.Flag_FLAG_INVALID_UTF8)
	j := NewJoiner(mustSpec(t, Config{Rule: RuleJava}))
	j.Push(Line{Off: 0, End: 10, Time: 7}, []byte("a.BException: x"), 0)
	j.Push(Line{Off: 10, End: 20, Time: 8, Flags: oor | utf8, OrigTime: "9999-12-31"}, []byte("\tat a.B.c()"), 0)
	j.Flush()
	e := j.Ready()[0]
	if e.Flags != utf8|uint32(ferryv1.Flag_FLAG_MULTILINE) || e.Time != 7 || e.OrigTime != "" {
		t.Fatalf("flags %b time %d orig %q", e.Flags, e.Time, e.OrigTime)
	}
	j.Push(Line{Off: 20, End: 30, Flags: oor, OrigTime: "9999-12-31"}, []byte("a.BException: x"), 0)
	j.Push(Line{Off: 30, End: 40}, []byte("\tat a.B.c()"), 0)
	j.Flush()
	if e := j.Ready()[0]; e.Flags != oor|uint32(ferryv1.Flag_FLAG_MULTILINE) || e.OrigTime != "9999-12-31" {
		t.Fatalf("first line out of range: flags %b orig %q", e.Flags, e.OrigTime)
	}
}
