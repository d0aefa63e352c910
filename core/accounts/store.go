package accounts

import (
	"encoding/json"
	"errors"
)

// Errors a Store returns. Core turns them into Matrix errors.
var (
	ErrNotFound      = errors.New("accounts: not found")
	ErrUserExists    = errors.New("accounts: user ID already taken")
	ErrExists        = errors.New("accounts: already exists")
	ErrTokenUnusable = errors.New("accounts: registration token is not usable")
	ErrDeactivated   = errors.New("accounts: account is deactivated")
	// ErrConflict: a compare-and-swap found the record changed meanwhile
	// (a password changed between verifying it and using the result).
	ErrConflict = errors.New("accounts: changed concurrently")
)

// TokenHash is the only form in which access and refresh tokens are stored
// (DESIGN.md "Secrets at rest"): secret.HashToken of the token.
type TokenHash = [32]byte

// Account is a local user's account record.
type Account struct {
	UserID       string
	PasswordHash string // PHC string or bcrypt; "" means password login is impossible
	Admin        bool
	Deactivated  bool
	UserType     string // "", "bot" or "support" (Synapse's user_type)
	CreatedTS    int64  // ms since the epoch
}

// Profile is a user's global profile (spec: "Profiles"): the two classic
// fields plus the custom keys of Matrix 1.16 (m.tz, namespaced keys), kept
// as the raw JSON values the client set.
type Profile struct {
	DisplayName string
	AvatarURL   string
	Fields      map[string]json.RawMessage
}

// LocalUser is an active (not deactivated) local account with its classic
// profile fields, as the user directory lists them.
type LocalUser struct {
	UserID      string
	DisplayName string
	AvatarURL   string
	Admin       bool
}

// Device is one of a user's devices (spec: modules/device_management).
type Device struct {
	UserID      string
	DeviceID    string
	DisplayName string
	LastSeenTS  int64 // ms since the epoch; 0 when never seen
	LastSeenIP  string
	CreatedTS   int64
}

// AccessToken is a stored access token.
type AccessToken struct {
	Hash      TokenHash
	UserID    string
	DeviceID  string
	ExpiresTS int64 // ms since the epoch; 0 = does not expire
	// PendingRefresh is the refresh token this access token's refresh
	// replaced. Spec ("Refreshing access tokens"): the old refresh token
	// stays valid until the new access or refresh token is used, so the
	// first use of this token revokes it (Store.ConfirmRefresh).
	PendingRefresh TokenHash
}

// RefreshToken is a stored refresh token.
type RefreshToken struct {
	Hash     TokenHash
	UserID   string
	DeviceID string
	Access   TokenHash // the access token issued together with it
	Prev     TokenHash // the refresh token it replaced (revoked on first use of this pair)
	Next     TokenHash // the successor issued when this one was last used (zero if none)
}

// NewLogin describes a login to commit: the device (created, or reused with
// its previous tokens revoked) and the tokens issued for it.
type NewLogin struct {
	UserID            string
	DeviceID          string
	DeviceDisplayName string // used only when the device is new
	IP                string
	Now               int64 // ms; becomes the device's last_seen_ts
	// VerifiedHash, when set, must still be the account's password hash:
	// the password was checked against it, and a password change that
	// committed since must not let the old password log in.
	VerifiedHash string
	Access       AccessToken
	Refresh      *RefreshToken
}

// NewAccount describes an account to create, atomically with the use of a
// registration token and an optional first login.
type NewAccount struct {
	Account  Account
	Profile  Profile
	RegToken string    // when set, one use of it is consumed (ErrTokenUnusable if it cannot be)
	Now      int64     // ms; for the registration token's expiry
	Login    *NewLogin // nil for inhibit_login and the CLI
}

// RegistrationToken is a token for the m.login.registration_token stage
// (spec: "Token-authenticated registration"). Unlike access tokens these
// are stored in plain text: the administrator shares them out of band and
// must be able to list them, and the bootstrap token is printed at every
// start until it is used. The database file is 0600.
type RegistrationToken struct {
	Token       string
	UsesAllowed *int  // nil = unlimited
	Completed   int   // registrations completed with it
	ExpiryTS    int64 // ms; 0 = never
	Admin       bool  // accounts registered with it are server admins
	Bootstrap   bool  // valid only while the server has no account at all
	CreatedTS   int64
}

// Usable reports whether t can register one more account at nowMS, on a
// server that has (hasAccounts) or has no accounts yet.
func (t RegistrationToken) Usable(nowMS int64, hasAccounts bool) bool {
	if t.Bootstrap && hasAccounts {
		return false
	}
	if t.ExpiryTS != 0 && nowMS >= t.ExpiryTS {
		return false
	}
	return t.UsesAllowed == nil || t.Completed < *t.UsesAllowed
}

// UIASession is a User-Interactive Authentication session, persisted so it
// survives a restart (spec: "User-Interactive Authentication API").
type UIASession struct {
	ID        string
	Binding   string   // what the session authorises: endpoint, user and parameters
	Completed []string // auth types completed, in order
	CreatedTS int64
	RegToken  string // registration token accepted by its m.login.registration_token stage
}

// Store is the storage the account service needs (implemented by boltstore).
// Methods that revoke devices return the IDs of the devices they deleted.
type Store interface {
	// CreateAccount creates an account, its profile, consumes a use of
	// RegToken and commits Login, all in one transaction. ErrUserExists
	// if the user ID is taken, ErrTokenUnusable if the token cannot be used.
	CreateAccount(a NewAccount) (deviceCreated bool, err error)
	Account(userID string) (Account, error)
	HasAccounts() (bool, error)
	// LocalUsers lists the accounts that are not deactivated, by user ID.
	LocalUsers() ([]LocalUser, error)
	// ReplacePasswordHash swaps old for new (a rehash after login); it is
	// ErrConflict if the hash is no longer old.
	ReplacePasswordHash(userID, old, new string) error
	// ChangePassword sets the hash and, when logoutOthers, deletes every
	// device of the user except keepDevice, with their tokens.
	ChangePassword(userID, hash, keepDevice string, logoutOthers bool) (deleted []string, err error)
	SetAccountAdmin(userID string, admin bool) error
	// DeactivateAccount marks the account deactivated and deletes its devices,
	// tokens and profile.
	DeactivateAccount(userID string) (deleted []string, err error)

	// AccountProfile is ErrNotFound for users without an account.
	AccountProfile(userID string) (Profile, error)
	// UpdateAccountProfile applies fn to the stored profile in a transaction (fn
	// may run more than once and must only modify p). ErrNotFound if the
	// account does not exist or is deactivated.
	UpdateAccountProfile(userID string, fn func(p *Profile) error) error

	// CommitLogin commits a login (see NewLogin). ErrNotFound, ErrDeactivated or
	// ErrConflict (VerifiedHash) when it must not happen.
	CommitLogin(l NewLogin) (deviceCreated bool, err error)
	AccessTokenByHash(h TokenHash) (AccessToken, error)
	// ConfirmRefresh records the first use of an access token issued by a
	// refresh: the refresh token it replaced is revoked.
	ConfirmRefresh(h TokenHash) error
	// RotateRefresh uses refresh token old: it revokes old's access token (and a
	// successor pair issued before but never used), stores access and
	// refresh (filling in user and device from old) and returns old's record.
	RotateRefresh(old TokenHash, access AccessToken, refresh RefreshToken) (RefreshToken, error)

	AccountDevices(userID string) ([]Device, error)
	AccountDevice(userID, deviceID string) (Device, error)
	SetDeviceDisplayName(userID, deviceID, name string) error
	// TouchDevice records last-seen data for an existing device ("" ip
	// keeps the previous address).
	TouchDevice(userID, deviceID string, ts int64, ip string) error
	// DeleteAccountDevices deletes the listed devices (all of them when deviceIDs
	// is nil) with their tokens; unknown IDs are ignored.
	DeleteAccountDevices(userID string, deviceIDs []string) (deleted []string, err error)

	PutUIASession(s UIASession) error
	UIASession(id string) (UIASession, error)
	DeleteUIASession(id string) error
	DeleteUIASessionsBefore(createdTS int64) error

	// CreateRegistrationToken is ErrExists when the token exists.
	CreateRegistrationToken(t RegistrationToken) error
	RegistrationToken(token string) (RegistrationToken, error)
	RegistrationTokens() ([]RegistrationToken, error)
	DeleteRegistrationToken(token string) error
}
