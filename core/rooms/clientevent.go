package rooms

import (
	"encoding/json"
	"time"

	"github.com/tidwall/gjson"
)

// Viewer is who an event is formatted for: the transaction ID is only shown
// to the device that sent the event (spec: ClientEvent unsigned.transaction_id).
type Viewer struct {
	User   string
	Device string
}

// ClientEvent is the client-server format of an event (spec: ClientEvent).
type ClientEvent struct {
	Content        json.RawMessage `json:"content"`
	EventID        string          `json:"event_id"`
	OriginServerTS int64           `json:"origin_server_ts"`
	RoomID         string          `json:"room_id,omitempty"`
	Sender         string          `json:"sender"`
	StateKey       *string         `json:"state_key,omitempty"`
	Type           string          `json:"type"`
	Redacts        string          `json:"redacts,omitempty"`
	Unsigned       *Unsigned       `json:"unsigned,omitempty"`
}

// Unsigned is the server-added part of a ClientEvent.
type Unsigned struct {
	Age             int64           `json:"age"`
	TransactionID   string          `json:"transaction_id,omitempty"`
	PrevContent     json.RawMessage `json:"prev_content,omitempty"`
	PrevSender      string          `json:"prev_sender,omitempty"`
	ReplacesState   string          `json:"replaces_state,omitempty"`
	RedactedBecause *ClientEvent    `json:"redacted_because,omitempty"`
	Membership      string          `json:"membership,omitempty"`
}

// Format turns a stored record into a ClientEvent for viewer v.
// redactedBecause, when the event is redacted, is the redaction's record.
func Format(rec *EventRecord, v Viewer, now time.Time, redactedBecause *EventRecord) ClientEvent {
	// gjson reads the three fields without decoding the rest of the PDU
	// (signatures, hashes, auth and prev events), which sync does per event.
	f := gjson.GetManyBytes(rec.JSON, "content", "origin_server_ts", "redacts")
	content := json.RawMessage("{}")
	if f[0].IsObject() {
		content = json.RawMessage(f[0].Raw)
	}
	ts := f[1].Int()
	ev := ClientEvent{
		Content:        content,
		EventID:        rec.EventID,
		OriginServerTS: ts,
		RoomID:         rec.RoomID,
		Sender:         rec.Sender,
		StateKey:       rec.StateKey,
		Type:           rec.Type,
		Redacts:        f[2].String(),
	}
	if ev.Type == "m.room.redaction" && ev.Redacts == "" {
		ev.Redacts = gjson.GetBytes(content, "redacts").String()
	}
	u := &Unsigned{Age: now.UnixMilli() - ts}
	if rec.TxnID != "" && rec.TxnUser == v.User && rec.TxnDevice == v.Device {
		u.TransactionID = rec.TxnID
	}
	if rec.ReplacesState != "" {
		u.PrevContent, u.PrevSender, u.ReplacesState = rec.PrevContent, rec.PrevSender, rec.ReplacesState
	}
	u.Membership = rec.ViewerMembership
	if redactedBecause != nil {
		rb := Format(redactedBecause, v, now, nil)
		u.RedactedBecause = &rb
	}
	ev.Unsigned = u
	return ev
}
