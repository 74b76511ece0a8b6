// Package backup keeps a tenon store recoverable and proves it: continuous
// replication to a backup target, encrypted and checksummed snapshots
// pruned grandfather-father-son, restores of the latest state, a point in
// time or a snapshot, and drills that restore into a scratch place and
// check what came back.
//
// The engine-specific half sits behind Engine: SQLite replicates with
// litestream and snapshots with VACUUM INTO; a PostgreSQL engine
// (pgBackRest) can implement the same interface. Everything else —
// targets, manifests, encryption, retention, drills — is shared.
package backup
