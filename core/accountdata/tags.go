package accountdata

import (
	"encoding/json"
	"errors"

	"github.com/lichen-hs/lichen/core/mxerr"
)

// Room tags are room account data of type m.tag with content
// {"tags": {name: {"order": 0.5, ...}}} (spec "Room Tagging"). They are
// read-modify-write inside the store transaction so two devices tagging
// at once do not lose a tag.

// MaxTagBytes is the spec's limit on a tag name ("Room Tagging": "The name
// of a tag MUST NOT exceed 255 bytes").
const MaxTagBytes = 255

// tagsOf decodes the tags of an m.tag content; content that a client wrote
// directly through the account data API may be malformed, and counts as
// no tags.
func tagsOf(content []byte) map[string]json.RawMessage {
	var c struct {
		Tags map[string]json.RawMessage `json:"tags"`
	}
	if len(content) == 0 || json.Unmarshal(content, &c) != nil || c.Tags == nil {
		return map[string]json.RawMessage{}
	}
	return c.Tags
}

func tagsContent(tags map[string]json.RawMessage) (json.RawMessage, error) {
	return json.Marshal(map[string]any{"tags": tags})
}

// Tags returns {"tags": {...}} for a room (GET /user/{userId}/rooms/
// {roomId}/tags); a room without tags has {"tags": {}}.
func (s *Service) Tags(caller, user, roomID string) (json.RawMessage, error) {
	if err := checkOwner(caller, user); err != nil {
		return nil, err
	}
	if err := checkRoom(roomID); err != nil {
		return nil, err
	}
	c, err := s.store.AccountData(user, roomID, TypeTag)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	return tagsContent(tagsOf(c))
}

// PutTag adds or replaces a tag (PUT /user/{userId}/rooms/{roomId}/tags/
// {tag}). body is the tag's object (definitions/tag.yaml): "order", when
// present, is a number in [0, 1]; other keys are kept as the client sent
// them.
func (s *Service) PutTag(caller, user, roomID, tag string, body []byte) error {
	if err := checkOwner(caller, user); err != nil {
		return err
	}
	if err := checkRoom(roomID); err != nil {
		return err
	}
	if err := checkTagName(tag); err != nil {
		return err
	}
	if len(body) == 0 {
		body = []byte("{}")
	}
	obj, err := jsonObject(body)
	if err != nil {
		return err
	}
	var t struct {
		Order *json.RawMessage `json:"order"`
	}
	_ = json.Unmarshal(obj, &t)
	if t.Order != nil && string(*t.Order) != "null" {
		var order float64
		if err := json.Unmarshal(*t.Order, &order); err != nil {
			return mxerr.BadJSON("tag order must be a number")
		}
		if order < 0 || order > 1 {
			return mxerr.InvalidParam("tag order must be between 0 and 1")
		}
	}
	return s.put(user, roomID, TypeTag, func(old []byte) ([]byte, error) {
		tags := tagsOf(old)
		tags[tag] = obj
		return tagsContent(tags)
	})
}

// DeleteTag removes a tag (DELETE /user/{userId}/rooms/{roomId}/tags/
// {tag}); removing a tag the room does not have succeeds and writes
// nothing.
func (s *Service) DeleteTag(caller, user, roomID, tag string) error {
	if err := checkOwner(caller, user); err != nil {
		return err
	}
	if err := checkRoom(roomID); err != nil {
		return err
	}
	if err := checkTagName(tag); err != nil {
		return err
	}
	return s.put(user, roomID, TypeTag, func(old []byte) ([]byte, error) {
		tags := tagsOf(old)
		if _, ok := tags[tag]; !ok {
			return nil, nil
		}
		delete(tags, tag)
		return tagsContent(tags)
	})
}

func checkTagName(tag string) error {
	switch {
	case tag == "":
		return mxerr.InvalidParam("empty tag name")
	case len(tag) > MaxTagBytes:
		return mxerr.InvalidParam("tag name is longer than 255 bytes")
	}
	return nil
}
