package backup

import (
	"sort"
	"time"
)

// Retention says how many snapshots grandfather-father-son pruning keeps:
// the newest snapshot of each of the Daily most recent days that have one,
// of each of the Weekly most recent ISO weeks, and of each of the Monthly
// most recent months. A snapshot chosen by any rule is kept.
type Retention struct {
	Daily, Weekly, Monthly int
}

// DefaultRetention keeps 7 daily, 4 weekly and 12 monthly snapshots.
var DefaultRetention = Retention{Daily: 7, Weekly: 4, Monthly: 12}

// Prune splits snapshot times into those to keep and those to delete,
// both newest first. Calendar buckets are taken in UTC so every node
// agrees. The newest snapshot is always kept, and so is any dated after
// now (a clock that jumped back must not delete the newest backups).
// Keeping the newest of each bucket makes pruning stable: a snapshot
// deleted today would never have been chosen on a later day either.
func Prune(times []time.Time, now time.Time, r Retention) (keep, drop []time.Time) {
	sorted := append([]time.Time(nil), times...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].After(sorted[j]) })
	kept := make([]bool, len(sorted))
	rule := func(n int, bucket func(time.Time) [2]int) {
		seen := map[[2]int]bool{}
		for i, t := range sorted {
			if len(seen) >= n {
				return
			}
			if t.After(now) {
				continue // kept anyway, and must not use up a bucket
			}
			b := bucket(t.UTC())
			if seen[b] {
				continue
			}
			seen[b] = true
			kept[i] = true
		}
	}
	rule(r.Daily, func(t time.Time) [2]int { return [2]int{t.Year(), t.YearDay()} })
	rule(r.Weekly, func(t time.Time) [2]int { y, w := t.ISOWeek(); return [2]int{y, w} })
	rule(r.Monthly, func(t time.Time) [2]int { return [2]int{t.Year(), int(t.Month())} })
	for i, t := range sorted {
		if i == 0 || t.After(now) {
			kept[i] = true
		}
		if kept[i] {
			keep = append(keep, t)
		} else {
			drop = append(drop, t)
		}
	}
	return keep, drop
}
