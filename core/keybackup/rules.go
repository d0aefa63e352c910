package keybackup

// Replaces reports whether candidate, uploaded for a session the backup
// already holds as current, is kept instead of it. The rules are the spec's
// ("Server-side key backups"), applied in order:
//
//  1. different is_verified: keep the one with is_verified true;
//  2. else different first_message_index: keep the lower (it decrypts
//     more of the session's messages);
//  3. else keep the lower forwarded_count (fewer hops, more trust).
//
// When all three are equal the current copy stays: the two decrypt the
// same messages, and keeping it leaves the etag unchanged so other devices
// need not fetch the backup again.
//
// Only the metadata is compared; session_data is opaque to the server.
func Replaces(current, candidate KeyBackupData) bool {
	if current.IsVerified != candidate.IsVerified {
		return candidate.IsVerified
	}
	if current.FirstMessageIndex != candidate.FirstMessageIndex {
		return candidate.FirstMessageIndex < current.FirstMessageIndex
	}
	return candidate.ForwardedCount < current.ForwardedCount
}
