package boltstore

import (
	"bytes"
	"encoding/json"

	"github.com/fxamacker/cbor/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/lichen-hs/lichen/core/accounts"
)

var _ accounts.Store = (*Store)(nil)

// Account layout. Tokens are keyed by their SHA-256 only (DESIGN.md
// "Secrets at rest"); a per-device index lets a logout find a device's
// tokens with one prefix scan. Keys are user\0device, so "a user's devices"
// is the prefix user\0 (user and device IDs never contain NUL).
var (
	bucketAcctAccounts  = register("userid_account")      // user ID -> cbor acctRec
	bucketAcctProfiles  = register("userid_profile")      // user ID -> cbor acctProfileRec
	bucketAcctDevices   = register("userdevice_device")   // user\0device -> cbor acctDeviceRec
	bucketAcctAccess    = register("accesshash_token")    // sha256 -> cbor acctAccessRec
	bucketAcctRefresh   = register("refreshhash_token")   // sha256 -> cbor acctRefreshRec
	bucketAcctTokenRefs = register("userdevice_tokenref") // user\0device\0 kind sha256 -> ""
	bucketAcctUIA       = register("uiasession_state")    // session ID -> cbor acctUIARec
	// Registration tokens are stored in plain text: they are shared out of
	// band by the administrator, who must be able to list them, and the
	// bootstrap token is printed at every start until used. The file is 0600.
	bucketAcctRegTokens = register("regtoken_info") // token -> cbor acctRegTokenRec
)

// Token kinds in bucketAcctTokenRefs keys.
const (
	acKindAccess  byte = 'a'
	acKindRefresh byte = 'r'
)

// On-disk records use small integer keys: they are read on every cache
// miss of every request and live as long as the account.
type acctRec struct {
	Hash        string `cbor:"1,keyasint,omitempty"`
	Admin       bool   `cbor:"2,keyasint,omitempty"`
	Deactivated bool   `cbor:"3,keyasint,omitempty"`
	UserType    string `cbor:"4,keyasint,omitempty"`
	Created     int64  `cbor:"5,keyasint,omitempty"`
}

type acctProfileRec struct {
	DisplayName string            `cbor:"1,keyasint,omitempty"`
	AvatarURL   string            `cbor:"2,keyasint,omitempty"`
	Fields      map[string][]byte `cbor:"3,keyasint,omitempty"` // raw JSON values
}

type acctDeviceRec struct {
	Name    string `cbor:"1,keyasint,omitempty"`
	SeenTS  int64  `cbor:"2,keyasint,omitempty"`
	SeenIP  string `cbor:"3,keyasint,omitempty"`
	Created int64  `cbor:"4,keyasint,omitempty"`
}

type acctAccessRec struct {
	User    string `cbor:"1,keyasint"`
	Device  string `cbor:"2,keyasint"`
	Expires int64  `cbor:"3,keyasint,omitempty"`
	Pending []byte `cbor:"4,keyasint,omitempty"` // refresh token revoked on first use
}

type acctRefreshRec struct {
	User   string `cbor:"1,keyasint"`
	Device string `cbor:"2,keyasint"`
	Access []byte `cbor:"3,keyasint,omitempty"`
	Prev   []byte `cbor:"4,keyasint,omitempty"`
	Next   []byte `cbor:"5,keyasint,omitempty"`
}

type acctUIARec struct {
	Binding   string   `cbor:"1,keyasint"`
	Completed []string `cbor:"2,keyasint,omitempty"`
	Created   int64    `cbor:"3,keyasint"`
	RegToken  string   `cbor:"4,keyasint,omitempty"`
}

type acctRegTokenRec struct {
	Uses      *int  `cbor:"1,keyasint,omitempty"`
	Completed int   `cbor:"2,keyasint,omitempty"`
	Expiry    int64 `cbor:"3,keyasint,omitempty"`
	Admin     bool  `cbor:"4,keyasint,omitempty"`
	Bootstrap bool  `cbor:"5,keyasint,omitempty"`
	Created   int64 `cbor:"6,keyasint,omitempty"`
}

func acDec(raw []byte, v any) error { return cbor.Unmarshal(raw, v) }

// acHashKey returns h as a key, or nil for the zero hash ("none").
func acHashKey(h accounts.TokenHash) []byte {
	if h == (accounts.TokenHash{}) {
		return nil
	}
	return bytes.Clone(h[:])
}

func acHash(b []byte) accounts.TokenHash {
	var h accounts.TokenHash
	copy(h[:], b)
	return h
}

func acUserPrefix(user string) []byte { return append([]byte(user), 0) }

func acDevicePrefix(user, device string) []byte { return append(key(user, device), 0) }

func acTokenRef(user, device string, kind byte, h []byte) []byte {
	return append(append(acDevicePrefix(user, device), kind), h...)
}

// acKeysWithPrefix collects (copies of) the keys of b under prefix, so the
// caller can delete them without mutating under a cursor.
func acKeysWithPrefix(b *bolt.Bucket, prefix []byte) [][]byte {
	var out [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		out = append(out, bytes.Clone(k))
	}
	return out
}

// acGet decodes the record at k of bucket; ok is false when there is none.
func acGet[R any](tx *bolt.Tx, bucket, k []byte) (r R, ok bool, err error) {
	if len(k) == 0 {
		return r, false, nil
	}
	raw := tx.Bucket(bucket).Get(k)
	if raw == nil {
		return r, false, nil
	}
	return r, true, acDec(raw, &r)
}

// acFind is acGet with accounts.ErrNotFound for a missing record.
func acFind[R any](tx *bolt.Tx, bucket, k []byte) (R, error) {
	r, ok, err := acGet[R](tx, bucket, k)
	if err == nil && !ok {
		err = accounts.ErrNotFound
	}
	return r, err
}

// acRead runs acFind in a read transaction and converts the record.
func acRead[R, T any](s *Store, bucket, k []byte, conv func(R) T) (T, error) {
	var out T
	err := s.view(func(tx *bolt.Tx) error {
		r, err := acFind[R](tx, bucket, k)
		if err == nil {
			out = conv(r)
		}
		return err
	})
	return out, err
}

func acPut(tx *bolt.Tx, bucket, k []byte, v any) error { return tx.Bucket(bucket).Put(k, enc(v)) }

// --- accounts ---

func acHasAccounts(tx *bolt.Tx) bool {
	k, _ := tx.Bucket(bucketAcctAccounts).Cursor().First()
	return k != nil
}

// acUpdateAccount applies fn to an existing account record.
func (s *Store) acUpdateAccount(user string, fn func(w *wtx, a *acctRec) error) error {
	return s.write(func(w *wtx) error {
		a, err := acFind[acctRec](w.Tx, bucketAcctAccounts, []byte(user))
		if err != nil {
			return err
		}
		if err := fn(w, &a); err != nil {
			return err
		}
		return acPut(w.Tx, bucketAcctAccounts, []byte(user), &a)
	})
}

func (s *Store) CreateAccount(na accounts.NewAccount) (bool, error) {
	var created bool
	err := s.write(func(w *wtx) error {
		created = false
		user := na.Account.UserID
		if w.Bucket(bucketAcctAccounts).Get([]byte(user)) != nil {
			return accounts.ErrUserExists
		}
		if na.RegToken != "" {
			if err := acUseRegToken(w.Tx, na.RegToken, na.Now); err != nil {
				return err
			}
		}
		a := na.Account
		rec := acctRec{Hash: a.PasswordHash, Admin: a.Admin, UserType: a.UserType, Created: a.CreatedTS}
		if err := acPut(w.Tx, bucketAcctAccounts, []byte(user), &rec); err != nil {
			return err
		}
		if err := acPutProfile(w.Tx, user, na.Profile); err != nil {
			return err
		}
		if na.Login != nil {
			var err error
			created, err = acLoginTx(w.Tx, *na.Login)
			return err
		}
		return nil
	})
	return created, err
}

// acUseRegToken consumes one use of a registration token; a used bootstrap
// token is deleted (a printed secret with no further use).
func acUseRegToken(tx *bolt.Tx, token string, now int64) error {
	r, ok, err := acGet[acctRegTokenRec](tx, bucketAcctRegTokens, []byte(token))
	if err != nil {
		return err
	}
	if !ok || !acRegToken(token, r).Usable(now, acHasAccounts(tx)) {
		return accounts.ErrTokenUnusable
	}
	r.Completed++
	if r.Bootstrap {
		return tx.Bucket(bucketAcctRegTokens).Delete([]byte(token))
	}
	return acPut(tx, bucketAcctRegTokens, []byte(token), &r)
}

func (s *Store) Account(user string) (accounts.Account, error) {
	return acRead(s, bucketAcctAccounts, []byte(user), func(a acctRec) accounts.Account {
		return accounts.Account{UserID: user, PasswordHash: a.Hash, Admin: a.Admin, Deactivated: a.Deactivated, UserType: a.UserType, CreatedTS: a.Created}
	})
}

func (s *Store) HasAccounts() (bool, error) {
	var has bool
	err := s.view(func(tx *bolt.Tx) error { has = acHasAccounts(tx); return nil })
	return has, err
}

func (s *Store) LocalUsers() ([]accounts.LocalUser, error) {
	var out []accounts.LocalUser
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAcctAccounts).ForEach(func(k, v []byte) error {
			var a acctRec
			if err := acDec(v, &a); err != nil || a.Deactivated {
				return err
			}
			p, err := acGetProfile(tx, string(k))
			out = append(out, accounts.LocalUser{UserID: string(k), DisplayName: p.DisplayName, AvatarURL: p.AvatarURL, Admin: a.Admin})
			return err
		})
	})
	return out, err
}

func (s *Store) ReplacePasswordHash(user, old, new string) error {
	return s.acUpdateAccount(user, func(_ *wtx, a *acctRec) error {
		if a.Hash != old {
			return accounts.ErrConflict
		}
		a.Hash = new
		return nil
	})
}

func (s *Store) ChangePassword(user, hash, keepDevice string, logoutOthers bool) ([]string, error) {
	var deleted []string
	err := s.acUpdateAccount(user, func(w *wtx, a *acctRec) (err error) {
		a.Hash, deleted = hash, nil
		if logoutOthers {
			deleted, err = acDeleteUserDevices(w.Tx, user, keepDevice)
		}
		return err
	})
	return deleted, err
}

func (s *Store) SetAccountAdmin(user string, admin bool) error {
	return s.acUpdateAccount(user, func(_ *wtx, a *acctRec) error { a.Admin = admin; return nil })
}

func (s *Store) DeactivateAccount(user string) ([]string, error) {
	var deleted []string
	err := s.acUpdateAccount(user, func(w *wtx, a *acctRec) (err error) {
		a.Deactivated = true
		if err := w.Bucket(bucketAcctProfiles).Delete([]byte(user)); err != nil {
			return err
		}
		deleted, err = acDeleteUserDevices(w.Tx, user, "")
		return err
	})
	return deleted, err
}

// --- profiles ---

func acPutProfile(tx *bolt.Tx, user string, p accounts.Profile) error {
	if p.DisplayName == "" && p.AvatarURL == "" && len(p.Fields) == 0 {
		return tx.Bucket(bucketAcctProfiles).Delete([]byte(user))
	}
	r := acctProfileRec{DisplayName: p.DisplayName, AvatarURL: p.AvatarURL}
	if len(p.Fields) > 0 {
		r.Fields = make(map[string][]byte, len(p.Fields))
		for k, v := range p.Fields {
			r.Fields[k] = v
		}
	}
	return acPut(tx, bucketAcctProfiles, []byte(user), &r)
}

func acGetProfile(tx *bolt.Tx, user string) (accounts.Profile, error) {
	r, _, err := acGet[acctProfileRec](tx, bucketAcctProfiles, []byte(user))
	p := accounts.Profile{DisplayName: r.DisplayName, AvatarURL: r.AvatarURL}
	if len(r.Fields) > 0 {
		p.Fields = make(map[string]json.RawMessage, len(r.Fields))
		for k, v := range r.Fields {
			p.Fields[k] = v
		}
	}
	return p, err
}

func (s *Store) AccountProfile(user string) (accounts.Profile, error) {
	var p accounts.Profile
	err := s.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketAcctAccounts).Get([]byte(user)) == nil {
			return accounts.ErrNotFound
		}
		var err error
		p, err = acGetProfile(tx, user)
		return err
	})
	return p, err
}

func (s *Store) UpdateAccountProfile(user string, fn func(p *accounts.Profile) error) error {
	return s.write(func(w *wtx) error {
		a, err := acFind[acctRec](w.Tx, bucketAcctAccounts, []byte(user))
		if err != nil {
			return err
		}
		if a.Deactivated {
			return accounts.ErrNotFound
		}
		p, err := acGetProfile(w.Tx, user)
		if err != nil {
			return err
		}
		if err := fn(&p); err != nil {
			return err
		}
		return acPutProfile(w.Tx, user, p)
	})
}

// --- devices and tokens ---

// acLoginTx commits a login inside tx (see accounts.NewLogin).
func acLoginTx(tx *bolt.Tx, l accounts.NewLogin) (bool, error) {
	a, err := acFind[acctRec](tx, bucketAcctAccounts, []byte(l.UserID))
	switch {
	case err != nil:
		return false, err
	case a.Deactivated:
		return false, accounts.ErrDeactivated
	case l.VerifiedHash != "" && a.Hash != l.VerifiedHash:
		return false, accounts.ErrConflict
	}
	d, exists, err := acGet[acctDeviceRec](tx, bucketAcctDevices, key(l.UserID, l.DeviceID))
	if err != nil {
		return false, err
	}
	if exists {
		// Reusing a device ID revokes the tokens it had (spec:
		// "Relationship between access tokens and devices").
		if err := acDeleteDeviceTokens(tx, l.UserID, l.DeviceID); err != nil {
			return false, err
		}
	} else {
		d = acctDeviceRec{Name: l.DeviceDisplayName, Created: l.Now}
	}
	d.SeenTS = l.Now
	if l.IP != "" {
		d.SeenIP = l.IP
	}
	if err := acPut(tx, bucketAcctDevices, key(l.UserID, l.DeviceID), &d); err != nil {
		return false, err
	}
	at := l.Access
	at.UserID, at.DeviceID = l.UserID, l.DeviceID
	if err := acPutAccess(tx, at); err != nil {
		return false, err
	}
	if l.Refresh != nil {
		rt := *l.Refresh
		rt.UserID, rt.DeviceID, rt.Access = l.UserID, l.DeviceID, at.Hash
		if err := acPutRefresh(tx, rt); err != nil {
			return false, err
		}
	}
	return !exists, nil
}

func acPutAccess(tx *bolt.Tx, at accounts.AccessToken) error {
	h := acHashKey(at.Hash)
	r := acctAccessRec{User: at.UserID, Device: at.DeviceID, Expires: at.ExpiresTS, Pending: acHashKey(at.PendingRefresh)}
	if err := acPut(tx, bucketAcctAccess, h, &r); err != nil {
		return err
	}
	return tx.Bucket(bucketAcctTokenRefs).Put(acTokenRef(at.UserID, at.DeviceID, acKindAccess, h), nil)
}

func acPutRefresh(tx *bolt.Tx, rt accounts.RefreshToken) error {
	h := acHashKey(rt.Hash)
	r := acctRefreshRec{User: rt.UserID, Device: rt.DeviceID, Access: acHashKey(rt.Access), Prev: acHashKey(rt.Prev), Next: acHashKey(rt.Next)}
	if err := acPut(tx, bucketAcctRefresh, h, &r); err != nil {
		return err
	}
	return tx.Bucket(bucketAcctTokenRefs).Put(acTokenRef(rt.UserID, rt.DeviceID, acKindRefresh, h), nil)
}

func acTokenBucket(kind byte) []byte {
	if kind == acKindRefresh {
		return bucketAcctRefresh
	}
	return bucketAcctAccess
}

// acDeleteToken deletes one access or refresh token and its index entry.
func acDeleteToken(tx *bolt.Tx, kind byte, h []byte) error {
	owner, ok, err := acGet[struct {
		User   string `cbor:"1,keyasint"`
		Device string `cbor:"2,keyasint"`
	}](tx, acTokenBucket(kind), h)
	if err != nil || !ok {
		return err
	}
	if err := tx.Bucket(bucketAcctTokenRefs).Delete(acTokenRef(owner.User, owner.Device, kind, h)); err != nil {
		return err
	}
	return tx.Bucket(acTokenBucket(kind)).Delete(h)
}

// acDeleteDeviceTokens deletes every token of a device and their index entries.
func acDeleteDeviceTokens(tx *bolt.Tx, user, device string) error {
	p := acDevicePrefix(user, device)
	idx := tx.Bucket(bucketAcctTokenRefs)
	for _, k := range acKeysWithPrefix(idx, p) {
		if len(k) < len(p)+1 {
			continue
		}
		if err := tx.Bucket(acTokenBucket(k[len(p)])).Delete(k[len(p)+1:]); err != nil {
			return err
		}
		if err := idx.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// acDeleteDevice deletes a device and its tokens; ok is false if it did not exist.
func acDeleteDevice(tx *bolt.Tx, user, device string) (bool, error) {
	k := key(user, device)
	if tx.Bucket(bucketAcctDevices).Get(k) == nil {
		return false, nil
	}
	if err := acDeleteDeviceTokens(tx, user, device); err != nil {
		return false, err
	}
	// Its to-device queue goes in the same transaction: no inbox outlives
	// its device, even across a crash.
	if err := dropDeviceInbox(tx, user, device); err != nil {
		return false, err
	}
	return true, tx.Bucket(bucketAcctDevices).Delete(k)
}

// acDeleteUserDevices deletes every device of user but except, with their
// tokens, and returns the deleted IDs.
func acDeleteUserDevices(tx *bolt.Tx, user, except string) ([]string, error) {
	p := acUserPrefix(user)
	var deleted []string
	for _, k := range acKeysWithPrefix(tx.Bucket(bucketAcctDevices), p) {
		if dev := string(k[len(p):]); dev != except {
			if _, err := acDeleteDevice(tx, user, dev); err != nil {
				return nil, err
			}
			deleted = append(deleted, dev)
		}
	}
	return deleted, nil
}

func (s *Store) CommitLogin(l accounts.NewLogin) (bool, error) {
	var created bool
	err := s.write(func(w *wtx) (err error) {
		created, err = acLoginTx(w.Tx, l)
		return err
	})
	return created, err
}

func (s *Store) AccessTokenByHash(h accounts.TokenHash) (accounts.AccessToken, error) {
	return acRead(s, bucketAcctAccess, h[:], func(r acctAccessRec) accounts.AccessToken {
		return accounts.AccessToken{Hash: h, UserID: r.User, DeviceID: r.Device, ExpiresTS: r.Expires, PendingRefresh: acHash(r.Pending)}
	})
}

func (s *Store) ConfirmRefresh(h accounts.TokenHash) error {
	return s.write(func(w *wtx) error {
		a, ok, err := acGet[acctAccessRec](w.Tx, bucketAcctAccess, h[:])
		if err != nil || !ok || len(a.Pending) == 0 {
			return err
		}
		prev, ok, err := acGet[acctRefreshRec](w.Tx, bucketAcctRefresh, a.Pending)
		if err != nil {
			return err
		}
		if ok {
			// The successor no longer has a predecessor to revoke.
			next, ok, err := acGet[acctRefreshRec](w.Tx, bucketAcctRefresh, prev.Next)
			if err != nil {
				return err
			}
			if ok {
				next.Prev = nil
				if err := acPut(w.Tx, bucketAcctRefresh, prev.Next, &next); err != nil {
					return err
				}
			}
			if err := acDeleteToken(w.Tx, acKindRefresh, a.Pending); err != nil {
				return err
			}
		}
		a.Pending = nil
		return acPut(w.Tx, bucketAcctAccess, h[:], &a)
	})
}

func (s *Store) RotateRefresh(old accounts.TokenHash, at accounts.AccessToken, rt accounts.RefreshToken) (accounts.RefreshToken, error) {
	var out accounts.RefreshToken
	err := s.write(func(w *wtx) error {
		r1, err := acFind[acctRefreshRec](w.Tx, bucketAcctRefresh, old[:])
		if err != nil {
			return err
		}
		out = accounts.RefreshToken{Hash: old, UserID: r1.User, DeviceID: r1.Device,
			Access: acHash(r1.Access), Prev: acHash(r1.Prev), Next: acHash(r1.Next)}
		// Using this refresh token revokes the one it replaced, its own
		// access token, and a successor pair issued by an earlier use whose
		// answer the client evidently never got.
		next, _, err := acGet[acctRefreshRec](w.Tx, bucketAcctRefresh, r1.Next)
		if err != nil {
			return err
		}
		for _, t := range []struct {
			kind byte
			h    []byte
		}{{acKindRefresh, r1.Prev}, {acKindAccess, r1.Access}, {acKindAccess, next.Access}, {acKindRefresh, r1.Next}} {
			if err := acDeleteToken(w.Tx, t.kind, t.h); err != nil {
				return err
			}
		}
		at.UserID, at.DeviceID, at.PendingRefresh = r1.User, r1.Device, old
		rt.UserID, rt.DeviceID, rt.Access, rt.Prev, rt.Next = r1.User, r1.Device, at.Hash, old, accounts.TokenHash{}
		if err := acPutAccess(w.Tx, at); err != nil {
			return err
		}
		if err := acPutRefresh(w.Tx, rt); err != nil {
			return err
		}
		r1.Prev, r1.Access, r1.Next = nil, acHashKey(at.Hash), acHashKey(rt.Hash)
		return acPut(w.Tx, bucketAcctRefresh, old[:], &r1)
	})
	return out, err
}

func acDeviceOf(user, id string, d acctDeviceRec) accounts.Device {
	return accounts.Device{UserID: user, DeviceID: id, DisplayName: d.Name, LastSeenTS: d.SeenTS, LastSeenIP: d.SeenIP, CreatedTS: d.Created}
}

func (s *Store) AccountDevices(user string) ([]accounts.Device, error) {
	var out []accounts.Device
	err := s.view(func(tx *bolt.Tx) error {
		p := acUserPrefix(user)
		c := tx.Bucket(bucketAcctDevices).Cursor()
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			var d acctDeviceRec
			if err := acDec(v, &d); err != nil {
				return err
			}
			out = append(out, acDeviceOf(user, string(k[len(p):]), d))
		}
		return nil
	})
	return out, err
}

func (s *Store) AccountDevice(user, id string) (accounts.Device, error) {
	return acRead(s, bucketAcctDevices, key(user, id), func(d acctDeviceRec) accounts.Device { return acDeviceOf(user, id, d) })
}

func (s *Store) acUpdateDevice(user, id string, fn func(d *acctDeviceRec)) error {
	return s.write(func(w *wtx) error {
		d, err := acFind[acctDeviceRec](w.Tx, bucketAcctDevices, key(user, id))
		if err != nil {
			return err
		}
		fn(&d)
		return acPut(w.Tx, bucketAcctDevices, key(user, id), &d)
	})
}

func (s *Store) SetDeviceDisplayName(user, id, name string) error {
	return s.acUpdateDevice(user, id, func(d *acctDeviceRec) { d.Name = name })
}

func (s *Store) TouchDevice(user, id string, ts int64, ip string) error {
	return s.acUpdateDevice(user, id, func(d *acctDeviceRec) {
		d.SeenTS = max(d.SeenTS, ts)
		if ip != "" {
			d.SeenIP = ip
		}
	})
}

func (s *Store) DeleteAccountDevices(user string, ids []string) ([]string, error) {
	var deleted []string
	err := s.write(func(w *wtx) (err error) {
		deleted = nil
		if ids == nil {
			if deleted, err = acDeleteUserDevices(w.Tx, user, ""); err != nil {
				return err
			}
			// Tokens always belong to a device, but "log out everything"
			// must not leave one behind even if that ever breaks.
			return acDeleteUserTokens(w.Tx, user)
		}
		for _, id := range ids {
			ok, err := acDeleteDevice(w.Tx, user, id)
			if err != nil {
				return err
			}
			if ok {
				deleted = append(deleted, id)
			}
		}
		return nil
	})
	return deleted, err
}

func acDeleteUserTokens(tx *bolt.Tx, user string) error {
	p := acUserPrefix(user)
	for _, k := range acKeysWithPrefix(tx.Bucket(bucketAcctTokenRefs), p) {
		dev, _, _ := bytes.Cut(k[len(p):], []byte{0})
		if err := acDeleteDeviceTokens(tx, user, string(dev)); err != nil {
			return err
		}
	}
	return nil
}

// --- user-interactive authentication sessions ---

func (s *Store) PutUIASession(u accounts.UIASession) error {
	r := acctUIARec{Binding: u.Binding, Completed: u.Completed, Created: u.CreatedTS, RegToken: u.RegToken}
	return s.write(func(w *wtx) error { return acPut(w.Tx, bucketAcctUIA, []byte(u.ID), &r) })
}

func (s *Store) UIASession(id string) (accounts.UIASession, error) {
	return acRead(s, bucketAcctUIA, []byte(id), func(r acctUIARec) accounts.UIASession {
		return accounts.UIASession{ID: id, Binding: r.Binding, Completed: r.Completed, CreatedTS: r.Created, RegToken: r.RegToken}
	})
}

func (s *Store) DeleteUIASession(id string) error {
	return s.write(func(w *wtx) error { return w.Bucket(bucketAcctUIA).Delete([]byte(id)) })
}

func (s *Store) DeleteUIASessionsBefore(ts int64) error {
	return s.write(func(w *wtx) error {
		b := w.Bucket(bucketAcctUIA)
		var old [][]byte
		_ = b.ForEach(func(k, v []byte) error {
			var r acctUIARec
			if acDec(v, &r) != nil || r.Created < ts {
				old = append(old, bytes.Clone(k))
			}
			return nil
		})
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// --- registration tokens ---

func acRegToken(token string, r acctRegTokenRec) accounts.RegistrationToken {
	return accounts.RegistrationToken{Token: token, UsesAllowed: r.Uses, Completed: r.Completed, ExpiryTS: r.Expiry,
		Admin: r.Admin, Bootstrap: r.Bootstrap, CreatedTS: r.Created}
}

func (s *Store) CreateRegistrationToken(t accounts.RegistrationToken) error {
	r := acctRegTokenRec{Uses: t.UsesAllowed, Completed: t.Completed, Expiry: t.ExpiryTS, Admin: t.Admin, Bootstrap: t.Bootstrap, Created: t.CreatedTS}
	return s.write(func(w *wtx) error {
		if w.Bucket(bucketAcctRegTokens).Get([]byte(t.Token)) != nil {
			return accounts.ErrExists
		}
		return acPut(w.Tx, bucketAcctRegTokens, []byte(t.Token), &r)
	})
}

func (s *Store) RegistrationToken(token string) (accounts.RegistrationToken, error) {
	return acRead(s, bucketAcctRegTokens, []byte(token), func(r acctRegTokenRec) accounts.RegistrationToken { return acRegToken(token, r) })
}

func (s *Store) RegistrationTokens() ([]accounts.RegistrationToken, error) {
	var out []accounts.RegistrationToken
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAcctRegTokens).ForEach(func(k, v []byte) error {
			var r acctRegTokenRec
			if err := acDec(v, &r); err != nil {
				return err
			}
			out = append(out, acRegToken(string(k), r))
			return nil
		})
	})
	return out, err
}

func (s *Store) DeleteRegistrationToken(token string) error {
	return s.write(func(w *wtx) error {
		if w.Bucket(bucketAcctRegTokens).Get([]byte(token)) == nil {
			return accounts.ErrNotFound
		}
		return w.Bucket(bucketAcctRegTokens).Delete([]byte(token))
	})
}
