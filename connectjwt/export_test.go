package connectjwt

// ValidJSON exposes the validator to the fuzz test, which compares it
// with encoding/json.
var ValidJSON = validJSON[[]byte]

const MaxDepth = maxDepth
