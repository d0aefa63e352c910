package pushrules

import (
	"bytes"
	"encoding/json"

	"github.com/lichen-hs/lichen/core/mxerr"
)

// Request bodies of the /pushrules endpoints (spec pushrules.yaml). Each
// parser answers 400 M_NOT_JSON for invalid JSON and 400 M_BAD_JSON for JSON
// that is not the documented object.

// ParseRuleBody decodes the request body of PUT /pushrules/global/{kind}/
// {ruleId}: an object with required "actions" and, depending on kind,
// "conditions" and "pattern" (spec pushrules.yaml setPushRule). It checks the
// JSON shape only; PutRule checks the rest.
func ParseRuleBody(kind string, body []byte) (Rule, error) {
	obj, err := parseObject(body)
	if err != nil {
		return Rule{}, err
	}
	var r Rule
	if r.Actions, err = parseActions(obj); err != nil {
		return Rule{}, err
	}
	if raw, ok := obj["conditions"]; ok && (kind == KindOverride || kind == KindUnderride) {
		if err := json.Unmarshal(raw, &r.Conditions); err != nil {
			return Rule{}, mxerr.BadJSON("invalid conditions: " + err.Error())
		}
	}
	if raw, ok := obj["pattern"]; ok && kind == KindContent {
		var p string
		if err := json.Unmarshal(raw, &p); err != nil || isNull(raw) {
			return Rule{}, mxerr.BadJSON("pattern must be a string")
		}
		r.Pattern = &p
	}
	return r, nil
}

// ParseActionsBody decodes the body of PUT .../{ruleId}/actions:
// {"actions": [...]}, 400 M_NOT_JSON or M_BAD_JSON otherwise.
func ParseActionsBody(body []byte) ([]Action, error) {
	obj, err := parseObject(body)
	if err != nil {
		return nil, err
	}
	return parseActions(obj)
}

// ParseEnabledBody decodes the body of PUT .../{ruleId}/enabled:
// {"enabled": bool}, 400 M_NOT_JSON or M_BAD_JSON otherwise.
func ParseEnabledBody(body []byte) (bool, error) {
	obj, err := parseObject(body)
	if err != nil {
		return false, err
	}
	raw, ok := obj["enabled"]
	var b bool
	if !ok || isNull(raw) || json.Unmarshal(raw, &b) != nil {
		return false, mxerr.BadJSON("enabled must be a boolean")
	}
	return b, nil
}

func parseObject(body []byte) (map[string]json.RawMessage, error) {
	if !json.Valid(body) {
		return nil, mxerr.NotJSON("request body is not valid JSON")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		return nil, mxerr.BadJSON("request body must be a JSON object")
	}
	return obj, nil
}

func parseActions(obj map[string]json.RawMessage) ([]Action, error) {
	raw, ok := obj["actions"]
	if !ok || isNull(raw) {
		return nil, mxerr.BadJSON("missing actions")
	}
	var actions []Action
	if err := json.Unmarshal(raw, &actions); err != nil {
		return nil, mxerr.BadJSON("invalid actions: " + err.Error())
	}
	if actions == nil {
		actions = []Action{}
	}
	return actions, nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }
