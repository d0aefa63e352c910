package todevice

import (
	"bytes"
	"encoding/json"

	"github.com/lichen-hs/lichen/core/ids"
	"github.com/lichen-hs/lichen/core/mxerr"
)

// ParseBody reads a PUT /sendToDevice body: {"messages": {userId:
// {deviceId: content}}} where every level is a JSON object
// (to_device.yaml) and every user key is a user ID. Anything else refuses
// the whole request, so nothing of it is stored: M_NOT_JSON for a body
// that is not JSON, M_MISSING_PARAM without "messages" (as Synapse), and
// M_BAD_JSON or M_INVALID_PARAM for a wrong shape or user ID.
func ParseBody(body []byte) (Messages, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, mxerr.NotJSON("request body must be a JSON object")
	}
	if !json.Valid(body) {
		return nil, mxerr.NotJSON("request body is not valid JSON")
	}
	var obj map[string]json.RawMessage
	if !isObject(body) || json.Unmarshal(body, &obj) != nil {
		return nil, mxerr.BadJSON("request body must be a JSON object")
	}
	raw, ok := obj["messages"]
	if !ok {
		return nil, mxerr.MissingParam("messages is required")
	}
	var byUser map[string]json.RawMessage
	if !isObject(raw) || json.Unmarshal(raw, &byUser) != nil {
		return nil, mxerr.BadJSON("messages must be an object of user IDs")
	}
	msgs := make(Messages, len(byUser))
	for user, raw := range byUser {
		if _, _, err := ids.ParseUserID(user); err != nil {
			return nil, mxerr.InvalidParam("messages: " + mxerr.As(err).Message + ": " + quote(user))
		}
		var byDevice map[string]json.RawMessage
		if !isObject(raw) || json.Unmarshal(raw, &byDevice) != nil {
			return nil, mxerr.BadJSON("messages of " + user + " must be an object of device IDs")
		}
		for device, content := range byDevice {
			if !isObject(content) {
				return nil, mxerr.BadJSON("message content for " + user + " device " + quote(device) + " must be an object")
			}
		}
		msgs[user] = byDevice
	}
	return msgs, nil
}

// isObject reports whether valid JSON v is an object (not null, which
// json.Unmarshal would accept as an empty map).
func isObject(v []byte) bool {
	v = bytes.TrimLeft(v, " \t\r\n")
	return len(v) > 0 && v[0] == '{'
}

// serverOf is the server name of a user ID, "" when it is not one.
func serverOf(user string) string {
	_, server, err := ids.ParseUserID(user)
	if err != nil {
		return ""
	}
	return server
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
