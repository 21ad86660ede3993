package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ferrylogs/ferry/alerting/esq"
	"github.com/ferrylogs/ferry/alerting/notify"
)

const silenceUsage = `usage: aggregator silence add [--config FILE] [--duration 2h] [--author NAME] [--comment TEXT] MATCHER...
       aggregator silence list [--config FILE] [--all]
       aggregator silence expire [--config FILE] ID...

MATCHER is an Alertmanager matcher: name="value", name!="value", name=~"regexp", name!~"regexp".
Silences are kept in the Elasticsearch index ferry-alerting-silences of alerting.elasticsearch;
the running aggregator applies them within 5 seconds. The same operations are served over HTTP
on the aggregator's http address at /api/silences.
`

// silenceCmd is `aggregator silence add|list|expire`.
func silenceCmd(args []string) int {
	return silenceRun(context.Background(), args, os.Stdout, os.Stderr, time.Now)
}

func silenceRun(ctx context.Context, args []string, stdout, stderr io.Writer, now func() time.Time) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, silenceUsage)
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("aggregator silence "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	duration := fs.Duration("duration", 2*time.Hour, "how long the silence lasts (add)")
	author := fs.String("author", os.Getenv("USER"), "who adds the silence (add)")
	comment := fs.String("comment", "", "why (add)")
	all := fs.Bool("all", false, "list expired silences too (list)")
	// Flags and operands in any order.
	var operands []string
	rest := args[1:]
	for {
		if err := fs.Parse(rest); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		operands = append(operands, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if cfg.Alerting == nil {
		fmt.Fprintln(stderr, "aggregator: silence: the configuration has no alerting block (use --config)")
		return 1
	}
	es, err := esq.New(cfg.Alerting.Elasticsearch)
	if err != nil {
		fmt.Fprintln(stderr, "aggregator: silence:", err)
		return 1
	}
	store := &notify.ESStore{ES: es}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := silence(ctx, store, sub, operands, silenceFlags{*duration, *author, *comment, *all}, stdout, now()); err != nil {
		fmt.Fprintln(stderr, "aggregator: silence "+sub+":", err)
		if errors.Is(err, errUsage) {
			fmt.Fprint(stderr, silenceUsage)
			return 2
		}
		return 1
	}
	return 0
}

var errUsage = errors.New("bad usage")

type silenceFlags struct {
	duration        time.Duration
	author, comment string
	all             bool
}

func silence(ctx context.Context, store notify.SilenceStore, sub string, operands []string, f silenceFlags, out io.Writer, now time.Time) error {
	switch sub {
	case "add":
		s, err := notify.NewSilence(operands, now, f.duration, f.author, f.comment)
		if err != nil {
			return err
		}
		if err := store.Put(ctx, s); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s\n", s.ID)
	case "list":
		if len(operands) > 0 {
			return fmt.Errorf("%w: list takes no operands", errUsage)
		}
		ss, err := store.List(ctx)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tSTATE\tENDS\tMATCHERS\tAUTHOR\tCOMMENT")
		for _, s := range ss {
			state := "active"
			switch {
			case !s.EndsAt.After(now):
				state = "expired"
			case s.StartsAt.After(now):
				state = "pending"
			}
			if state == "expired" && !f.all {
				continue
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, state, s.EndsAt.Local().Format(time.RFC3339), strings.Join(s.Matchers, ","), s.CreatedBy, s.Comment)
		}
		return w.Flush()
	case "expire":
		if len(operands) == 0 {
			return fmt.Errorf("%w: expire needs the ID of a silence", errUsage)
		}
		for _, id := range operands {
			s, err := notify.Expire(ctx, store, id, now)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%s expired at %s\n", s.ID, s.EndsAt.Local().Format(time.RFC3339))
		}
	default:
		return fmt.Errorf("%w: unknown subcommand %q", errUsage, sub)
	}
	return nil
}
