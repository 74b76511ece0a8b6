package backup_test

import (
	"slices"
	"testing"
	"time"

	"github.com/tenon-dev/tenon/backup"
)

func day(s string) time.Time {
	t, err := time.Parse("2006-01-02T15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

func days(ss ...string) []time.Time {
	var out []time.Time
	for _, s := range ss {
		out = append(out, day(s))
	}
	return out
}

func TestPruneTable(t *testing.T) {
	tests := []struct {
		name string
		have []time.Time
		now  time.Time
		r    backup.Retention
		keep []time.Time
	}{
		{
			name: "empty",
			now:  day("2026-01-01T00:00"),
			r:    backup.DefaultRetention,
		},
		{
			name: "newest of a day wins",
			have: days("2026-03-10T01:00", "2026-03-10T13:00", "2026-03-09T01:00"),
			now:  day("2026-03-10T14:00"),
			r:    backup.Retention{Daily: 2},
			keep: days("2026-03-10T13:00", "2026-03-09T01:00"),
		},
		{
			name: "days without snapshots do not count",
			have: days("2026-03-10T01:00", "2026-03-01T01:00", "2026-02-20T01:00"),
			now:  day("2026-03-10T02:00"),
			r:    backup.Retention{Daily: 2},
			keep: days("2026-03-10T01:00", "2026-03-01T01:00"),
		},
		{
			name: "ISO week across the year boundary",
			// 2026-12-31 (Thu) and 2027-01-03 (Sun) are both in ISO week 53 of 2026.
			have: days("2027-01-03T01:00", "2026-12-31T01:00", "2026-12-27T01:00"),
			now:  day("2027-01-03T02:00"),
			r:    backup.Retention{Weekly: 2},
			keep: days("2027-01-03T01:00", "2026-12-27T01:00"),
		},
		{
			name: "months across the year boundary",
			have: days("2027-01-02T01:00", "2026-12-31T01:00", "2026-12-01T01:00", "2026-11-30T01:00", "2026-10-31T01:00"),
			now:  day("2027-01-02T02:00"),
			r:    backup.Retention{Monthly: 3},
			keep: days("2027-01-02T01:00", "2026-12-31T01:00", "2026-11-30T01:00"),
		},
		{
			name: "nothing configured keeps only the newest",
			have: days("2026-05-02T01:00", "2026-05-01T01:00"),
			now:  day("2026-05-02T02:00"),
			keep: days("2026-05-02T01:00"),
		},
		{
			name: "a snapshot from the future is kept",
			have: days("2026-05-09T01:00", "2026-05-02T01:00", "2026-05-01T01:00"),
			now:  day("2026-05-02T02:00"),
			r:    backup.Retention{Daily: 1},
			keep: days("2026-05-09T01:00", "2026-05-02T01:00"),
		},
		{
			name: "rules overlap",
			have: days("2026-02-01T01:00", "2026-01-31T01:00", "2026-01-30T01:00"),
			now:  day("2026-02-01T02:00"),
			r:    backup.Retention{Daily: 1, Weekly: 1, Monthly: 2},
			// Feb 1 is day, week and month; Jan 31 is January's newest.
			keep: days("2026-02-01T01:00", "2026-01-31T01:00"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keep, drop := backup.Prune(tt.have, tt.now, tt.r)
			if !slices.EqualFunc(keep, tt.keep, time.Time.Equal) {
				t.Fatalf("keep = %v, want %v", keep, tt.keep)
			}
			if len(keep)+len(drop) != len(tt.have) {
				t.Fatalf("keep %d + drop %d != %d", len(keep), len(drop), len(tt.have))
			}
		})
	}
}

// TestPruneDailyForAYearAndAHalf takes one snapshot a day on an injected
// clock from mid-November 2025 to May 2027, pruning after each as serve
// does, and checks what is left: 7 daily, 4 weekly, 12 monthly.
func TestPruneDailyForAYearAndAHalf(t *testing.T) {
	now := day("2025-11-15T03:00")
	end := day("2027-05-20T03:00")
	var have []time.Time
	for ; !now.After(end); now = now.AddDate(0, 0, 1) {
		have = append(have, now)
		have, _ = backup.Prune(have, now, backup.DefaultRetention)
	}
	now = now.AddDate(0, 0, -1)
	want := map[time.Time]bool{}
	for i := 0; i < 7; i++ {
		want[now.AddDate(0, 0, -i)] = true
	}
	// Newest of each of the last 4 ISO weeks: the 2027-05-20 is a
	// Thursday, so the Sundays before it close the three weeks before.
	for _, s := range []string{"2027-05-16T03:00", "2027-05-09T03:00", "2027-05-02T03:00"} {
		want[day(s)] = true
	}
	// Last day of each of the 11 months before May 2027, May itself
	// being today; across the 2026/2027 year boundary.
	for m := 1; m <= 11; m++ {
		firstOfNext := time.Date(2027, time.Month(5-m+1), 1, 3, 0, 0, 0, time.UTC)
		want[firstOfNext.AddDate(0, 0, -1)] = true
	}
	got := map[time.Time]bool{}
	for _, h := range have {
		got[h] = true
	}
	for w := range want {
		if !got[w] {
			t.Errorf("missing %s", w.Format(time.DateOnly))
		}
	}
	for g := range got {
		if !want[g] {
			t.Errorf("kept %s, not wanted", g.Format(time.DateOnly))
		}
	}
	if len(have) != len(want) {
		t.Errorf("kept %d snapshots, want %d", len(have), len(want))
	}
}
