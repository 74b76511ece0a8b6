package sqlite

// ExecWriter runs q on the store's single writer connection, for tests
// that change its per-connection limits.
func ExecWriter(s *Store, q string) error {
	_, err := s.writer.Exec(q)
	return err
}

// CodeMessage exposes codeMessage to the external tests.
var CodeMessage = codeMessage
