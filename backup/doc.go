// Package backup keeps a tenon store recoverable and proves it: continuous
// replication to a backup target, encrypted and checksummed snapshots
// pruned grandfather-father-son, restores of the latest state, a point in
// time or a snapshot, and drills that restore into a scratch place and
// check what came back.
//
// The engine-specific half sits behind Engine: SQLite replicates with
// litestream and snapshots with VACUUM INTO; PostgreSQL leaves WAL
// archiving and physical backups to pgBackRest, which PgBackRest drives
// and watches, and snapshots as a logical export of tenon's tables.
// Everything else — targets, manifests, encryption, retention, drills — is
// shared. ExportTenant and ImportTenant move one tenant between stores of
// the same kind.
package backup
