package tenon

import "context"

// KeyedSecretBox is a SecretBox whose sealed values name the key that
// sealed them. Re-sealing after a key rotation needs it: a value already
// under the sealing key is left alone without being opened, and what
// remains under each old key can be counted. keyring.Keyring implements it.
type KeyedSecretBox interface {
	SecretBox
	// SealingKeyID returns the id of the key Seal uses.
	SealingKeyID() string
	// SealedKeyID returns the id of the key a sealed value names, read
	// without opening it. A value not in the sealed format gives an error.
	// The id is authenticated only when the value is opened.
	SealedKeyID(sealed string) (string, error)
}

// SealedUnreadable is the key id under which Resealer.SealedCounts counts
// values that no key of the SecretBox opens: sealed with a key that is no
// longer in the key file, altered, or not sealed at all.
const SealedUnreadable = "unreadable"

// Resealer is an optional Store capability, found by type assertion: it
// re-seals every sealed value (shared secrets, install payloads, cached
// tokens, KV entries such as certificates) under the SecretBox's sealing
// key, so that a key rotated out can be removed from the key file. Both
// stores implement it; `tenon keys` uses it. It needs a KeyedSecretBox and
// reports an error otherwise.
//
// Both methods run while other processes serve from the same database.
type Resealer interface {
	// SealedCounts returns how many rows are sealed under each key id,
	// opening every value to be sure the count is true: a row that no key
	// opens is counted under SealedUnreadable instead. A row with several
	// sealed values (an installation's secret and payload) counts once:
	// under an old key if any of its values is. Nothing is written.
	SealedCounts(ctx context.Context) (map[string]int, error)

	// Reseal opens every row sealed under another key than the sealing
	// key and seals it again under the sealing key, batch rows per short
	// transaction (batch <= 0 means 100). progress, if not nil, is called
	// after each batch with the number of rows re-sealed so far.
	//
	// A row changed by someone else between its read and its write is
	// left as they wrote it: a concurrent install is never overwritten
	// with an older secret. Rows that no key opens are left untouched.
	// Reseal is idempotent, so a run that was interrupted (its committed
	// batches are kept) is resumed by running it again. It returns the
	// number of rows it re-sealed.
	Reseal(ctx context.Context, batch int, progress func(resealed int)) (int, error)
}
