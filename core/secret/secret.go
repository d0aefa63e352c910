// Package secret holds Lichen's secrets at rest and the MACs it checks:
// password hashing (argon2id, verifying imported bcrypt), access and refresh
// tokens stored only as hashes, Synapse-compatible shared-secret
// registration MACs and TURN REST API credentials.
package secret
