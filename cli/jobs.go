package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tenon-dev/tenon"
)

const jobsUsage = `Usage: tenon jobs list [-queue Q] [-state pending|running|done|dead] [-after ID] [-limit N] [-json] [store flags]
       tenon jobs retry [store flags] ID...

list shows queued jobs (webhooks, events) in id order; -state dead shows
the dead letters. retry makes dead jobs pending again with fresh attempts.
The store flags are serve's: --db, --secret-key-file, --config (or their
environment variables).
`

// runJobs inspects the job queue of the configured store.
func runJobs(ctx context.Context, env Env, _ App, args []string) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "retry") {
		if len(args) > 0 && isHelp(args[0]) {
			// The flags of list, which has them all.
			args = []string{"list", "-h"}
		} else {
			fmt.Fprint(env.Stderr, env.help(jobsUsage))
			return errors.New("name a subcommand: list or retry")
		}
	}
	sub := args[0]
	fs := flag.NewFlagSet("jobs "+sub, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprint(env.Stderr, env.help(jobsUsage))
		fmt.Fprintln(env.Stderr, "\nFlags:")
		printFlags(env.Stderr, fs)
	}
	defineStoreFlags(fs, true)
	var f tenon.JobFilter
	var state string
	var asJSON bool
	if sub == "list" {
		fs.StringVar(&f.Queue, "queue", "", "only jobs of this queue, e.g. webhook:jira:issue_deleted")
		fs.StringVar(&state, "state", "", "only jobs in this state: pending, running, done or dead")
		fs.Int64Var(&f.AfterID, "after", 0, "only jobs with a greater id (paging)")
		fs.IntVar(&f.Limit, "limit", 100, "at most this many jobs")
		fs.BoolVar(&asJSON, "json", false, "one JSON object per job, payload included")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	f.State = tenon.JobState(state)
	var ids []int64
	if sub == "retry" {
		if fs.NArg() == 0 {
			return errors.New("name the ids of the dead jobs to retry")
		}
		for _, a := range fs.Args() {
			id, err := strconv.ParseInt(a, 10, 64)
			if err != nil || id <= 0 {
				return fmt.Errorf("%q is not a job id", a)
			}
			ids = append(ids, id)
		}
	} else if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}

	st, err := openExistingStore(ctx, env, fs, true)
	if err != nil {
		return err
	}
	defer st.Close()
	admin, ok := st.(tenon.JobAdmin)
	if !ok {
		return fmt.Errorf("the store (%T) cannot list jobs", st)
	}
	if sub == "retry" {
		return retryJobs(ctx, env.Stdout, admin, ids)
	}
	jobs, err := admin.Jobs(ctx, f)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJobsJSON(env.Stdout, jobs)
	}
	return writeJobsTable(env.Stdout, jobs)
}

func retryJobs(ctx context.Context, w io.Writer, admin tenon.JobAdmin, ids []int64) error {
	var failed []string
	for _, id := range ids {
		if err := admin.Requeue(ctx, id); err != nil {
			failed = append(failed, fmt.Sprintf("job %d: %s", id, tenon.ErrorMessage(err)))
			continue
		}
		fmt.Fprintf(w, "job %d is pending again\n", id)
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	return nil
}

func writeJobsTable(w io.Writer, jobs []tenon.Job) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tQUEUE\tSTATE\tATTEMPTS\tRUN AT\tSITE\tLAST ERROR")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\n", j.ID, j.Queue, j.State, j.Attempts,
			j.RunAt.Format(time.RFC3339), j.ClientKey, oneLine(j.LastError, 100))
	}
	return tw.Flush()
}

func writeJobsJSON(w io.Writer, jobs []tenon.Job) error {
	enc := json.NewEncoder(w)
	for _, j := range jobs {
		out := struct {
			ID        int64           `json:"id"`
			Queue     string          `json:"queue"`
			ClientKey string          `json:"clientKey,omitempty"`
			DedupeKey string          `json:"dedupeKey,omitempty"`
			State     tenon.JobState  `json:"state"`
			Attempts  int             `json:"attempts"`
			RunAt     time.Time       `json:"runAt"`
			LastError string          `json:"lastError,omitempty"`
			CreatedAt time.Time       `json:"createdAt"`
			UpdatedAt time.Time       `json:"updatedAt"`
			Payload   json.RawMessage `json:"payload,omitempty"`
		}{j.ID, j.Queue, j.ClientKey, j.DedupeKey, j.State, j.Attempts, j.RunAt, j.LastError, j.CreatedAt, j.UpdatedAt, j.Payload}
		if err := enc.Encode(out); err != nil {
			return err
		}
	}
	return nil
}

// oneLine fits s on one table line of at most n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
