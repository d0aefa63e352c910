// Package todevice is send-to-device messaging: PUT /sendToDevice queues a
// message per target device, and /sync hands each device its queue, oldest
// first, until the device acknowledges it by syncing from a later token.
//
// Spec: client-server-api "Send-to-Device messaging"
// (modules/send_to_device.md), data/api/client-server/to_device.yaml and
// the to_device part of sync.yaml; "Transaction identifiers" for retries.
package todevice

import (
	"encoding/json"
	"log/slog"
	"slices"
	"sort"

	"github.com/lichen-hs/lichen/core/mxerr"
	"github.com/lichen-hs/lichen/core/notify"
)

// AllDevices is the device key that means every device of the user
// (to_device.yaml: "The device ID may also be `*`, meaning all known
// devices for the user").
const AllDevices = "*"

// SyncLimit is how many messages one /sync hands a device; the rest wait
// for the next sync (spec: "100 messages is recommended as a reasonable
// limit").
const SyncLimit = 100

// Size limits of one PUT /sendToDevice. The request body is already capped
// by the server's max_body_bytes; these cap what "*" fan-out makes of it,
// since everything a request stores is written in one transaction on an
// SD card.
const (
	// MaxEventBytes bounds one message as delivered ({content, sender,
	// type}): the spec's 64 KiB event limit ("Size limits"), which a
	// to-device message must also fit once federation carries it in an
	// m.direct_to_device EDU.
	MaxEventBytes = 65536
	// MaxSendBytes bounds the bytes one request stores, after fan-out.
	MaxSendBytes = 4 << 20
	// MaxSendMessages bounds the messages one request stores, after
	// fan-out. SDKs send a room key to each device of a room in batches of
	// a few hundred per request, far below this.
	MaxSendMessages = 10000
)

// maxIDBytes is the spec's limit on identifiers; no device ID is longer
// (accounts refuses longer ones), so a longer key names no device.
const maxIDBytes = 255

// Sender is who sends: the user, and the device that scopes the
// transaction ID.
type Sender struct {
	User   string
	Device string
}

// Messages is a request's messages: user ID -> device ID (or AllDevices)
// -> content, as the request body's "messages" carries them.
type Messages map[string]map[string]json.RawMessage

// Txn identifies a send for idempotency (spec "Transaction identifiers":
// a transaction ID is scoped to one device and one endpoint; this store
// serves only PUT /sendToDevice, so the endpoint is implied).
type Txn struct {
	User   string
	Device string
	ID     string
}

// Message is one message queued for one device.
type Message struct {
	User   string          // recipient
	Device string          // recipient's device
	Event  json.RawMessage // {"content", "sender", "type"}, as /sync delivers it
}

// Store keeps one queue of messages per device, ordered by stream
// position, and remembers the transactions it has applied.
type Store interface {
	// PutToDevice, in one durable write: if txn was applied before it
	// reports dup and stores nothing; otherwise it appends each message
	// to its device's queue at a new stream position, in order, skipping
	// messages for devices that do not exist when it commits, and records
	// txn. users lists the recipients that got at least one message.
	PutToDevice(txn Txn, msgs []Message) (dup bool, users []string, err error)
	// ToDevice deletes the device's messages at or before since (durably,
	// and without writing when there are none), then returns those in
	// (since, upto], oldest first, at most limit, with the position of
	// the last one returned (since when none is) and whether more remain
	// in (last, upto].
	ToDevice(user, device string, since, upto uint64, limit int) (events []json.RawMessage, last uint64, more bool, err error)
	// DeleteDeviceInbox drops the device's queue and the transactions it
	// sent (the device is being deleted).
	DeleteDeviceInbox(user, device string) error
}

// Devices lists the IDs of a local user's current devices (none for an
// unknown user).
type Devices func(user string) ([]string, error)

// Service is the send-to-device engine. It is safe for concurrent use.
type Service struct {
	store      Store
	hub        *notify.Hub
	serverName string
	devices    Devices
}

// New makes the service for the server serverName.
func New(store Store, hub *notify.Hub, serverName string, devices Devices) *Service {
	return &Service{store: store, hub: hub, serverName: serverName, devices: devices}
}

// Send is PUT /sendToDevice/{eventType}/{txnId}. msgs comes from
// ParseBody. A retry of a transaction already applied answers as the
// first did and stores nothing. Messages for unknown devices or users of
// this server are dropped without an error: the spec defines none, the
// sender cannot know which devices exist at this moment, and Synapse too
// answers 200 and queues only for devices that exist.
func (s *Service) Send(from Sender, eventType, txnID string, msgs Messages) error {
	if eventType == "" {
		return mxerr.InvalidParam("event type is empty")
	}
	if len(eventType) > 255 {
		// "Size limits": an event type is at most 255 bytes.
		return mxerr.InvalidParam("event type is longer than 255 bytes")
	}
	if txnID == "" {
		return mxerr.InvalidParam("transaction ID is empty")
	}
	out, err := s.queue(from.User, eventType, msgs)
	if err != nil || len(out) == 0 {
		// Nothing to store: not even the transaction is written, since a
		// retry of it would store nothing either.
		return err
	}
	dup, users, err := s.store.PutToDevice(Txn{User: from.User, Device: from.Device, ID: txnID}, out)
	if err != nil || dup {
		return err
	}
	// After the commit: the recipients' long-polling syncs return now.
	s.hub.Wake(users...)
	return nil
}

// event is a to-device message as /sync delivers it (send_to_device.md,
// "Extensions to /sync": content, sender, type).
type event struct {
	Content json.RawMessage `json:"content"`
	Sender  string          `json:"sender"`
	Type    string          `json:"type"`
}

// queue turns the request into the messages to store: one per device,
// AllDevices expanded to the user's current devices, ordered by recipient
// so positions are deterministic. It checks the size limits.
func (s *Service) queue(sender, eventType string, msgs Messages) ([]Message, error) {
	var out []Message
	total := 0
	for _, user := range sortedKeys(msgs) {
		server := serverOf(user)
		if server == "" {
			return nil, mxerr.InvalidParam("messages: not a user ID: " + quote(user))
		}
		byDevice := msgs[user]
		encoded := make(map[string]json.RawMessage, len(byDevice))
		for _, device := range sortedKeys(byDevice) {
			// encoding/json compacts the raw content as it encodes it.
			ev, err := json.Marshal(event{Content: byDevice[device], Sender: sender, Type: eventType})
			if err != nil {
				return nil, mxerr.BadJSON("messages: content of " + user + " " + device + " is not valid JSON")
			}
			if len(ev) > MaxEventBytes {
				return nil, mxerr.TooLarge("a to-device message is larger than 65536 bytes")
			}
			encoded[device] = ev
		}
		if server != s.serverName {
			// Remote users: their server gets the messages over federation
			// (server-server-api "Send-to-device messaging", the
			// m.direct_to_device EDU). Lichen does not federate yet, so
			// they are dropped after validation.
			continue
		}
		var targets []string
		if _, ok := byDevice[AllDevices]; ok {
			ds, err := s.devices(user)
			if err != nil {
				return nil, err
			}
			targets = slices.Clone(ds) // sorted and extended below
		}
		for device := range byDevice {
			if device != AllDevices {
				targets = append(targets, device)
			}
		}
		sort.Strings(targets)
		for i, device := range targets {
			if (i > 0 && targets[i-1] == device) || device == "" || len(device) > maxIDBytes {
				continue // listed twice (by "*" and by name), or no device has this ID
			}
			// One message per device per request (send_to_device.md,
			// "Client behaviour"): a device named explicitly gets its own
			// message, not the one sent to "*" (Synapse does the same).
			ev, ok := encoded[device]
			if !ok {
				ev = encoded[AllDevices]
			}
			total += len(ev)
			out = append(out, Message{User: user, Device: device, Event: ev})
		}
		if len(out) > MaxSendMessages {
			return nil, mxerr.TooLarge("a request may reach at most 10000 devices")
		}
		if total > MaxSendBytes {
			return nil, mxerr.TooLarge("the request's messages total more than 4 MiB")
		}
	}
	return out, nil
}

// Inbox is the /sync source: the device's messages in (since, upto], at
// most limit, after deleting those at or before since — the client syncs
// from a token it received, so it has them (send_to_device.md, "Server
// behaviour"). A sync response that never reached the client is thus
// repaired by the retry from the old since, which gets the same messages
// again. A session without a device has no queue.
func (s *Service) Inbox(user, device string, since, upto uint64, limit int) (events []json.RawMessage, last uint64, more bool, err error) {
	if device == "" {
		return nil, since, false, nil
	}
	return s.store.ToDevice(user, device, since, upto, limit)
}

// DeviceAdded implements accounts.DeviceObserver: a new device starts with
// an empty queue, so there is nothing to do.
func (s *Service) DeviceAdded(user, device string) {}

// DevicesDeleted implements accounts.DeviceObserver: a deleted device's
// queue and transactions go with it, so that a device later created with
// the same ID does not receive messages meant for the old one.
func (s *Service) DevicesDeleted(user string, devices []string) {
	for _, d := range devices {
		if err := s.store.DeleteDeviceInbox(user, d); err != nil {
			slog.Error("drop to-device queue of a deleted device", "user", user, "device", d, "err", err)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
